"""W3C trace context through a role: a request's ``traceparent`` (and its
``tracestate``) Kafka headers come out on the records made from it.

A tracer that follows a request into Kafka (OpenTelemetry's Kafka instrumentations
write ``traceparent`` as a header) then finds its prediction in the same trace. Only
a well-formed ``traceparent`` is carried (https://www.w3.org/TR/trace-context/: a
receiver ignores one it cannot parse), byte for byte; ``tracestate`` goes with it.

>>> class M:
...     def __init__(self, headers): self._h = headers
...     def headers(self): return self._h
>>> tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
>>> schema = [("lastmile.schema", b"Prediction")]
>>> out = list(carry_traceparent([M(None), M([("traceparent", tp)]), M([("traceparent", b"x")])],
...                              schema))
>>> out[0] is schema, out[1], out[2] is schema
(True, [('lastmile.schema', b'Prediction'), ('traceparent', b'00-4bf92f...-01')], True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["TRACEPARENT", "TRACESTATE", "carry_traceparent", "traceparent_of"]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

# version-trace_id-parent_id-flags; a later version may append fields after a dash.
_FORMAT = re.compile(rb"^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-|$)")


def traceparent_of(headers: Iterable[tuple[str, Any]] | None) -> list[tuple[str, bytes]]:
    """The trace-context headers of a message worth carrying (none when its
    ``traceparent`` is absent or malformed)."""
    if not headers:
        return []
    parent: bytes | None = None
    state: bytes | None = None
    for key, value in headers:
        if key == TRACEPARENT and isinstance(value, bytes):
            parent = value
        elif key == TRACESTATE and isinstance(value, bytes):
            state = value
    if parent is None or parent[:2] == b"ff" or not _FORMAT.match(parent):
        return []
    return [(TRACEPARENT, parent)] + ([(TRACESTATE, state)] if state is not None else [])


def carry_traceparent(
    messages: Iterable[Any], headers: list[tuple[str, bytes]] | None
) -> list[list[tuple[str, bytes]] | None]:
    """For each message, the output's headers: `headers` itself (the same object, which
    the lane tags once for all) unless the message has trace context to carry."""
    out: list[list[tuple[str, bytes]] | None] = []
    append = out.append
    # The scorer's hot path: one inline look at each message's few headers.
    for message in messages:
        own = message.headers()
        if own:
            for key, _value in own:
                if key == TRACEPARENT:
                    trace = traceparent_of(own)
                    append([*(headers or ()), *trace] if trace else headers)
                    break
            else:
                append(headers)
        else:
            append(headers)
    return out
