"""Alert sinks, and the background delivery that keeps them off the stream's path.

A sink delivers one alert synchronously (:class:`LogSink`, :class:`WebhookSink` for a
generic JSON POST, :class:`SlackSink` for a Slack-compatible incoming webhook).
:class:`AsyncNotifier` puts a sink behind a bounded queue and a daemon thread: ``notify``
never blocks and never raises; failed deliveries are retried with exponential backoff
(``backoff * 2**attempt``, capped at `max_backoff`); when the queue is full the oldest
alert is dropped and counted, because the newest state of an alert matters most.
:class:`Notifier` fans out to several sinks, each with its own queue, so a dead webhook
does not hold up the log.

"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import httpx

from monitors.events import AlertEvent

__all__ = [
    "AsyncNotifier",
    "DeliveryError",
    "LogSink",
    "Notifier",
    "Sink",
    "SlackSink",
    "WebhookSink",
    "alert_text",
]

log = logging.getLogger("lastmile.monitors.notify")


class Sink(Protocol):
    def send(self, alert: AlertEvent) -> None: ...


class DeliveryError(Exception):
    """A delivery failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def alert_text(alert: AlertEvent) -> str:
    """A one-line human summary of an alert.

    >>> alert_text(AlertEvent("churn", "3", "drift", "drift", "age", 1.0, 0.5, "warning",
    ...                       rule="feature_drift", ts=120.0))
    '[WARNING] FIRING churn v3 drift: drift of age = 1 (threshold 0.5, rule feature_drift)'

    """
    return alert.message


class LogSink:
    """Writes each alert as one log line (critical alerts at ERROR, others at WARNING)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def send(self, alert: AlertEvent) -> None:
        level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        if alert.state == "resolved":
            level = logging.INFO
        self.logger.log(level, alert_text(alert))


class WebhookSink:
    """POSTs each alert as JSON to `url`: the :class:`AlertEvent` fields plus `alert_id`
    and `message`.

    Connection errors, timeouts, 429 and 5xx answers are retryable; other 4xx are not
    (the payload will not get better).
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._client: httpx.Client | None = None

    def payload(self, alert: AlertEvent) -> dict[str, Any]:
        return {**alert.to_dict(), "alert_id": alert.alert_id, "message": alert.message}

    def send(self, alert: AlertEvent) -> None:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, headers=self.headers)
        try:
            response = self._client.post(self.url, json=self.payload(alert))
        except httpx.HTTPError as e:
            raise DeliveryError(f"{self.url}: {type(e).__name__}: {e}") from e
        if response.status_code >= 400:
            retryable = response.status_code == 429 or response.status_code >= 500
            raise DeliveryError(f"{self.url}: HTTP {response.status_code}", retryable)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class SlackSink(WebhookSink):
    """A Slack-compatible incoming-webhook payload: ``text`` plus a ``blocks`` section.

    >>> a = AlertEvent("churn", "3", "latency", "latency_p99", None, 1.4, 1.0, "critical",
    ...                rule="latency_p99", ts=60.0)
    >>> SlackSink("http://hook").payload(a)["text"]
    '[CRITICAL] FIRING churn v3 latency: latency_p99 = 1.4 (threshold 1, rule latency_p99)'

    """

    EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}

    def payload(self, alert: AlertEvent) -> dict[str, Any]:
        text = alert_text(alert)
        icon = ":white_check_mark:" if alert.state == "resolved" else self.EMOJI[alert.severity]
        return {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {text}"}}],
        }


class AsyncNotifier:
    """Delivers alerts to one sink from a background thread, never blocking the caller.

    >>> delivered = []
    >>> class ListSink:
    ...     def send(self, alert):
    ...         delivered.append(alert.rule)
    >>> n = AsyncNotifier(ListSink())
    >>> n.notify(AlertEvent("m", "1", "quality", "missing_rate", "x", 0.3, 0.2, "info",
    ...                     rule="missing"))
    >>> n.flush(timeout=5.0), delivered, n.sent
    (True, ['missing'], 1)
    >>> n.close()

    """

    def __init__(
        self,
        sink: Sink,
        max_queue: int = 1000,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if max_queue < 1 or max_attempts < 1:
            raise ValueError("max_queue and max_attempts must be >= 1")
        self.sink = sink
        self.max_queue = max_queue
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.retries = 0
        self._queue: collections.deque[AlertEvent] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._abort = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"notify-{type(sink).__name__}", daemon=True
        )
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._busy

    def notify(self, alert: AlertEvent) -> None:
        """Queue an alert; drops the oldest queued one when the queue is full."""
        with self._cond:
            if self._closing:
                self.dropped += 1
                return
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(alert)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                alert = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(alert)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if self._abort.is_set():
                with self._cond:
                    self.dropped += len(self._queue)
                    self._queue.clear()
                return

    def _deliver(self, alert: AlertEvent) -> None:
        for attempt in range(self.max_attempts):
            try:
                self.sink.send(alert)
                self.sent += 1
                return
            except Exception as e:  # a sink must never kill the delivery thread
                retryable = getattr(e, "retryable", True)
                if not retryable or attempt == self.max_attempts - 1:
                    self.failed += 1
                    log.warning("alert delivery failed for good: %s", e)
                    return
                self.retries += 1
                delay = min(self.max_backoff, self.backoff * 2**attempt)
                if self._abort.wait(delay):
                    self.failed += 1
                    return

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued was delivered or gave up; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking alerts, try to drain for up to `timeout` seconds, then give up."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(timeout)
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()


class Notifier:
    """Fans alerts out to several sinks, each behind its own :class:`AsyncNotifier`.

    >>> n = Notifier([LogSink()])
    >>> n.notify(AlertEvent("m", "1", "quality", "missing_rate", "x", 0.3, 0.2, "info"))
    >>> n.flush(5.0)
    True
    >>> n.close()

    """

    def __init__(self, sinks: Iterable[Sink], **kwargs: Any) -> None:
        self.notifiers = [AsyncNotifier(sink, **kwargs) for sink in sinks]

    def notify(self, alert: AlertEvent) -> None:
        for n in self.notifiers:
            n.notify(alert)

    def notify_many(self, alerts: Iterable[AlertEvent]) -> None:
        for alert in alerts:
            self.notify(alert)

    @property
    def dropped(self) -> int:
        return sum(n.dropped for n in self.notifiers)

    def flush(self, timeout: float | None = None) -> bool:
        return all([n.flush(timeout) for n in self.notifiers])

    def close(self, timeout: float = 5.0) -> None:
        for n in self.notifiers:
            n.close(timeout)
