"""What a setting is: a dataclass field with a doc, a secret flag and a kind, and how a raw
value (a TOML value, an environment string) becomes the field's type.

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Knobs:
...     wait: float = setting(60.0, "How long to wait.", kind="duration")
...     names: tuple[str, ...] = setting((), "Who.", kind="list")
>>> wait, names = dataclasses.fields(Knobs)
>>> convert(wait, "10m", "$WAIT"), convert(names, "a, b", "$NAMES"), format_value(wait, 3600.0)
(600.0, ('a', 'b'), '1h')
>>> convert(wait, "soon", "$WAIT")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
streams.config.fields.ConfigError: setting wait from $WAIT: 'soon' is not valid (...)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitors.rules import parse_duration
from streams.errors import StreamsError

__all__ = [
    "ENV_PREFIX",
    "SECRET_MARK",
    "ConfigError",
    "convert",
    "csv_list",
    "format_value",
    "setting",
]

ENV_PREFIX = "LASTMILE_"
SECRET_MARK = "password"
#: How a raw value is read beyond its type: a duration (seconds, or 30s / 10m / 1h / 7d)
#: or a list (comma-separated in the environment, an array in TOML).
KINDS = ("duration", "list")


class ConfigError(StreamsError, ValueError):
    """A setting has a value lastmile cannot use; the message names the setting and its source.

    `key` is the setting (or variable, or file) at fault and `value` the raw value, when known.

    >>> err = ConfigError("setting kafka_port from $LASTMILE_KAFKA_PORT: 'x' is not valid",
    ...                   key="kafka_port", value="x")
    >>> err.key, err.value, isinstance(err, ValueError)
    ('kafka_port', 'x', True)
    """

    def __init__(self, message: str, *, key: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


def setting(
    default: Any, doc: str, secret: bool = False, *, key: str | None = None, kind: str | None = None
) -> Any:
    """A dataclass field that is a setting. `key` names it in a section when the field's own
    name differs (``group`` for ``group_id``: ``LASTMILE_LEARNER_GROUP``)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"setting kind {kind!r}: use one of {KINDS}")
    meta = {"doc": doc, "secret": secret, "key": key, "kind": kind}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def csv_list(text: str | None) -> tuple[str, ...]:
    """The non-empty, stripped items of a comma-separated list.

    >>> csv_list(" plan, variant,,")
    ('plan', 'variant')
    """
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def format_value(field: dataclasses.Field, value: Any) -> str:
    """A typed value as text that :func:`convert` reads back: how ``lastmile config`` shows
    it and how a process started by lastmile receives it."""
    if field.metadata.get("kind") == "duration":
        for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
            if value and value % seconds == 0:
                return f"{value / seconds:g}{unit}"
        return f"{value:g}s"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def convert(field: dataclasses.Field, raw: Any, source: str, name: str | None = None) -> Any:
    """Turn a raw value from TOML or the environment into the field's type; `name` is the
    setting's name in messages (the field's own by default)."""
    annotation = str(field.type)
    name = name or field.name
    kind = field.metadata.get("kind")
    if raw is None:
        return None
    try:
        if kind == "list":
            if isinstance(raw, list | tuple):
                return tuple(str(item).strip() for item in raw if str(item).strip())
            return csv_list(str(raw))
        if kind == "duration":
            return parse_duration(raw)
        if annotation.startswith("dict"):
            value = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(value, Mapping):
                raise ValueError("expected a JSON object / TOML table")
            return {str(k): str(v) for k, v in value.items()}
        if annotation.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            if text in ("", "auto") and annotation.endswith("None"):
                return None
            raise ValueError("expected true or false")
        if annotation.startswith("int"):
            if isinstance(raw, bool):
                raise ValueError("expected an integer")
            value = int(raw)
            if "port" in name and not 0 < value < 65536:
                raise ValueError("a port is between 1 and 65535")
            return value
        if annotation.startswith("float"):
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            return float(raw)
        if annotation.startswith("Path"):
            return Path(os.path.expanduser(str(raw)))
        text = str(raw)
        return text if text or not annotation.endswith("None") else None
    except (ValueError, TypeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"setting {name} from {source}: {raw!r} is not valid ({err})", key=name, value=raw
        ) from None
