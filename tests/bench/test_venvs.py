"""bench/venvs.py: a side virtualenv is ready only with its marker naming exactly its
packages, and a ready one is reused without running venv or pip."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from by_path import load

ROOT = Path(__file__).resolve().parents[2]


def load_venvs() -> ModuleType:
    """bench/venvs.py (bench/ is not a package)."""
    return load(Path("bench/venvs.py"))


venvs = load_venvs()


def fake_venv(home: Path, packages: tuple[str, ...], marker: str | None):
    venv = venvs.SideVenv("t", packages, home=home)
    venv.python.parent.mkdir(parents=True)
    venv.python.write_text("")
    if marker is not None:
        (venv.path / venvs.MARKER).write_text(marker)
    return venv


def test_ready_needs_the_marker_to_name_exactly_the_packages(tmp_path: Path) -> None:
    assert not fake_venv(tmp_path / "none", ("a", "b==1"), None).ready()  # pip never finished
    assert fake_venv(tmp_path / "same", ("a", "b==1"), "a\nb==1\n").ready()
    assert not fake_venv(tmp_path / "pin", ("a", "b==2"), "a\nb==1\n").ready()
    assert not venvs.SideVenv("t", ("a",), home=tmp_path / "missing").ready()


def test_a_ready_venv_is_reused_without_venv_or_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = fake_venv(tmp_path, ("a",), "a\n")
    monkeypatch.setattr(venvs, "subprocess", None)  # any venv or pip run would raise
    assert venv.make(quiet=True) == venv.python


def test_the_kserve_client_venv_is_pinned_and_named_for_the_makefile() -> None:
    assert venvs.NAMED["kserve-client"] is venvs.KSERVE_CLIENT
    assert venvs.KSERVE_CLIENT.path == ROOT / ".lastmile" / "kserve-client-venv"
    assert all("<" in p for p in venvs.KSERVE_CLIENT.packages)  # an upper bound on each
