"""The Faust app of a worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.app import ROLES, create_app
from streams.config import load_settings
from streams.roles.contract import Role, RoleStats


def test_a_worker_app_makes_a_data_dir_that_does_not_exist_yet(tmp_path: Path) -> None:
    # Faust creates <data_dir>/faust but not its parents: the worker crashed at start.
    data_dir = tmp_path / "new" / "state"
    settings = load_settings(env={}, toml_path=None, data_dir=data_dir)
    app = create_app(settings, [])
    assert data_dir.is_dir()
    assert Path(app.conf.datadir).parent == data_dir


@pytest.mark.parametrize("name", sorted(ROLES))
def test_every_role_factory_makes_a_role(name: str, tmp_path: Path) -> None:
    # The worker starts, watches, shows and stops whatever ROLES gives: the sink is no
    # BatchLane, so the contract is the Role protocol, checked here without a broker.
    settings = load_settings(env={}, toml_path=None, data_dir=tmp_path)
    role = ROLES[name](settings)
    assert isinstance(role, Role)
    assert isinstance(role.stats, RoleStats)
    assert isinstance(role.group_id, str) and role.group_id
    assert role.failed is False
    assert isinstance(role.stats.as_dict(), dict)
