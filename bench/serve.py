"""Benchmark serving over HTTP: lastmile's gateway beside MLServer and KServe's model server.

The same River ``StandardScaler | LogisticRegression`` (10 numeric features, trained as in
bench/scoring.py) is served three ways, each as its own process on 127.0.0.1:

1. lastmile: ``python -m streams.cli.main worker --roles gateway`` on the embedded
   broker (started here); every answer is produced to ``scoring.predictions`` (acks=all)
   before it is returned, so its figures include the Kafka write.
2. MLServer (Seldon), a custom runtime calling the model's ``predict_proba_one`` per row,
   in-process inference (``parallel_workers: 0``, its fastest setting for a model this
   small). No logging anywhere.
3. KServe's Python model server (``kserve.ModelServer``), a ``kserve.Model`` doing the same.

MLServer and KServe cannot share lastmile's environment (MLServer 1.7 downgrades
starlette 1.x to 0.46 and fastapi; kserve pins pandas < 3), so the bench makes its own
virtualenv for them, ``.lastmile/bench-venv``, from the package index (bench/venvs.py: once;
later runs reuse it). Each server gets the model as a pickle (same object, same River version).

Every server is sent the same Open Inference Protocol (V2) JSON request, one input per
feature, by a load generator in this process (raw asyncio HTTP/1.1 on kept-alive
connections, so the client costs little): requests/s single-row at concurrency 1 and 32,
rows/s with batches of 100 (concurrency 4), and latency at a fixed 500 requests/s
(open loop: each request's latency counts from when it was due, so a stall is not hidden).

The machine is small and shared (2 cores, DESIGN.md): compare ratios from one run.

    python bench/serve.py
    python bench/serve.py --seconds 3 --skip kserve
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring import FEATURES, train_model  # noqa: E402

from bench.venvs import SideVenv  # noqa: E402
from streams.config import Settings, load_settings, settings_env  # noqa: E402
from streams.local.processes import free_port  # noqa: E402

GOAL_VS_MLSERVER = 2.0
GOAL_P99_MS = 5.0
GOAL_ROWS = 50_000
BATCH = 100
SKIPPABLE = ("mlserver", "kserve")


# -- the load generator -------------------------------------------------------------------


def http_request(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


class Connection:
    """One kept-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def call(self, request: bytes) -> int:
        """Send `request`, read the whole response; its status code."""
        self.writer.write(request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        at = head.index(b"content-length:") + 15
        length = int(head[at : head.index(b"\r\n", at)])
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


@dataclass
class Tally:
    done: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)


async def closed_loop(port: int, request: bytes, concurrency: int, seconds: float) -> float:
    """Requests/s of `concurrency` connections each sending as soon as it is answered."""
    connections = [await Connection.open(port) for _ in range(concurrency)]
    tally = Tally()
    stop = time.perf_counter() + seconds

    async def drive(connection: Connection) -> None:
        while time.perf_counter() < stop:
            ok = await connection.call(request) == 200
            tally.done += ok
            tally.failed += not ok

    began = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in connections))
    elapsed = time.perf_counter() - began
    for c in connections:
        c.close()
    if tally.failed:
        print(f"    ({tally.failed} requests failed)")
    return tally.done / elapsed


async def open_loop(port: int, request: bytes, rate: float, seconds: float) -> Tally:
    """Requests due every 1/`rate` s, each on a free connection; latency from due time."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await Connection.open(port))
    tally = Tally()

    async def one(due: float) -> None:
        connection = await pool.get()
        ok = await connection.call(request) == 200
        tally.latencies.append(time.perf_counter() - due)
        tally.done += ok
        tally.failed += not ok
        pool.put_nowait(connection)

    tasks = []
    began = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = began + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return tally


# -- the servers -------------------------------------------------------------------------


def v2_body(rows: int, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 1.0, (rows, len(FEATURES))).round(4)
    inputs = [
        {"name": name, "shape": [rows], "datatype": "FP64", "data": matrix[:, j].tolist()}
        for j, name in enumerate(FEATURES)
    ]
    return json.dumps({"inputs": inputs}).encode()


@dataclass
class Server:
    name: str
    port: int
    path: str  # the infer path
    process: subprocess.Popen | None = None

    def start(self, command: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
        self.process = subprocess.Popen(
            command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=log.parent
        )
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}); see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready in {timeout:.0f} s; see {log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


MLSERVER_RUNTIME = """
import pickle

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceResponse, ResponseOutput


