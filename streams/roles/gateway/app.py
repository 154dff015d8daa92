"""The gateway's ASGI application: the Open Inference Protocol's routes, V1 predict, and
``/metrics``. Plain ASGI, no framework: the routes are few and fixed, and a request
spends its time in scoring and the Kafka write, not in routing (bench/serve.py).

Every refusal is ``{"error": "..."}`` with 400 (bad input), 404 (unknown model, version
or route) or 503 (not ready, Kafka down); it is a dead letter too when it is about a
request to score, and then also says the dead letter's ``stage`` and ``error_type``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.kafka.deadletters import reason_unknown_model
from streams.models.features import normalize_features
from streams.roles.gateway import metrics
from streams.roles.gateway.errors import BadRequest, GatewayError, NotFound
from streams.roles.gateway.service import Inference
from streams.roles.gateway.v1 import parse_predict, predict_response
from streams.roles.gateway.v2 import OUTPUTS, InferCall, infer_response, parse_infer

__all__ = ["GatewayApp"]

log = logging.getLogger("lastmile.gateway")

JSON = b"application/json"
_DATATYPES = {"number": "FP64", "string": "BYTES", "bool": "BOOL"}

Reply = tuple[int, bytes, bytes]  # status, body, content type
_T = TypeVar("_T")


class GatewayApp:
    """The ASGI callable over an :class:`Inference`."""

    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict]],
        send: Callable[[dict], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            status, payload, kind = await self.handle(scope["method"], scope["path"], scope, body)
        except Exception as err:  # a bug of the gateway: the caller gets a 500 with its name
            log.exception("gateway: %s %s failed", scope["method"], scope["path"])
            status, payload, kind = _error(500, f"internal error: {type(err).__name__}: {err}")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", kind), (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def handle(self, method: str, path: str, scope: dict[str, Any], body: bytes) -> Reply:
        parts = path.strip("/").split("/")
        try:
            if method == "POST":
                return await self._post(parts, scope, body)
            if method in ("GET", "HEAD"):
                return await self._get(parts)
            return _error(405, f"method {method} is not served")
        except GatewayError as err:  # not about a request to score: no dead letter
            return _error(err.status, err.reason)

    # -- reading ---------------------------------------------------------------------

    async def _get(self, parts: list[str]) -> Reply:
        inference = self.inference
        if parts == ["metrics"]:
            return 200, generate_latest(), CONTENT_TYPE_LATEST.encode()
        if parts == ["v2", "health", "live"]:
            return _json(200, {"live": True})
        if parts == [""]:  # V1 liveness, as KServe's server answers it (its client asks)
            return _json(200, {"status": "alive"})
        if parts == ["v2", "health", "ready"]:
            ready = inference.ready
            return _json(200 if ready else 503, {"ready": ready})
        if parts == ["v2"]:
            return _json(200, {"name": "lastmile", "version": "2", "extensions": []})
        if len(parts) >= 3 and parts[:2] in (["v2", "models"], ["v1", "models"]):
            name, rest = parts[2], parts[3:]
            version = None
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = _version(rest[1]), rest[2:]
            if rest == ["ready"] or (parts[0] == "v1" and not rest):
                ready = await self._current(lambda: self._model_ready(name, version))
                return _json(200 if ready else 503, {"name": name, "ready": ready})
            if not rest and parts[0] == "v2":
                return _json(200, await self._current(lambda: self._metadata(name, version)))
        return _error(404, f"no route GET /{'/'.join(parts)}")

    async def _current(self, answer: Callable[[], _T]) -> _T:
        """`answer()`, or when it is a no (NotFound, False) `answer()` again once the table
        has caught up with ``models.events``: a model registered just before is known."""
        asked_ms = int(time.time() * 1000)
        try:
            first = answer()
            if first is not False:
                return first
        except NotFound:
            pass
        await self.inference.catch_up(asked_ms)
        return answer()

    def _model_ready(self, name: str, version: int | None) -> bool:
        state = self.inference.table.get(name)
        if state is None:
            raise NotFound(f"unknown model {name!r}")
        if version is not None:
            return state.live(version)
        return bool(self.inference.table.route(name, ""))

    def _metadata(self, name: str, version: int | None) -> dict[str, Any]:
        state = self.inference.table.get(name)
        if state is None:
            raise NotFound(f"unknown model {name!r}")
        live = sorted(v for v in state.versions if state.live(v))
        shown = version if version is not None else state.champion
        if version is not None and version not in live:
            raise NotFound(f"model {name!r} has no live version {version} (live: {live})")
        features: list[dict[str, str]] = []
        if shown is not None:
            meta = orjson.loads(state.versions[shown].get("meta_json") or "{}")
            features = normalize_features(meta.get("features"))
        return {
            "name": name,
            "versions": [str(v) for v in live],
            "platform": "lastmile",
            "inputs": [
                {"name": f["name"], "datatype": _DATATYPES[f["type"]], "shape": [-1]}
                for f in features
            ],
            "outputs": [{"name": n, "datatype": t, "shape": [-1]} for n, t in OUTPUTS.items()],
            "parameters": {
                "champion": None if state.champion is None else str(state.champion),
                "aliases": {a: str(v) for a, v in state.aliases.items()},
                "split": state.split,
                "shadow": None if state.shadow is None else str(state.shadow),
            },
        }

    # -- scoring ---------------------------------------------------------------------

    async def _post(self, parts: list[str], scope: dict[str, Any], body: bytes) -> Reply:
        if len(parts) == 3 and parts[:2] == ["v1", "models"] and parts[2].endswith(":predict"):
            return await self._score("v1", parts[2].removesuffix(":predict"), None, scope, body)
        if len(parts) >= 4 and parts[:2] == ["v2", "models"] and parts[-1] == "infer":
            rest = parts[3:-1]
            if not rest:
                return await self._score("v2", parts[2], None, scope, body)
            if len(rest) == 2 and rest[0] == "versions":
                return await self._score("v2", parts[2], rest[1], scope, body)
        return _error(404, f"no route POST /{'/'.join(parts)}")

    async def _score(
        self, protocol: str, model: str, version_text: str | None, scope: dict, body: bytes
    ) -> Reply:
        began = time.perf_counter()
        received_ms = int(time.time() * 1000)
        inference = self.inference
        headers = dict(scope.get("headers") or ())
        traceparent = headers.get(b"traceparent")
        labels = (model, "", "")
        try:
            if inference.ready and not inference.known(model):  # 404 before the body's 400
                await inference.catch_up(received_ms)  # registered just before?
                if not inference.known(model):
                    raise NotFound(reason_unknown_model(model, inference.table.models()))
            version = None if version_text is None else _version(version_text)
            call = _parse(protocol, body, headers)
            request_id, answers = await inference.infer(model, call, version, traceparent)
            first = answers[0]
            labels = (model, str(first.version), first.variant)
            if len(answers) == 1:
                metrics.PREDICTIONS.labels(*labels).inc()
            else:
                for (version, variant), n in Counter(
                    (a.version, a.variant) for a in answers
                ).items():
                    metrics.PREDICTIONS.labels(model, str(version), variant).inc(n)
            if protocol == "v1":
                reply: Reply = (200, predict_response(answers), JSON)
            else:
                reply = (200, infer_response(model, request_id, answers, call.outputs), JSON)
        except GatewayError as err:
            reply = _refused(err)
            # Bad input is a dead letter (the scorer wrote those of the rows it refused); a
            # 503 is about the gateway, not the input: the caller retries.
            if not err.written and err.status != 503:
                try:
                    await inference.refuse(err, body, traceparent, model)
                except GatewayError as unwritten:
                    reply = _error(unwritten.status, f"{err.reason} ({unwritten.reason})")
        known = model if inference.known(model) else metrics.UNKNOWN_MODEL
        metrics.REQUESTS.labels(known, protocol, str(reply[0])).inc()
        metrics.LATENCY.labels(known, *labels[1:]).observe(time.perf_counter() - began)
        return reply


def _parse(protocol: str, body: bytes, headers: dict[bytes, bytes]) -> InferCall:
    if protocol == "v1":
        return parse_predict(body)
    length = headers.get(b"inference-header-content-length")
    if length is None:
        return parse_infer(body)
    if not length.isdigit() or int(length) > len(body):
        raise BadRequest(f"Inference-Header-Content-Length {length.decode()!r} does not fit")
    return parse_infer(body, int(length))


def _version(text: str) -> int:
    if not text.isdigit():
        raise NotFound(f"version {text!r} is not a version number", error_type="unknown_version")
    return int(text)


def _json(status: int, value: Any) -> Reply:
    return status, orjson.dumps(value), JSON


def _error(status: int, reason: str) -> Reply:
    return _json(status, {"error": reason})


def _refused(err: GatewayError) -> Reply:
    """A refused scoring request: the reason, and where its dead letter says it failed (a
    client reports ``stage: reason``, as a Kafka producer reads its dead letter)."""
    body = {"error": err.reason, "stage": err.stage, "error_type": err.error_type}
    return _json(err.status, body)
