"""The Faust app of a worker."""

from __future__ import annotations

from pathlib import Path

from streams.app import create_app
from streams.config import load_settings


def test_a_worker_app_makes_a_data_dir_that_does_not_exist_yet(tmp_path: Path) -> None:
    # Faust creates <data_dir>/faust but not its parents: the worker crashed at start.
    data_dir = tmp_path / "new" / "state"
    settings = load_settings(env={}, toml_path=None, data_dir=data_dir)
    app = create_app(settings, [])
    assert data_dir.is_dir()
    assert Path(app.conf.datadir).parent == data_dir