class RiverModel(MLModel):
    async def load(self):
        with open(self.settings.parameters.uri, "rb") as f:
            self.model = pickle.load(f)
        return True

    async def predict(self, payload):
        columns = {i.name: NumpyCodec.decode_input(i).reshape(-1).tolist() for i in payload.inputs}
        n = len(next(iter(columns.values())))
        rows = [{k: v[j] for k, v in columns.items()} for j in range(n)]
        scores = [self.model.predict_proba_one(r).get(True, 0.0) for r in rows]
        out = ResponseOutput(name="score", shape=[n], datatype="FP64", data=scores)
        return InferenceResponse(model_name=self.name, outputs=[out])
"""

KSERVE_SERVER = """
import pickle
import sys

import kserve
from kserve import InferOutput, InferRequest, InferResponse


class RiverModel(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        with open(path, "rb") as f:
            self.model = pickle.load(f)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        columns = {i.name: i.as_numpy().reshape(-1).tolist() for i in payload.inputs}
        n = len(next(iter(columns.values())))
        rows = [{k: v[j] for k, v in columns.items()} for j in range(n)]
        scores = [self.model.predict_proba_one(r).get(True, 0.0) for r in rows]
        out = InferOutput(name="score", shape=[n], datatype="FP64", data=scores)
        rid = payload.id or "-"  # KServe's response model wants an id; the bench sends none
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=rid)


if __name__ == "__main__":
    port, path = int(sys.argv[1]), sys.argv[2]
    sys.argv = sys.argv[:1]
    server = kserve.ModelServer(http_port=port, workers=1, enable_grpc=False,
                                enable_latency_logging=False)
    server.start([RiverModel("river", path)])
"""


def bench_python() -> Path | None:
    """The bench virtualenv's python with mlserver, kserve and this River, made if missing."""
    import river

    # mlserver and kserve cannot be imported into one process (both register the
    # protocol's protobuf messages), though each runs on its own.
    venv = SideVenv("bench", ("mlserver", "kserve", f"river=={river.__version__}"))
    try:
        return venv.make()
    except subprocess.CalledProcessError as err:
        print(f"  cannot make the bench virtualenv ({err}): MLServer and KServe skipped")
        return None


# -- the run -----------------------------------------------------------------------------


@dataclass
class Figures:
    single_1: float = 0.0
    single_32: float = 0.0
    rows: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    late: int = 0


def measure(server: Server, seconds: float, rate: float) -> Figures:
    one = http_request(server.path, v2_body(1))
    hundred = http_request(server.path, v2_body(BATCH))
    figures = Figures()
    asyncio.run(closed_loop(server.port, one, 4, 1.0))  # warm up: models load, caches fill
    figures.single_1 = asyncio.run(closed_loop(server.port, one, 1, seconds))
    figures.single_32 = asyncio.run(closed_loop(server.port, one, 32, seconds))
    figures.rows = BATCH * asyncio.run(closed_loop(server.port, hundred, 4, seconds))
    tally = asyncio.run(open_loop(server.port, one, rate, seconds))
    ms = np.array(tally.latencies) * 1000
    figures.p50_ms, figures.p99_ms = (float(v) for v in np.percentile(ms, [50, 99]))
    figures.late = tally.failed
    print(
        f"  {server.name:<9} single row: {figures.single_1:>7,.0f} req/s at c=1, "
        f"{figures.single_32:>7,.0f} req/s at c=32; batches of {BATCH}: "
        f"{figures.rows:>9,.0f} rows/s; at {rate:g} req/s p50 {figures.p50_ms:.2f} ms, "
        f"p99 {figures.p99_ms:.2f} ms"
    )
    return figures


def run_lastmile(settings: Settings, tmp: Path, seconds: float, rate: float) -> Figures:
    from streams.kafka.topics import ensure_topics
    from streams.models import ControlPlane

    ensure_topics(settings)
    with ControlPlane(settings) as control:
        mv = control.register_and_publish(
            "bench", train_model(), "river", features=FEATURES, labels=[False, True]
        )
        control.promote("bench", mv.version)
    server = Server("lastmile", settings.gateway_port, "/v2/models/bench/infer")
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "streams.cli.main", "worker", "--roles", "gateway"]
    command += ["--web-port", str(free_port())]
    try:
        server.start(command, env, tmp / "lastmile.log", 90)
        figures = measure(server, seconds, rate)
    finally:
        server.stop()
    logged = count_predictions(settings)
    print(f"            {logged:,} predictions on {settings.topic_predictions} (every answer)")
    return figures


def count_predictions(settings: Settings) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(settings.consumer_config("bench-count"))
    total = 0
    for p in range(settings.topic_partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(settings.topic_predictions, p))
        total += high - low
    consumer.close()
    return total


