"""Every setting of lastmile: flat ones (``settings.kafka_port``) and one section a role
(``settings.learner.policy``, ``settings.monitor.window``), parsed once.

A setting's value comes from, in rising order of precedence: its default (which
suits the embedded stack on one machine), the file ``lastmile.toml`` (in the
working directory, or wherever ``LASTMILE_CONFIG`` points; a section is a table,
``[learner]``, or flat keys, ``learner_policy = "auto"``), and the environment
variable ``LASTMILE_<NAME>`` (``LASTMILE_LEARNER_POLICY``). ``lastmile config``
prints the effective values and where each came from, with secrets masked.

>>> s = load_settings(env={"LASTMILE_KAFKA_PORT": "19092"}, toml_path=None)
>>> s.kafka_bootstrap_servers
'127.0.0.1:19092'
>>> s.embedded_kafka
True
>>> load_settings(env={"LASTMILE_KAFKA_BOOTSTRAP": "kafka:9092"}).embedded_kafka
False
>>> load_settings(env={"LASTMILE_MONITOR_WINDOW": "5m"}, toml_path=None).monitor.window
300.0
"""

from streams.config.fields import ENV_PREFIX, SECRET_MARK, ConfigError, csv_list
from streams.config.learner import POLICIES, LearnerSettings
from streams.config.loading import (
    describe,
    load_settings,
    load_settings_with_sources,
    settings_from_context,
)
from streams.config.monitor import MonitorSettings
from streams.config.settings import (
    BACKGROUND_FETCH_WAIT_MS,
    FETCH_WAIT_MS,
    FIELDS,
    FIXED_CLIENT_SETTINGS,
    KEYS,
    SECTIONS,
    Key,
    Settings,
    mask_url,
    settings_env,
)

__all__ = [
    "BACKGROUND_FETCH_WAIT_MS",
    "ENV_PREFIX",
    "FETCH_WAIT_MS",
    "FIELDS",
    "FIXED_CLIENT_SETTINGS",
    "KEYS",
    "POLICIES",
    "SECRET_MARK",
    "SECTIONS",
    "ConfigError",
    "Key",
    "LearnerSettings",
    "MonitorSettings",
    "Settings",
    "csv_list",
    "describe",
    "load_settings",
    "load_settings_with_sources",
    "mask_url",
    "settings_env",
    "settings_from_context",
]
