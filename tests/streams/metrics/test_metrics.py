"""The metrics' parts: the batch histogram against prometheus_client's own, the
monitor's tally across commits and aborts, the lag against a real broker, trace
context, and a worker's /metrics page."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitors.events import MetricValue
from streams.kafka.traceparent import carry_traceparent, traceparent_of
from streams.metrics import LATENCY_BUCKETS_S, BatchHistogram, LagProbe, MonitorTally
from streams.metrics.tallies import MAX_REASONS

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _samples(registry: CollectorRegistry) -> dict[tuple, float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_the_batch_histogram_exposes_what_prometheus_client_observing_one_by_one_does() -> None:
    rng = np.random.default_rng(7)
    # Values on the bucket edges too: "le" means less than or equal.
    values = np.concatenate([rng.gamma(2.0, 0.01, size=5000), np.asarray(LATENCY_BUCKETS_S)])
    reference_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    reference = Histogram(
        "lastmile_t_seconds", "t", ["model"], buckets=LATENCY_BUCKETS_S, registry=reference_registry
    )
    for v in values:
        reference.labels("fraud").observe(float(v))
    ours = BatchHistogram("lastmile_t_seconds", "t", ["model"], count_name="lastmile_t_total")

    class Families:
        def collect(self):
            return [ours.families()[0]]

    ours_registry.register(Families())
    for chunk in np.array_split(values, 13):
        ours.observe_many(("fraud",), chunk)
    expected, got = _samples(reference_registry), _samples(ours_registry)
    sum_key = ("lastmile_t_seconds_sum", (("model", "fraud"),))
    assert got.pop(sum_key) == pytest.approx(expected.pop(sum_key))
    assert got == expected
    assert ours.count(("fraud",)) == len(values)


def test_the_monitor_counts_a_batch_once_its_transaction_committed() -> None:
    from types import SimpleNamespace as NS

    tally = MonitorTally()
    window = NS(key=("fraud", "2"))
    segment = NS(key=("fraud", "2", "plan=gold"))  # a segment's window is no version's
    letter = {"stage": "score", "error_type": "model_exception"}
    drift = MetricValue("fraud", "2", 0.0, 60.0, "drift", "age", 1.0)
    tally.batch([window, segment], [letter, letter], [drift])
    tally.discard()  # aborted: it is folded again from the snapshot
    tally.batch([window, segment], [letter, letter], [drift])
    tally.committed()
    tally.committed()  # a commit without a batch counts nothing
    assert tally.windows_closed == {("fraud", "2"): 1}
    assert tally.dead_letters == {("score", "model_exception"): 2}
    assert tally.feature_drift[("fraud", "2", "age")][0] == 1.0


def test_dead_letter_reasons_past_the_cap_count_as_other() -> None:
    tally = MonitorTally()
    letters = [{"stage": "x", "error_type": f"E{i}"} for i in range(MAX_REASONS + 10)]
    tally.batch([], letters, [])
    tally.committed()
    assert len(tally.dead_letters) == MAX_REASONS + 1
    assert tally.dead_letters[("other", "other")] == 10
    assert sum(tally.dead_letters.values()) == len(letters)


def test_drift_of_a_version_no_longer_served_drops_out() -> None:
    tally = MonitorTally(stale_after_s=0.0)
    tally.batch([], [], [MetricValue("fraud", "1", 0.0, 60.0, "drift_share", None, 0.2)])
    tally.committed()
    share = [f for f in tally.families() if f.name == "lastmile_drift_share"][0]
    assert share.samples == [] and tally.drift_share == {}


@pytest.mark.parametrize(
    "value",
    [
        b"not a traceparent",
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    ],
)
def test_a_malformed_traceparent_is_not_carried(value: bytes) -> None:
    assert traceparent_of([("traceparent", value), ("tracestate", b"k=v")]) == []


def test_a_traceparent_is_carried_with_its_tracestate_and_nothing_else() -> None:
    class Message:
        def __init__(self, headers):
            self._headers = headers

        def headers(self):
            return self._headers

    schema = [("lastmile.schema", b"Prediction")]
    messages = [
        Message([("traceparent", TRACEPARENT), ("tracestate", b"a=1"), ("other", b"x")]),
        Message([("other", b"x")]),
    ]
    traced, plain = carry_traceparent(messages, schema)
    assert traced == [*schema, ("traceparent", TRACEPARENT), ("tracestate", b"a=1")]
    assert plain is schema  # shared, so the lane tags it once for every record


def test_the_lag_is_what_the_group_has_not_committed(fresh_settings) -> None:
    settings = fresh_settings()
    topic, group = f"lag.{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer(settings.producer_config())
    for i in range(10):
        producer.produce(topic, b"v", partition=i % 2)  # five a partition
    assert producer.flush(30) == 0
    # The role's own consumer, which has fetched both partitions to their ends.
    role = Consumer(settings.consumer_config(f"reader-{group}"))
    role.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    read = 0
    while read < 10:
        read += sum(1 for m in role.consume(100, 0.5) if m.error() is None)

    def fetched(t: str, p: int) -> int:
        return role.get_watermark_offsets(TopicPartition(t, p), cached=True)[1]

    probe = LagProbe(settings, group, [topic], ttl_s=0.0, local_high=fetched)
    try:
        # No commit yet: everything is behind.
        assert sorted(probe.lag()) == [(topic, 0, 5), (topic, 1, 5)]
        committer = Consumer(settings.consumer_config(group))
        committer.commit(
            offsets=[TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 5)],
            asynchronous=False,
        )
        committer.close()
        assert sorted(probe.lag()) == [(topic, 0, 3), (topic, 1, 0)]
        # The probe asks, never commits: the group's offsets are what they were.
        check = Consumer(settings.consumer_config(group))
        offsets = check.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 10)
        check.close()
        assert [tp.offset for tp in offsets] == [2, 5]
    finally:
        probe.close()
        role.close()


def test_the_lag_is_cached_between_scrapes(fresh_settings) -> None:
    settings = fresh_settings()
    topic = f"lag.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer(settings.producer_config())
    probe = LagProbe(settings, "g-cache", [topic], ttl_s=60.0)
    try:
        assert probe.lag() == [(topic, 0, 0)]
        producer.produce(topic, b"v")
        assert producer.flush(30) == 0
        assert probe.lag() == [(topic, 0, 0)]  # within the TTL: the last answer
        probe.ttl_s = 0.0
        assert probe.lag() == [(topic, 0, 1)]
    finally:
        probe.close()


def test_alerts_firing_is_a_gauge_per_rule_and_model_version() -> None:
    from collections import Counter
    from types import SimpleNamespace as NS

    from monitors.rules import Rule, RuleEngine
    from streams.metrics import RolesCollector

    rules = [
        Rule("missing", "quality", "missing_rate", 0.2, for_windows=1),
        Rule("quiet", "quality", "throughput", 1e9),
    ]
    engine = RuleEngine(rules)
    for feature in ("age", "income"):  # two alerts of one rule and version
        engine.evaluate(MetricValue("churn", "3", 0.0, 60.0, "missing_rate", feature, 0.5))
    engine.evaluate(MetricValue("fraud", "1", 0.0, 60.0, "missing_rate", "age", 0.5))
    monitor = NS(rules=engine, rule_list=rules, counts=Counter(), tally=MonitorTally())
    stats = NS(as_dict=lambda: {"consumed": 0}, last_error=None)
    registry = CollectorRegistry()
    RolesCollector(registry).attach(
        {"monitor": NS(stats=stats, failed=False, group_id="g", monitor=monitor)}
    )
    firing = {
        labels: v
        for (name, labels), v in _samples(registry).items()
        if name == "lastmile_alerts_firing"
    }
    assert firing == {
        (("model", "churn"), ("rule", "missing"), ("version", "3")): 2.0,
        (("model", "fraud"), ("rule", "missing"), ("version", "1")): 1.0,
        (("model", ""), ("rule", "quiet"), ("version", "")): 0.0,
    }


def test_two_roles_that_score_in_one_worker_make_one_family_told_apart_by_role() -> None:
    from types import SimpleNamespace as NS

    from streams.metrics import RolesCollector, ScorerTally

    registry = CollectorRegistry()
    collector = RolesCollector(registry)
    roles = {}
    for name, n in (("scorer", 3), ("gateway", 2)):
        tally = ScorerTally()
        tally.scored("fraud", 1, "champion", [(1, "champion", 0.5, "1", 0, 4.0)] * n)
        stats = NS(as_dict=lambda: {}, last_error=None)
        roles[name] = NS(stats=stats, failed=False, group_id="", scorer=NS(tally=tally))
    collector.attach(roles)
    text = generate_latest(registry).decode()
    assert text.count("# TYPE lastmile_predictions_total counter") == 1
    predictions = {
        s.labels["role"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "lastmile_predictions_total"
    }
    assert predictions == {"scorer": 3.0, "gateway": 2.0}
