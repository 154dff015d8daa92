"""The monitor's settings: the ``monitor`` section of :class:`~streams.config.Settings`
(``[monitor]`` in lastmile.toml, ``LASTMILE_MONITOR_*`` variables), read where every
setting is read, :mod:`streams.config`; and the alert sinks they name.

>>> from streams.config import load_settings
>>> options = load_settings(env={"LASTMILE_MONITOR_WEBHOOKS": "http://a/hook"},
...                         toml_path=None).monitor
>>> [type(sink).__name__ for sink in alert_sinks(options)]
['LogSink', 'WebhookSink']
"""

from __future__ import annotations

from collections.abc import Sequence

from monitors.notify import LogSink, Sink, SlackSink, WebhookSink
from streams.config.monitor import MonitorSettings

__all__ = ["MonitorSettings", "alert_sinks"]


def alert_sinks(options: MonitorSettings, extra_webhooks: Sequence[str] = ()) -> list[Sink]:
    """The alert sinks: a log line always, then the webhooks."""
    sinks: list[Sink] = [LogSink()]
    sinks += [WebhookSink(url) for url in (*options.webhooks, *extra_webhooks)]
    sinks += [SlackSink(url) for url in options.slack_webhooks]
    return sinks
