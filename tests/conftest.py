"""Fixtures for integration tests: one real broker and one real ClickHouse store per session.

Both run on free ports in a temporary directory. Tests that need topics or
tables of their own take ``fresh_settings``, which names every topic uniquely,
so tests sharing the broker never read each other's messages.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import is_hypothesis_test
from private_settings import private_settings

from streams.config import Settings
from streams.local.broker import EmbeddedBroker
from streams.local.processes import free_port

# Faust sets the root logger to DEBUG unless told otherwise (DESIGN.md).
logging.getLogger().setLevel(logging.INFO)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def broker(stack_dir: Path) -> Iterator[EmbeddedBroker]:
    """The embedded broker, started once for the whole test session."""
    with EmbeddedBroker(stack_dir / "broker", free_port()) as running:
        yield running


@pytest.fixture(scope="session")
def clickhouse(stack_dir: Path) -> Iterator[object]:
    """The embedded ClickHouse store, started once for the whole test session."""
    from streams.storage.store import EmbeddedStore

    store = EmbeddedStore(stack_dir / "clickhouse", free_port(), log_path=stack_dir / "store.log")
    store.start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def fresh_settings(broker: EmbeddedBroker, tmp_path: Path) -> Callable[..., Settings]:
    """Settings against the session broker with topics no other test uses.

    Call it with overrides: ``fresh_settings(clickhouse_port=...)``.
    """

    def make(**overrides: object) -> Settings:
        return private_settings(broker.port, tmp_path / "data", **overrides)

    return make


STACK_FIXTURES = frozenset({"broker", "clickhouse", "fresh_settings", "stack_dir"})
#: Names whose use in a test, a fixture or a helper they call means it starts the embedded
#: broker, a ClickHouse store, the stack or another process of its own.
STARTS_PROCESSES = frozenset(
    {"EmbeddedBroker", "EmbeddedStore", "ManagedProcess", "Popen", "subprocess", "multiprocessing"}
)


def _starts_processes(func: object, seen: set[int]) -> bool:
    """Whether `func`'s code names one of :data:`STARTS_PROCESSES`, or calls a function of
    its own module that does (helpers such as ``start_up`` in a test module)."""
    func = inspect.unwrap(func)  # type: ignore[arg-type]
    code = getattr(func, "__code__", None)
    if code is None or id(code) in seen:
        return False
    seen.add(id(code))
    names = set(code.co_names)
    for const in code.co_consts:  # nested functions and lambdas
        if inspect.iscode(const):
            names.update(const.co_names)
    if names & STARTS_PROCESSES:
        return True
    module = inspect.getmodule(func)
    helpers = (getattr(module, name, None) for name in names)
    return any(
        inspect.isfunction(h) and inspect.getmodule(h) is module and _starts_processes(h, seen)
        for h in helpers
    )


def _needs_stack(item: pytest.Item) -> bool:
    if STACK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    funcs = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        funcs += [d.func for d in defs]
    seen: set[int] = set()
    return any(f is not None and _starts_processes(f, seen) for f in funcs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fuzz: a Hypothesis property test (hundreds of examples each); "
        '`-m "not stack and not fuzz"` is the quickest loop',
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the embedded broker or ClickHouse, or starts processes of
    its own (a broker, a store, ``lastmile up``, a second Python), as ``stack``.

    Read from the fixtures a test asks for and from the code of the test, of its fixtures
    and of the module's helpers they call, so a new integration test is marked without
    anyone remembering to; ``pytest -m "not stack"`` then runs the unit tests alone.
    Hypothesis tests are also marked ``fuzz``: they are most of the unit tests' time.
    """
    for item in items:
        if _needs_stack(item):
            item.add_marker(pytest.mark.stack)
        if is_hypothesis_test(getattr(item, "obj", None)):
            item.add_marker(pytest.mark.fuzz)
