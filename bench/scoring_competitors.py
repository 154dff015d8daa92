"""The competitors' jobs of bench/scoring.py, each run as a child process
(``scoring.py _child faust|quix|ceiling CONFIG_JSON``): a per-event Faust agent, a Quix
Streams app, and the practical ceiling, a hand-written confluent-kafka batch loop."""

from __future__ import annotations

import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from bench.scoring_job import answer, score_one
from bench.scoring_kafka import PARTITIONS

# The baselines' consumers get what the embedded broker needs, as lastmile's do
# (Settings.consumer_config): a group join in seconds, and a short fetch wait.
BASELINE_CONSUMER_TUNING = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 10,
}


def faust_child(config: dict) -> None:
    """A plain Faust agent: per event, predict_proba_one and await send."""
    import faust

    logging.basicConfig(level=logging.WARNING, force=True)  # Faust would set DEBUG
    model = pickle.loads(Path(config["model"]).read_bytes())
    app = faust.App(
        f"bench-faust-{os.getpid()}",
        broker=f"kafka://{config['bootstrap']}",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.02,
        store="memory://",
        datadir=config["data_dir"],
        web_enabled=False,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        logging_config=None,
    )
    source = app.topic(config["input"], key_serializer="raw", value_serializer="raw")
    sink = app.topic(config["output"], key_serializer="raw", value_serializer="raw")

    @app.agent(source)
    async def score(stream: Any) -> None:
        async for value in stream:
            request = orjson.loads(value)
            prediction = score_one(model, request)
            await sink.send(key=request["request_id"].encode(), value=orjson.dumps(prediction))

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def quix_child(config: dict) -> None:
    """Quix Streams: JSON in, apply(predict_proba_one), JSON out."""
    from quixstreams import Application

    model = pickle.loads(Path(config["model"]).read_bytes())
    app = Application(
        broker_address=config["bootstrap"],
        consumer_group=config["group"],
        auto_offset_reset="earliest",
        consumer_extra_config=BASELINE_CONSUMER_TUNING,
        producer_extra_config={"linger.ms": 20},
        state_dir=config["data_dir"],
        use_changelog_topics=False,
        processing_guarantee=config["guarantee"],
        loglevel="WARNING",
    )
    source = app.topic(config["input"], value_deserializer="json", key_deserializer="bytes")
    sink = app.topic(config["output"], value_serializer="json", key_serializer="bytes")
    sdf = app.dataframe(source)
    sdf = sdf.apply(lambda request: score_one(model, request))
    sdf.to_topic(sink)
    app.run()


def ceiling_child(config: dict) -> None:
    """The practical ceiling the issue names: a hand-written confluent-kafka batch loop,
    at least once, with nothing of lastmile's: orjson in and out, River's
    ``predict_proba_many`` on a DataFrame, produce, flush, commit. No validation, no
    routing, no Avro, no dead letters, no transaction."""
    import pandas as pd

    model = pickle.loads(Path(config["model"]).read_bytes())
    consumer = Consumer(
        {
            "bootstrap.servers": config["bootstrap"],
            "group.id": config["group"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **BASELINE_CONSUMER_TUNING,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": config["bootstrap"],
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,  # as the lanes (streams/kafka/lane.py): it flushes every batch
        }
    )
    consumer.subscribe([config["input"]])
    output = config["output"]
    while True:
        messages = consumer.consume(5000, 0.5)
        requests = [orjson.loads(m.value()) for m in messages if m.error() is None]
        if not requests:
            continue
        frame = pd.DataFrame.from_records([r["features"] for r in requests])
        scores = model.predict_proba_many(frame)[True].tolist()
        now = int(time.time() * 1000)
        for request, score in zip(requests, scores, strict=True):
            prediction = orjson.dumps(answer(request, score, now))
            producer.produce(output, prediction, request["request_id"].encode())
        producer.flush(60)
        consumer.commit(asynchronous=False)


CHILDREN = {"faust": faust_child, "quix": quix_child, "ceiling": ceiling_child}
