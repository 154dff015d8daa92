"""``lastmile models register`` infers the flavor of a file, ``--flavor`` is checked against
it, and ``models show`` says whether loading a version runs code."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flavor_models import FEATURES, data, lgb_classifier, sklearn_pipeline

from streams.cli.models import models
from streams.config import Settings, load_settings


@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    return load_settings(env={}, toml_path=None, registry=str(tmp_path / "registry"))


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(models, ["--no-publish", *args], obj=settings)


def test_register_infers_checks_and_shows(offline: Settings, tmp_path: Path) -> None:
    X, y, _ = data()
    text = tmp_path / "fraud.txt"
    text.write_text(lgb_classifier(X, y).booster_.model_to_string())
    features = ",".join(FEATURES)
    result = run(offline, "register", str(text), "--name", "fraud", "--features", features)
    assert result.exit_code == 0, result.output
    assert "registered version 1 (lightgbm, classification" in result.output

    refused = run(offline, "register", str(text), "-n", "fraud", "--flavor", "xgboost")
    assert refused.exit_code == 1
    assert "declared flavor xgboost, but" in refused.output and "LightGBM" in refused.output
    wrong = run(offline, "register", str(text), "-n", "fraud", "--features", "f0,f1")
    assert wrong.exit_code == 1 and "2 features (f0, f1), but" in wrong.output

    pkl = tmp_path / "churn.pkl"
    pkl.write_bytes(pickle.dumps(sklearn_pipeline(X, y)))
    assert run(offline, "register", str(pkl), "-n", "churn").exit_code == 0

    rows = json.loads(run(offline, "show", "churn", "--json").output)["versions"]
    assert [(r["flavor"], r["runs_code"]) for r in rows] == [("sklearn", "yes")]
    rows = json.loads(run(offline, "show", "fraud", "--json").output)["versions"]
    assert [(r["flavor"], r["runs_code"]) for r in rows] == [("lightgbm", "")]
    one = run(offline, "show", "churn", "1")
    assert "yes: loading it runs code" in one.output
    meta = json.loads(run(offline, "show", "fraud", "1", "--json").output)
    assert meta["executes_code"] is False and meta["artifact"] == "model.txt"
    assert meta["integrity"] == "ok"


def test_allow_code_off_refuses_a_pickle_from_the_cli(tmp_path: Path) -> None:
    X, y, _ = data()
    strict = load_settings(
        env={}, toml_path=None, registry=str(tmp_path / "registry"), registry_allow_code=False
    )
    pkl = tmp_path / "churn.pkl"
    pkl.write_bytes(pickle.dumps(sklearn_pipeline(X, y)))
    result = run(strict, "register", str(pkl), "-n", "churn")
    assert result.exit_code == 1
    assert "is a pickle, which runs code when loaded, and registry_allow_code is off" in (
        result.output
    )
