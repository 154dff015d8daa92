"""The learner's own topics: the repartition topic and its changelog."""

from __future__ import annotations

from streams.config import Settings
from streams.roles.learner.settings import LearnerSettings


class LearnerError(RuntimeError):
    """The learner cannot run as configured; the message says why."""


def ensure_learner_topics(
    settings: Settings, options: LearnerSettings, timeout: float = 15.0
) -> int:
    """Create the repartition and changelog topics when missing; return their partitions.

    Both have ``topic_partitions`` partitions; the changelog is compacted. Their
    partition counts must agree (partition ``p`` of one is the state of ``p`` of the
    other) and must not change while models are learning (a model would move).
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.kafka.topics import create_missing

    input_topic = options.repartition_topic_for(settings)
    state_topic = options.state_topic_for(settings)
    specs = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication,
            config=config,
        )
        for name, config in ((input_topic, {}), (state_topic, {"cleanup.policy": "compact"}))
    ]
    create_missing(settings, specs, timeout)
    topics = AdminClient(settings.kafka_config()).list_topics(timeout=timeout).topics
    counts = {name: len(topics[name].partitions) for name in (input_topic, state_topic)}
    if counts[input_topic] != counts[state_topic]:
        raise LearnerError(
            f"{input_topic} has {counts[input_topic]} partitions and {state_topic} "
            f"{counts[state_topic]}: they must have as many"
        )
    return counts[input_topic]
