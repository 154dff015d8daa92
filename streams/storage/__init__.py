"""lastmile's storage: the ClickHouse database (clients, migrations, retention) in
:mod:`streams.storage.db`, and the embedded ClickHouse HTTP store over chDB in
:mod:`streams.storage.store`."""

from __future__ import annotations

from streams.faces import lazy_exports

# Each submodule and its public names, imported on first use (streams/faces.py).
_NAMES = {
    "streams.storage.db": ("MigrationError", "connect", "ensure_schema", "migrate", "run_sql"),
    "streams.storage.store": ("ClickHouseError", "EmbeddedStore", "StoreError"),
}
_HOMES = {name: module for module, names in _NAMES.items() for name in names}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