def run_mlserver(python: Path, model_path: Path, tmp: Path, seconds: float, rate: float) -> Figures:
    folder = tmp / "mlserver"
    folder.mkdir()
    (folder / "river_runtime.py").write_text(textwrap.dedent(MLSERVER_RUNTIME))
    port = free_port()
    settings = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": "river",
        "implementation": "river_runtime.RiverModel",
        "parameters": {"uri": str(model_path)},
    }
    (folder / "model-settings.json").write_text(json.dumps(model))
    server = Server("MLServer", port, "/v2/models/river/infer")
    command = [str(python.parent / "mlserver"), "start", str(folder)]
    return _run_child(server, command, tmp / "mlserver.log", seconds, rate)


def run_kserve(python: Path, model_path: Path, tmp: Path, seconds: float, rate: float) -> Figures:
    script = tmp / "kserve_server.py"
    script.write_text(textwrap.dedent(KSERVE_SERVER))
    port = free_port()
    server = Server("KServe", port, "/v2/models/river/infer")
    command = [str(python), str(script), str(port), str(model_path)]
    return _run_child(server, command, tmp / "kserve.log", seconds, rate)


def _run_child(
    server: Server, command: list[str], log: Path, seconds: float, rate: float
) -> Figures:
    try:
        server.start(command, SideVenv.env(), log, 120)
        return measure(server, seconds, rate)
    finally:
        server.stop()


def goal(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(figures: dict[str, Figures], rate: float) -> None:
    ours = figures["lastmile"]
    print("\nGoals")
    anchor = figures.get("MLServer")
    if anchor is not None:
        for label, mine, theirs in (
            ("c=1", ours.single_1, anchor.single_1),
            ("c=32", ours.single_32, anchor.single_32),
        ):
            ratio = mine / theirs if theirs else float("inf")
            print(
                f"  single-row req/s {label}: {ratio:.2f}x MLServer "
                f"(goal >= {GOAL_VS_MLSERVER:g}x): {goal(ratio >= GOAL_VS_MLSERVER)}"
            )
        print(f"  rows/s in batches of {BATCH}: {ours.rows / anchor.rows:.2f}x MLServer")
    if "KServe" in figures:
        kserve = figures["KServe"]
        print(
            f"  against KServe: {ours.single_1 / kserve.single_1:.2f}x at c=1, "
            f"{ours.single_32 / kserve.single_32:.2f}x at c=32, "
            f"{ours.rows / kserve.rows:.2f}x rows/s in batches"
        )
    print(
        f"  p99 at {rate:g} req/s, Kafka write included: {ours.p99_ms:.2f} ms "
        f"(goal <= {GOAL_P99_MS:g} ms): {goal(ours.p99_ms <= GOAL_P99_MS)}"
    )
    print(
        f"  rows/s in batches of {BATCH}: {ours.rows:,.0f} (goal >= {GOAL_ROWS:,}): "
        f"{goal(ours.rows >= GOAL_ROWS)}"
    )


def run(args: argparse.Namespace) -> int:
    from streams.local.broker import EmbeddedBroker

    tmp = Path(tempfile.mkdtemp(prefix="lastmile-bench-serve-"))
    kafka_port = free_port()
    settings = load_settings(
        env={},
        toml_path=None,
        kafka_port=kafka_port,
        data_dir=tmp / "data",
        gateway_port=free_port(),
    )
    print(
        f"lastmile serving benchmark: River StandardScaler | LogisticRegression, "
        f"{len(FEATURES)} features; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; {args.seconds:g} s a figure; work dir {tmp}"
    )
    model_path = tmp / "model.pkl"
    model_path.write_bytes(pickle.dumps(train_model()))
    figures: dict[str, Figures] = {}
    with EmbeddedBroker(tmp / "broker", kafka_port):
        figures["lastmile"] = run_lastmile(settings, tmp, args.seconds, args.rate)
    others: list[tuple[str, Callable[..., Figures]]] = [
        ("MLServer", run_mlserver),
        ("KServe", run_kserve),
    ]
    wanted = [(name, fn) for name, fn in others if name.lower() not in args.skip]
    python = bench_python() if wanted else None
    if python is not None:
        for name, fn in wanted:
            try:
                figures[name] = fn(python, model_path, tmp, args.seconds, args.rate)
            except RuntimeError as err:
                print(f"  {name}: {err}")
    report(figures, args.rate)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="Length of each figure's run.")
    parser.add_argument("--rate", type=float, default=500.0, help="Fixed rate for p50/p99.")
    parser.add_argument(
        "--skip",
        type=lambda text: {s.strip().lower() for s in text.split(",") if s.strip()},
        default=set(),
        help=f"Comma-separated servers to leave out: {', '.join(SKIPPABLE)}.",
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
