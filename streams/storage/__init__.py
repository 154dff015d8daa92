"""lastmile's storage: the ClickHouse database (clients, migrations, retention) in
:mod:`streams.storage.db`, and the embedded ClickHouse HTTP store over chDB in
:mod:`streams.storage.store`."""

from __future__ import annotations

from streams.faces import lazy_exports

# Where each public name lives. They load on first use (PEP 562), so a command that
# needs one submodule does not pay for importing the others.
_HOMES = {
    "MigrationError": "streams.storage.db",
    "connect": "streams.storage.db",
    "ensure_schema": "streams.storage.db",
    "migrate": "streams.storage.db",
    "run_sql": "streams.storage.db",
    "ClickHouseError": "streams.storage.store",
    "EmbeddedStore": "streams.storage.store",
    "StoreError": "streams.storage.store",
}

__all__ = list(_HOMES)

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
