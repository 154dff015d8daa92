"""Import a module from its file: bench/ scripts (bench/ is not an installed package) and
test modules whose helpers another test reuses, whatever pytest's import mode."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str | None = None) -> ModuleType:
    """The module at ``path`` (relative paths from the repository's root), imported once
    under ``name`` (default: ``lastmile_`` and its path, dotted) and cached in sys.modules.

    >>> load(Path("bench/venvs.py")).__name__
    'lastmile_bench_venvs'
    """
    path = path if path.is_absolute() else ROOT / path
    name = name or "lastmile_" + "_".join(path.relative_to(ROOT).with_suffix("").parts)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
