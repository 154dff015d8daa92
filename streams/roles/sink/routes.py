"""Where each lastmile topic lands in ClickHouse: the sink's routing table."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ROUTES", "Route"]


@dataclass(frozen=True)
class Route:
    """How one topic reaches ClickHouse: its schema, landing table and final table."""

    role: str  # key in Settings.topics
    schema: str  # Avro record name in schemas/
    landing: str  # Null-engine table the Avro rows are inserted into
    table: str  # the table its materialized view fills
    # One row in ``table`` per message, at (kafka_partition, kafka_offset): an insert
    # can be checked by counting them (model events fan out, dead letters collapse).
    checkable: bool = True


ROUTES: tuple[Route, ...] = (
    Route("predictions", "Prediction", "predictions_in", "predictions"),
    Route("outcomes", "Outcome", "outcomes_in", "outcomes"),
    Route("metrics", "MonitorMetric", "metrics_in", "metrics"),
    Route("alerts", "Alert", "alerts_in", "alerts"),
    Route("model_events", "ModelEvent", "model_events_v2_in", "model_versions", checkable=False),
    Route("dlq", "DeadLetter", "dead_letters_in", "dead_letters", checkable=False),
    Route("actions", "Action", "actions_in", "actions"),
)
