"""Scoring rows through the gateway over HTTP: what ``Client.score`` does when it has one.

Each row is one V1 ``:predict`` request of one instance (``id`` its request_id,
``entity_id``, ``event_time``), so each row gets its own answer as through Kafka: the
gateway refuses a request as a whole when one of its rows is refused, and a batch would
hide which rows could have been scored. :data:`IN_FLIGHT` requests are sent at once
(1,000 rows took 2.4 s with the gateway in the same process, 4.7 s one at a time; the
Kafka path, batched by the producer, 0.2 to 1.2 s). A refusal (4xx) is the row's
``error``, as ``stage: reason``, the text of the dead letter the gateway wrote; a 503
(models not replayed yet, Kafka not taking records) is retried until the timeout.
``latency_ms`` is the request's round trip as the client timed it, the Kafka write
included: what a caller of the gateway waits.

>>> settings = Settings()
>>> gateway_url(True, settings), gateway_url("http://scorer:8080/", settings)
('http://127.0.0.1:8080', 'http://scorer:8080')
>>> predict_body({"request_id": "lm-1", "features": {"x": 1.5}, "entity_id": None,
...               "event_time": 1000})
b'{"instances":[{"x":1.5}],"id":"lm-1","event_time":1000}'
>>> row_error(400, {"error": "feature 'age' is missing", "stage": "score"})
"score: feature 'age' is missing"
>>> row_error(500, {"error": "internal error: KeyError"})
'gateway: HTTP 500: internal error: KeyError'
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pandas as pd

from lastmile.errors import ClientError, GatewayUnavailable, ScoreTimeout
from lastmile.scoring import (
    ANSWER_COLUMNS,
    answer_frame,
    as_rows,
    encode_requests,
    scoring_requests,
)
from schemas import Codec
from streams.config import Settings

__all__ = ["IN_FLIGHT", "gateway_url", "predict_body", "row_error", "score_over_http"]

_RETRY_S = 0.2  # between two tries of a row the gateway answered 503 (not ready yet)
#: Requests in flight at once (within the 20 connections httpx's default pool keeps alive).
IN_FLIGHT = 8


def gateway_url(gateway: str | bool | None, settings: Settings) -> str | None:
    """The base URL of ``Client(gateway=...)``: True is the settings' own gateway (the one
    ``lastmile up`` runs, on 127.0.0.1 at ``gateway_port``), a string is that URL, None or
    False is none (scoring goes through Kafka)."""
    if gateway is None or gateway is False:
        return None
    if gateway is True:
        return f"http://127.0.0.1:{settings.gateway_port}"
    if not isinstance(gateway, str) or not gateway.startswith(("http://", "https://")):
        raise ClientError(f"gateway must be an http(s) URL or True, not {gateway!r}")
    return gateway.rstrip("/")


def predict_body(request: Mapping[str, Any]) -> bytes:
    """The V1 ``:predict`` body of one scoring request (one instance)."""
    body: dict[str, Any] = {"instances": [request["features"]], "id": request["request_id"]}
    if request.get("entity_id") is not None:
        body["entity_id"] = request["entity_id"]
    body["event_time"] = request["event_time"]
    return orjson.dumps(body)


def row_error(status: int, refusal: Any) -> str:
    """A refusal as the row's ``error``: ``stage: reason`` as the dead letter says it, or
    the status when the answer is not one of the gateway's refusals."""
    reason = refusal.get("error") if isinstance(refusal, dict) else None
    stage = refusal.get("stage") if isinstance(refusal, dict) else None
    if reason and stage:
        return f"{stage}: {reason}"
    return f"gateway: HTTP {status}: {reason or str(refusal)[:200]}"


def score_over_http(
    http: httpx.Client,
    url: str,
    settings: Settings,
    model: str,
    rows: Any,
    *,
    timeout: float = 30.0,
    entity_ids: Sequence[str | None] | None = None,
    event_time_ms: int | None = None,
    codec: Codec | None = None,
) -> pd.DataFrame:
    """Score each row with ``model`` through the gateway at ``url``; the frame of answers
    :func:`lastmile.scoring.score_rows` returns through Kafka (same columns, same index).

    Rows are checked as Kafka requests before anything is sent (a :class:`ClientError`
    names the first that is not one). Raises :class:`GatewayUnavailable` when nothing
    answers at ``url``, :class:`ScoreTimeout` (with ``.frame``) when some rows got no
    answer within ``timeout`` seconds.
    """
    index, features = as_rows(rows)
    if not features:
        return pd.DataFrame(columns=ANSWER_COLUMNS, index=index)
    requests = scoring_requests(model, features, entity_ids, None, event_time_ms)
    codec = codec or Codec.from_settings(settings)
    encode_requests(codec, requests, index, settings.topic_requests)
    deadline = time.monotonic() + timeout
    answers: dict[str, dict[str, Any]] = {}
    last_refusal = ""
    # Several requests in flight: one after another, each row would wait for the answer to
    # the one before it, its Kafka write included. Answers are matched by request id, so
    # the order they come in does not matter.
    with ThreadPoolExecutor(min(IN_FLIGHT, len(requests))) as pool:
        futures = [pool.submit(_answer, http, url, model, r, deadline) for r in requests]
        try:
            for request, future in zip(requests, futures, strict=True):
                answer, busy = future.result()
                last_refusal = busy or last_refusal
                if answer is not None:
                    answers[request["request_id"]] = answer
        except BaseException:  # no gateway (or ^C): the rows not yet sent are not sent
            for future in futures:
                future.cancel()
            raise
    frame = answer_frame(index, requests, answers, model)
    missing = [r["request_id"] for r in requests if r["request_id"] not in answers]
    if missing:
        why = f" (its last answer: {last_refusal})" if last_refusal else ""
        raise ScoreTimeout(
            f"{len(missing)} of {len(requests)} requests to {model!r} got no answer from the "
            f"gateway at {url} in {timeout:g} s{why}",
            missing=missing,
            frame=frame,
        )
    return frame


def _answer(
    http: httpx.Client, url: str, model: str, request: Mapping[str, Any], deadline: float
) -> tuple[dict[str, Any] | None, str | None]:
    """(the row's answer or None if none came in time, the last 503's reason)."""
    path = f"{url}/v1/models/{quote(model, safe='')}:predict"
    body, busy = predict_body(request), None
    while (remaining := deadline - time.monotonic()) > 0:
        began = time.perf_counter()
        try:
            response = http.post(
                path,
                content=body,
                headers={"content-type": "application/json"},
                timeout=remaining,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as err:
            raise GatewayUnavailable(
                f"the gateway at {url} does not answer ({type(err).__name__}: "
                f"{err}): start it (`lastmile up` runs it, or `lastmile worker --roles "
                'gateway`), or score through Kafka (`via="kafka"`)'
            ) from None
        except httpx.TimeoutException:
            return None, busy
        latency_ms = (time.perf_counter() - began) * 1000.0
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        if response.status_code == 200:
            try:
                [p] = payload["predictions"]
                return {
                    "version": p["model_version"],
                    "variant": p["variant"],
                    "score": p["score"],
                    "label": p["label"],
                    "latency_ms": latency_ms,
                }, None
            except (KeyError, TypeError, ValueError):  # something else listens there
                return {"error": f"gateway: not a V1 predict answer: {str(payload)[:200]}"}, None
        if response.status_code == 503:  # the gateway, not the row: try again shortly
            busy = row_error(503, payload)
            time.sleep(min(_RETRY_S, max(deadline - time.monotonic(), 0)))
            continue
        return {"error": row_error(response.status_code, payload)}, None
    return None, busy
