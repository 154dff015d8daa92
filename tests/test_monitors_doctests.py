"""Every docstring example in monitors/ runs and holds."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import monitors

MODULES = sorted(m.name for m in pkgutil.iter_modules(monitors.__path__, "monitors."))


def test_every_module_is_covered():
    assert {"monitors.drift", "monitors.sketches", "monitors.windows", "monitors.rules"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
