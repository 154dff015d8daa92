"""Reading the settings, once: defaults, then ``lastmile.toml``, then ``LASTMILE_*``
variables, then the caller's arguments; and ``lastmile config``'s table of them.

>>> s = load_settings(env={"LASTMILE_KAFKA_PORT": "19092"}, toml_path=None)
>>> s.kafka_bootstrap_servers
'127.0.0.1:19092'
>>> load_settings(env={"LASTMILE_LEARNER_POLICY": "sometimes"}, toml_path=None)
Traceback (most recent call last):
...
streams.config.fields.ConfigError: learner policy 'sometimes': ... (from $LASTMILE_LEARNER_POLICY)
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from streams.config.fields import ENV_PREFIX, SECRET_MARK, ConfigError, convert, format_value
from streams.config.settings import KEYS, SECTIONS, Key, Settings, mask_url

__all__ = [
    "describe",
    "load_section",
    "load_settings",
    "load_settings_with_sources",
    "settings_from_context",
]


def settings_from_context(ctx: Any) -> Settings:
    """The settings of a click command: those the caller passed (``obj=Settings`` or
    ``obj={"settings": Settings}``, as tests and ``lastmile up`` do), else loaded."""
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, Settings):
        return obj
    if isinstance(obj, Mapping) and isinstance(obj.get("settings"), Settings):
        return obj["settings"]
    settings = load_settings()
    if obj is None:
        root.obj = {"settings": settings}
    return settings


def load_settings(
    env: Mapping[str, str] | None = None,
    toml_path: Path | str | None | bool = True,
    **overrides: Any,
) -> Settings:
    """Build the effective settings.

    ``toml_path=True`` looks for ``$LASTMILE_CONFIG`` or ``./lastmile.toml``;
    ``None`` or ``False`` reads no file. Keyword ``overrides`` win over everything
    (tests and the embedded stack use them): a flat setting's value as its type, a
    section's by its flat name (``learner_policy="auto"``), or a whole section
    (``learner=LearnerSettings(...)``).
    """
    settings, _ = load_settings_with_sources(env, toml_path, **overrides)
    return settings


def load_section(section: str, env: Mapping[str, str]) -> Any:
    """One section as its variables in `env` set it; the other variables are not read."""
    prefix = f"{ENV_PREFIX}{section.upper()}_"
    mine = {k: v for k, v in env.items() if k.startswith(prefix)}
    return getattr(load_settings(env=mine, toml_path=None), section)


def _toml_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(flat name, raw value) of a lastmile.toml: top-level keys (or those of a
    ``[lastmile]`` table) and the keys of its ``[learner]`` / ``[monitor]`` tables."""
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}", key=str(path)) from None
    table = table.get("lastmile", table)
    for key, raw in table.items():
        if key in SECTIONS and isinstance(raw, Mapping):
            for inner, value in raw.items():
                name = f"{key}_{inner}"
                if name not in KEYS:
                    raise ConfigError(
                        f"{path}: unknown setting {inner!r} in [{key}]", key=name, value=value
                    )
                yield name, value
        elif key not in KEYS:
            raise ConfigError(f"{path}: unknown setting {key!r}", key=key, value=raw)
        else:
            yield key, raw


def _read(key: Key, raw: Any, source: str, values: dict[str, Any]) -> None:
    """Convert `raw` into `values`; in a section, an empty value (but an empty list) keeps
    the default, as an empty variable always has."""
    empty = isinstance(raw, str) and not raw.strip()
    if key.section and empty and key.field.metadata["kind"] != "list":
        values.pop(key.name, None)
        return
    values[key.name] = convert(key.field, raw, source, key.name)


def load_settings_with_sources(
    env: Mapping[str, str] | None = None,
    toml_path: Path | str | None | bool = True,
    **overrides: Any,
) -> tuple[Settings, dict[str, str]]:
    """Like :func:`load_settings`, and also say where each value came from (by flat name)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources = {name: "default" for name in KEYS}

    if toml_path is True:
        toml_path = env.get(f"{ENV_PREFIX}CONFIG") or "lastmile.toml"
        required = f"{ENV_PREFIX}CONFIG" in env
    else:
        required = bool(toml_path)
    if toml_path:
        path = Path(toml_path)
        if path.exists():
            for name, raw in _toml_items(path):
                _read(KEYS[name], raw, str(path), values)
                sources[name] = str(path)
        elif required:
            raise ConfigError(
                f"LASTMILE_CONFIG points at {path}, which does not exist",
                key="LASTMILE_CONFIG",
                value=str(path),
            )

    for key in KEYS.values():
        if key.env in env:
            _read(key, env[key.env], f"${key.env}", values)
            sources[key.name] = f"${key.env}"

    whole: dict[str, Any] = {}
    for name, raw in overrides.items():
        if name in SECTIONS and isinstance(raw, SECTIONS[name]):
            whole[name] = raw
            sources.update({k.name: "argument" for k in KEYS.values() if k.section == name})
            continue
        if name not in KEYS:
            raise ConfigError(f"unknown setting {name!r}", key=name, value=raw)
        if KEYS[name].section:
            _read(KEYS[name], raw, "argument", values)
        else:
            values[name] = raw  # typed already: the caller's own value
        sources[name] = "argument"
    flat = {name: value for name, value in values.items() if not KEYS[name].section}
    return Settings(**flat, **_sections(values, sources, whole)), sources


def _sections(
    values: Mapping[str, Any], sources: Mapping[str, str], whole: Mapping[str, Any]
) -> dict[str, Any]:
    """Each section built from its values; a value the section refuses names its source."""
    built = dict(whole)
    for section, cls in SECTIONS.items():
        if section in built:
            continue
        mine = {
            KEYS[name].field.name: value
            for name, value in values.items()
            if KEYS[name].section == section
        }
        try:
            built[section] = cls(**mine)
        except ConfigError as err:
            source = sources.get(err.key or "", "default")
            raise ConfigError(f"{err} (from {source})", key=err.key, value=err.value) from None
    return built


def _shown(key: Key, value: Any) -> str:
    """The value as ``lastmile config`` shows it: secrets masked, URLs without passwords."""
    secret = key.field.metadata["secret"]
    if value is None:
        return ""
    if secret and isinstance(value, tuple):
        return ",".join(mask_url(url) for url in value)
    if secret and key.name.endswith("url"):
        return mask_url(str(value))
    if secret:
        return "***"
    if isinstance(value, dict):
        return json.dumps(
            {k: ("***" if SECRET_MARK in k or "secret" in k else v) for k, v in value.items()}
        )
    return format_value(key.field, value)


def describe(settings: Settings, sources: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Rows of (setting, value with secrets masked, source, doc) for ``lastmile config``,
    one a setting, the sections' as ``learner_policy``, ``monitor_window``, ...

    >>> rows = {r["setting"]: r for r in describe(load_settings(env={}, toml_path=None))}
    >>> rows["learner_join_ttl"]["value"], rows["monitor_group"]["env"]
    ('7d', 'LASTMILE_MONITOR_GROUP')
    """
    return [
        {
            "setting": key.name,
            "env": key.env,
            "value": _shown(key, key.get(settings)),
            "source": (sources or {}).get(key.name, ""),
            "doc": key.field.metadata["doc"],
        }
        for key in KEYS.values()
    ]
