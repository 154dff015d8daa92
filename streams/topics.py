"""Create lastmile's topics: declared once here, from the settings."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import Settings

# The control plane is a compacted log keyed by model name: a worker replaying it
# from the start sees each model's latest state without the full history.
COMPACTED = {"model_events"}


def topic_specs(settings: Settings) -> list[NewTopic]:
    """The topics lastmile needs, with their partitions and cleanup policy."""
    specs = []
    for role, name in settings.topics.items():
        config = {"cleanup.policy": "compact"} if role in COMPACTED else {}
        partitions = 1 if role in COMPACTED else settings.topic_partitions
        specs.append(
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=settings.topic_replication,
                config=config,
            )
        )
    return specs


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AdminClient(settings.kafka_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in topic_specs(settings) if spec.topic not in existing]
    if not missing:
        return []
    created = []
    for topic, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as err:
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise
    return created
