"""The dashboard served for real and opened in headless Chromium.

* Against a ClickHouse the test fills (``python -m dashboard.cli``, what ``lastmile
  dashboard`` runs): every page renders, the overview's numbers are those put in.
* Against the demo itself (``lastmile up --demo`` on free ports, its traffic faster and
  its drift earlier): once the drift it injects has raised its alert, every page is
  screenshot under docs/ (docs/overview.png, docs/drift.png, ...), the pictures the
  README shows.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages on file descriptors 3 and 4), so no Selenium and no websocket client.
Chromium's own ``--screenshot`` cannot wait for a Streamlit page: the page draws
itself from a websocket after load, so a one-shot capture is a blank page. Here the
test waits until the page has finished running and its charts are drawn.

Needs /usr/bin/chromium (Debian: ``apt-get install -y chromium chromium-driver``).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import io
import json
import os
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from by_path import load

from streams.local.processes import free_port, free_ports

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1400, 1000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs headless Chromium at /usr/bin/chromium "
    "(apt-get install -y chromium chromium-driver)",
)

# Each page with the query parameters that make its screenshot tell the story.
SHOTS = {
    "overview": ("", {}),
    "drift": ("drift", {"model": "fraud", "feature": "age"}),
    "performance": ("performance", {"model": "fraud"}),
    "alerts": ("alerts", {"model": "fraud"}),
    "models": ("models", {"model": "fraud"}),
    "dead_letters": ("dead_letters", {}),
}

# Done when Streamlit is not running the script, nothing is a loading skeleton, and
# the main area shows something; returns the height the whole page needs.
READY = """(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return {state: 'loading'};
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  if (status && /running/i.test(status.innerText)) return {state: 'running'};
  if (document.querySelector('[data-testid="stSkeleton"]')) return {state: 'skeleton'};
  const main = document.querySelector('[data-testid="stMain"]') || app;
  const shown = main.querySelectorAll(
    '[data-testid="stMetric"], [data-testid="stVegaLiteChart"], canvas, svg.marks, ' +
    '[data-testid="stAlert"], [data-testid="stDataFrame"], [data-testid="stForm"]').length;
  const height = Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight));
  return {
    state: shown ? 'ready' : 'empty', shown: shown, height: height,
    title: (main.querySelector('h1') || {}).innerText || '',
    metrics: Array.from(main.querySelectorAll('[data-testid="stMetric"]')).map(e => e.innerText),
    exceptions: main.querySelectorAll('[data-testid="stException"]').length,
    errors: Array.from(main.querySelectorAll('[data-testid="stAlertContentError"]'))
      .map(e => e.innerText),
    text: main.innerText.slice(0, 4000),
  };
})()"""


class Chromium:
    """Headless Chromium and the few DevTools commands the test needs."""

    def __init__(self, profile: Path) -> None:
        to_browser = os.pipe()
        from_browser = os.pipe()

        def wire_pipes() -> None:
            # DevTools reads commands on fd 3 and writes replies on fd 4. Duplicate
            # first: the pipe ends may themselves be 3 or 4.
            read_end, write_end = os.dup(to_browser[0]), os.dup(from_browser[1])
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=wire_pipes,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser[0])
        os.close(from_browser[1])
        self._send = os.fdopen(to_browser[1], "wb", buffering=0)
        self._receive = os.fdopen(from_browser[0], "rb", buffering=0)
        self._buffer = b""
        self._id = 0
        self._target: str | None = None

    def call(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            # A silent Chromium must not hang the suite: wait for the pipe at most until
            # the deadline, then fall through to the TimeoutError.
            remaining = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._receive], [], [], remaining)
            if not ready:
                break
            chunk = self._receive.read(1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raise TimeoutError(method)

    def open(self, url: str, timeout: float = 60.0, settle: float = 2.0) -> tuple[str, dict]:
        """Open ``url`` in a fresh tab (the previous one closed) and wait until the page
        has stayed ready for ``settle`` s; returns the tab's session and what it shows."""
        if self._target:
            self.call("Target.closeTarget", {"targetId": self._target})
        target = self._target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self._viewport(session, HEIGHT)
        self.call("Page.enable", {}, session)
        self.call("Page.navigate", {"url": url}, session)
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        since = time.monotonic()
        while time.monotonic() < deadline:
            page = self.evaluate(session, READY)
            key = (page.get("state"), page.get("shown"), page.get("height"))
            if key != (last.get("state"), last.get("shown"), last.get("height")):
                last, since = page, time.monotonic()
            elif page.get("state") == "ready" and time.monotonic() - since >= settle:
                return session, page
            time.sleep(0.25)
        raise TimeoutError(f"{url} never finished rendering (last state: {last.get('state')})")

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        return result["result"].get("value")

    def screenshot(self, session: str, path: Path, height: int) -> bytes:
        """The whole page: the viewport grows to the page's height first (Streamlit
        scrolls inside its own container, so a plain capture stops at the fold)."""
        self._viewport(session, max(HEIGHT, min(height, 6000)))
        time.sleep(1.0)  # charts re-lay out to the new size
        data = base64.b64decode(
            self.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        )
        path.write_bytes(data)
        return data

    def _viewport(self, session: str, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def make_database(clickhouse: Any, fill: bool, root: Path) -> Any:
    """tests/test_dashboard.py's database maker (a migrated database, filled or not),
    loaded by path so this works whatever pytest's import mode."""
    maker = load(Path(__file__).with_name("test_dashboard.py"), "lastmile_test_dashboard")
    return maker.make_database(clickhouse, fill, root)


def _serve(env: dict[str, str], cwd: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    full.update(env, LASTMILE_DASHBOARD_PORT=str(port))
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli"],
            env=full,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the dashboard exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return process, url
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise TimeoutError(f"the dashboard did not answer: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def served(clickhouse: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard's URL, served against a filled database."""
    root = tmp_path_factory.mktemp("dashboard-e2e")
    filled = make_database(clickhouse, True, root)
    process, url = _serve(filled.env, root, root / "dashboard.log")
    try:
        yield url
    finally:
        _stop(process)


def _is_picture(png: bytes) -> tuple[int, float]:
    """How many colours the screenshot has, and the share of pixels that are not
    background: a blank or error page has few of both."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.resize((image.width // 4, image.height // 4))
    pixels = list(small.getdata())
    counts = collections.Counter(pixels)
    background = counts.most_common(1)[0][0]
    busy = sum(
        1 for p in pixels if sum(abs(a - b) for a, b in zip(p, background, strict=True)) > 30
    )
    return len(counts), busy / len(pixels)


def shoot(browser: Chromium, url: str, name: str, folder: Path) -> dict[str, Any]:
    """Open page `name` of the dashboard at `url`, check it rendered (no exception or
    error, its title, a picture with content) and save its screenshot in `folder`."""
    path, params = SHOTS[name]
    query = "&".join(f"{k}={v}" for k, v in params.items())
    session, page = browser.open(f"{url}/{path}" + (f"?{query}" if query else ""))
    assert page["exceptions"] == 0, page["text"]
    assert page["errors"] == [], page["errors"]
    assert page["title"] == name.replace("_", " ").capitalize(), page["text"]
    folder.mkdir(exist_ok=True)
    png = browser.screenshot(session, folder / f"{name}.png", page["height"])
    colours, busy = _is_picture(png)
    assert len(png) > 40_000, f"{name}.png is only {len(png)} bytes"
    assert colours > 200 and busy > 0.08, (name, colours, busy)
    return page


@pytest.mark.parametrize("name", list(SHOTS))
def test_page_in_a_browser(served: str, browser: Chromium, name: str, tmp_path: Path) -> None:
    page = shoot(browser, served, name, tmp_path)
    if name == "overview":
        texts = " ".join(page["metrics"])
        for label in ("Requests/s", "Predictions/s", "Dead letters/s", "Latency p99", "Sink lag"):
            assert label in texts
        assert "42 msgs" in texts


def test_password_in_a_browser(clickhouse: Any, browser: Chromium, tmp_path: Path) -> None:
    """With a password set, a browser gets the sign-in form on every page and no data."""
    filled = make_database(clickhouse, False, tmp_path)
    log = tmp_path / "dashboard.log"
    process, url = _serve({**filled.env, "LASTMILE_DASHBOARD_PASSWORD": "s3cret"}, tmp_path, log)
    try:
        for path in ("", "drift", "dead_letters"):
            _session, page = browser.open(f"{url}/{path}")
            assert page["title"] == "lastmile"
            assert page["metrics"] == []
            assert "Password" in page["text"] and "Requests/s" not in page["text"]
    finally:
        _stop(process)


# -- the demo itself ----------------------------------------------------------------------

# `make demo`'s stack with its clock sped up: faster traffic, the drift after 40 s instead
# of 3 min, 10 s monitor windows, an online snapshot every 4,000 outcomes.
DEMO_SETTINGS = {
    "LASTMILE_DEMO_RATE": "300",
    "LASTMILE_DEMO_DRIFT_AFTER": "40",
    "LASTMILE_DEMO_LABEL_DELAY": "2",
    "LASTMILE_MONITOR_WINDOW": "10s",
    "LASTMILE_MONITOR_ALLOWED_LATENESS": "2s",
    "LASTMILE_MONITOR_SNAPSHOT_INTERVAL": "5s",
    # The story is drift first, then healing: a first snapshot after 6,000 outcomes (20 s)
    # could win its comparison and be promoted before the drift had raised its alert on
    # v1 (seen once: the alert then fired on v3 only). 18,000 outcomes: a minute.
    "LASTMILE_LEARNER_SNAPSHOT_EVERY": "18000",
    "LASTMILE_ACTIONS_COOLDOWN": "5s",
    "LASTMILE_ACTIONS_MAX_PER_HOUR": "100",
}
# The features the demo's drift shifts (FEATURE_DRIFT["agrawal"] in streams/local/simulate.py).
SHIFTED = ("age", "salary")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """``lastmile up --demo`` on free ports: the dashboard's URL and a ClickHouse client."""
    from streams.config import load_settings
    from streams.storage.db import connect

    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    ports = {
        name: str(free_port())
        for name in ("KAFKA_PORT", "CLICKHOUSE_PORT", "DASHBOARD_PORT", "GATEWAY_PORT")
    }
    ports["WEB_PORT"] = str(free_ports(8))  # one per role: web_port + offset
    lastmile = {
        "LASTMILE_DATA_DIR": str(root / "data"),
        **{f"LASTMILE_{k}": v for k, v in ports.items()},
        **DEMO_SETTINGS,
    }
    log = root / "up.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli.main", "up", "--demo"],
            env={**env, **lastmile},
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{ports['DASHBOARD_PORT']}"
    try:
        deadline = time.monotonic() + 240
        while b"simulate" not in log.read_bytes() or not _healthy(url):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1.0)
        client = connect(load_settings(env=lastmile, toml_path=None))
        yield url, client
    finally:
        process.terminate()  # SIGTERM: `lastmile up` stops every child
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
            return reply.read().strip() == b"ok"
    except OSError:
        return False


# The demo's story takes minutes of real time: start-up (up to 240 s), the drift's alert,
# the operator's promotion and six screenshots. The suite-wide 300 s (which counts the
# fixture's set-up too) is for tests that should be quick; this one has its own budget.
@pytest.mark.timeout(900)
def test_the_demo_tells_its_story_in_a_browser(demo: tuple[str, Any], browser: Chromium) -> None:
    """The demo's drift raises the drift alert and shows on the drift page: windows of a
    shifted feature flagged once the drift began, none before; then every page is
    screenshot under docs/."""
    url, client = demo
    # One budget for the alert and the promotion together: under load the alert comes
    # late and the promotion follows it closely, so two separate limits fail spuriously.
    deadline = time.monotonic() + 480
    while True:
        fired = client.query(
            "SELECT feature FROM alerts WHERE model = 'fraud' AND version = 1 "
            "AND rule = 'feature_drift' AND state = 'firing' "
            "AND feature IN {shifted:Array(String)}",
            parameters={"shifted": list(SHIFTED)},
        ).result_rows
        if fired:
            break
        assert time.monotonic() < deadline, "the demo's drift raised no alert in 8 minutes"
        time.sleep(3.0)
    # What the drift page plots for the shifted feature: calm windows, then drifted ones.
    windows = client.query(
        # The champion's windows (v1, 90 % of the traffic): the broken challenger's are a
        # tenth the size, where a p-value test flags 5 % of calm windows by design.
        "SELECT window_start, max(value) FROM metrics WHERE model = 'fraud' AND version = 1 "
        "AND segment = '' AND metric = 'drift' AND feature = {feature:String} "
        "GROUP BY window_start ORDER BY window_start",
        parameters={"feature": fired[0][0]},
    ).result_rows
    flags = [value for _start, value in windows]
    assert 1.0 in flags, windows
    first = flags.index(1.0)
    assert first >= 2 and not any(flags[:first]), flags
    assert sum(flags[first:]) >= len(flags[first:]) - 1, flags
    # The pictures tell the whole story: wait until the operator has promoted a snapshot
    # (tests/streams/local/test_demo_heals.py checks the healing itself).
    while not client.query(
        "SELECT count() FROM actions WHERE model = 'fraud' AND kind = 'promote' "
        "AND outcome = 'done'"
    ).result_rows[0][0]:
        assert time.monotonic() < deadline, "the demo promoted nothing in 8 minutes"
        time.sleep(3.0)
    time.sleep(25.0)  # two windows of the new champion on the Performance page
    for name in SHOTS:
        page = shoot(browser, url, name, DOCS)
        if name == "drift":
            assert "age" in page["text"], page["text"]
        if name == "alerts":
            assert "feature_drift" in page["text"], page["text"]
