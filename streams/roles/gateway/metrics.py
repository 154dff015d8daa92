"""The gateway's Prometheus series, in ``prometheus_client``'s default registry (served on
the gateway's ``/metrics``). Labels stay bounded: a model name the table does not know is
counted as ``__unknown__``, never as the caller wrote it.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["LATENCY", "PREDICTIONS", "REQUESTS", "UNKNOWN_MODEL"]

UNKNOWN_MODEL = "__unknown__"

REQUESTS = Counter(
    "lastmile_gateway_requests",
    "HTTP inference requests answered by the gateway, by model, protocol and status code.",
    ["model", "protocol", "code"],
)
PREDICTIONS = Counter(
    "lastmile_gateway_predictions",
    "Rows the gateway answered, by the model version and variant that answered them.",
    ["model", "version", "variant"],
)
LATENCY = Histogram(
    "lastmile_gateway_request_seconds",
    "Seconds from a request's body read to its answer (scoring and the Kafka write included), "
    "by the version and variant of its first row ('' for a refused request).",
    ["model", "version", "variant"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
