"""Package faces whose names load on first use (PEP 562).

A command that needs one submodule of a face should not pay for importing the others
(``lastmile --help`` stays quick), so the face lists where each public name lives and
imports it when it is first asked for.

>>> getattr_, dir_ = lazy_exports("demo", {"sqrt": "math"}, {})
>>> getattr_("sqrt")(16.0)
4.0
>>> dir_()
['sqrt']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a face whose name ``n`` lives in module
    ``homes[n]``; a name once loaded is kept in `namespace` (the face's ``globals()``)."""

    def getattr_(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return getattr_, dir_
