"""Alert delivery against a real HTTP server on 127.0.0.1: retries, payloads, never blocking."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitors.events import AlertEvent
from monitors.notify import AsyncNotifier, LogSink, Notifier, SlackSink, WebhookSink, alert_text


def alert(i=0, severity="warning", state="firing"):
    return AlertEvent(
        "churn",
        "3",
        "drift",
        "drift",
        f"f{i}",
        1.0,
        0.5,
        severity,
        state,
        "feature_drift",
        60.0 * i,
    )


class Hook:
    """A local webhook: records JSON bodies, answers `fail_first` requests with `fail_status`."""

    def __init__(self, fail_first=0, fail_status=500):
        self.bodies = []
        self.attempts = 0
        self.fail_first = fail_first
        self.fail_status = fail_status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                if hook.attempts <= hook.fail_first:
                    self.send_response(hook.fail_status)
                    self.end_headers()
                    return
                hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def dead_url():
    # A port that was just free: nothing listens, connections are refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_webhook_posts_the_alert_as_json():
    with Hook() as hook:
        n = AsyncNotifier(WebhookSink(hook.url), backoff=0.01)
        n.notify(alert(1))
        assert n.flush(5.0)
        n.close()
    expected = {**alert(1).to_dict(), "alert_id": alert(1).alert_id, "message": alert(1).message}
    assert hook.bodies == [expected]
    assert n.sent == 1 and n.failed == 0


def test_retries_with_backoff_until_the_endpoint_recovers():
    with Hook(fail_first=3) as hook:
        n = AsyncNotifier(WebhookSink(hook.url), max_attempts=5, backoff=0.02)
        t0 = time.monotonic()
        n.notify(alert(2))
        assert n.flush(10.0)
        elapsed = time.monotonic() - t0
        n.close()
    assert hook.attempts == 4 and [b["feature"] for b in hook.bodies] == ["f2"]
    assert n.retries == 3 and n.sent == 1 and n.failed == 0
    assert elapsed >= 0.02 + 0.04 + 0.08  # exponential backoff between attempts


def test_gives_up_after_max_attempts_and_does_not_retry_client_errors():
    with Hook(fail_first=100) as hook:
        n = AsyncNotifier(WebhookSink(hook.url), max_attempts=3, backoff=0.01)
        n.notify(alert())
        assert n.flush(5.0)
        assert hook.attempts == 3 and n.failed == 1
        n.close()
    with Hook(fail_first=100, fail_status=400) as hook:
        n = AsyncNotifier(WebhookSink(hook.url), max_attempts=5, backoff=0.01)
        n.notify(alert())
        assert n.flush(5.0)
        assert hook.attempts == 1 and n.failed == 1 and n.retries == 0
        n.close()


def test_slack_payload():
    with Hook() as hook:
        n = AsyncNotifier(SlackSink(hook.url), backoff=0.01)
        n.notify(alert(3, severity="critical"))
        n.notify(alert(3, severity="critical", state="resolved"))
        assert n.flush(5.0)
        n.close()
    firing, resolved = hook.bodies
    assert firing["text"] == alert_text(alert(3, severity="critical"))
    assert firing["text"].startswith("[CRITICAL] FIRING churn v3")
    assert firing["blocks"][0]["type"] == "section"
    assert ":rotating_light:" in firing["blocks"][0]["text"]["text"]
    assert "RESOLVED" in resolved["text"]


def test_burst_to_a_dead_endpoint_never_blocks():
    n = AsyncNotifier(WebhookSink(dead_url(), timeout=1.0), max_queue=100, backoff=0.05)
    t0 = time.perf_counter()
    for i in range(1000):
        n.notify(alert(i))
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.25  # 1,000 alerts queued in well under a second
    # Drop-oldest: the queue keeps the newest 100; the rest are counted as dropped.
    assert n.dropped >= 1000 - 100 - 1
    assert n.pending <= 101
    t1 = time.perf_counter()
    n.close(timeout=0.2)
    assert time.perf_counter() - t1 < 2.0
    assert n.sent == 0


def test_fan_out_keeps_the_log_flowing_past_a_dead_webhook(caplog):
    caplog.set_level(logging.WARNING, logger="lastmile.monitors.notify")
    notifier = Notifier([WebhookSink(dead_url()), LogSink()], backoff=0.5, max_queue=10)
    notifier.notify_many([alert(i) for i in range(3)])
    log_notifier = notifier.notifiers[1]
    assert log_notifier.flush(5.0)
    assert [r.getMessage() for r in caplog.records if "FIRING" in r.getMessage()] == [
        alert_text(alert(i)) for i in range(3)
    ]
    notifier.close(timeout=0.2)


def test_a_raising_sink_does_not_kill_the_thread():
    class Flaky:
        calls = 0

        def send(self, a):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("boom")

    n = AsyncNotifier(Flaky(), backoff=0.01)
    n.notify(alert())
    n.notify(alert(1))
    assert n.flush(5.0)
    assert n.sent == 2 and n.retries == 1
    n.close()
    n.notify(alert())  # after close: dropped, not raised
    assert n.dropped == 1
    with pytest.raises(ValueError):
        AsyncNotifier(Flaky(), max_queue=0)
