"""``client.models`` on a registry of its own (nothing published), the rows ``score``
takes, and what ``help(lastmile.Client)`` teaches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from river import linear_model

import lastmile
from lastmile.scoring import as_rows
from streams.config import load_settings

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(tmp_path: Path) -> lastmile.Client:
    return lastmile.Client(registry=str(tmp_path / "registry"), publish=False)


def regressor(bias: float) -> linear_model.LinearRegression:
    model = linear_model.LinearRegression()
    model.learn_one({"x": 1.0}, bias)
    return model


def test_versions_aliases_split_shadow_rollback_and_retire(client: lastmile.Client) -> None:
    reference = pd.DataFrame({"x": np.linspace(0.0, 1.0, 50)})
    for bias in (1.0, 2.0, 3.0):
        client.models.register(regressor(bias), name="eta", reference=reference)
    assert client.models.get("eta").version == 3
    assert client.models.get("eta", 1).features == [{"name": "x", "type": "number"}]

    client.models.promote("eta", 1)
    client.models.promote("eta", 2, alias="challenger")
    client.models.split("eta", champion=90, challenger=10)
    client.models.shadow("eta", 3)
    state = client.models.state("eta")
    assert (state.champion, state.aliases["challenger"], state.shadow) == (1, 2, 3)
    assert state.split == {"champion": 90.0, "challenger": 10.0}

    client.models.promote("eta", 2)
    assert client.models.rollback("eta").state.champion == 1
    client.models.shadow("eta", None)
    client.models.split("eta")  # no weights: all traffic to the champion
    client.models.retire("eta", 3)

    row = client.models.list().set_index("model").loc["eta"]
    assert (row["champion"], row["split"], row["versions"], row["live"]) == (1, "", 3, 2)
    shown = client.models.show("eta").set_index("version")
    assert shown.loc[1, "aliases"] == "champion" and shown.loc[3, "retired"] == "yes"
    # The loaded version scores as the object registered.
    assert client.models.load("eta", 2).predict_one({"x": 1.0})[0] == pytest.approx(
        regressor(2.0).predict_one({"x": 1.0})
    )


def test_refusals_are_lastmile_errors_and_change_nothing(client: lastmile.Client) -> None:
    client.models.register(regressor(1.0), name="eta", features=["x"])
    before = client.models.state("eta")
    for change in (
        lambda: client.models.promote("eta", 5),
        lambda: client.models.split("eta", champion=-1),
        lambda: client.models.rollback("eta"),
        lambda: client.models.get("missing"),
    ):
        with pytest.raises(lastmile.LastmileError):
            change()
    assert client.models.state("eta").aliases == before.aliases
    assert client.models.list()["model"].tolist() == ["eta"]


def test_an_empty_registry_lists_an_empty_frame(client: lastmile.Client) -> None:
    assert client.models.list().empty


def test_pause_and_resume_go_through_the_control_plane(client: lastmile.Client) -> None:
    client.models.register(regressor(1.0), name="eta", features=["x"], promote="champion")
    assert client.models.pause("eta", fallback_score=0.0).changed
    assert client.models.resume("eta").changed


def test_rows_become_plain_feature_dicts() -> None:
    frame = pd.DataFrame(
        {"a": [1.5, np.nan], "n": np.array([3, 4], dtype=np.int64), "s": ["x", None]},
        index=["first", "second"],
    )
    index, rows = as_rows(frame)
    assert list(index) == ["first", "second"]
    assert rows == [{"a": 1.5, "n": 3, "s": "x"}, {"a": None, "n": 4, "s": None}]
    assert all(type(r["n"]) is int for r in rows)
    assert as_rows({"a": np.float32(2.0)})[1] == [{"a": 2.0}]
    with pytest.raises(lastmile.ClientError, match="DataFrame"):
        as_rows(42)


def test_the_client_settings_follow_its_arguments(tmp_path: Path) -> None:
    client = lastmile.Client(
        bootstrap="kafka:9092", clickhouse="http://ch:8123/prod", registry=str(tmp_path)
    )
    assert client.settings.kafka_bootstrap_servers == "kafka:9092"
    assert client.settings.clickhouse_params()["database"] == "prod"
    assert client.models.registry.root == tmp_path
    # No arguments: the settings every `lastmile` command reads.
    assert lastmile.Client().settings == load_settings()
    assert load_settings(env={}, toml_path=None).kafka_bootstrap_servers == "127.0.0.1:9092"


def test_help_of_the_client_teaches() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", "import lastmile; help(lastmile.Client)"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": str(CHECKOUT), "PAGER": "cat", "PATH": "/usr/bin:/bin"},
    ).stdout
    for taught in ("score(", "predictions(", "metrics(", "alerts(", "simulate(", "models"):
        assert taught in shown, taught
    assert "lastmile up" in shown and ">>> " in shown


def test_a_clickhouse_that_does_not_answer_is_one_clear_error(tmp_path: Path) -> None:
    from streams.local.processes import free_port

    client = lastmile.Client(clickhouse=f"http://127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(lastmile.StoreUnavailable, match="lastmile up") as caught:
        client.predictions("fraud")
    assert "nowhere" in str(caught.value) and isinstance(caught.value, lastmile.LastmileError)
