"""``lastmile models``: every command through click's CliRunner."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from river import linear_model, preprocessing

from streams.cli.models import models
from streams.config import Settings, load_settings
from streams.models import ModelTable, ModelWatcher

MODEL_PY = """
from river import linear_model, preprocessing

def build():
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for i in range(200):
        model.learn_one({"a": float(i % 10), "b": float(i % 3)}, i % 10 > 4)
    return model
"""


@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    return load_settings(env={}, toml_path=None, registry=str(tmp_path / "registry"))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    # One module name per test: a python path's file is imported under its own name.
    module = tmp_path / f"mymodel_{tmp_path.name}.py"
    module.write_text(MODEL_PY)
    ref = tmp_path / "ref.jsonl"
    ref.write_text(
        "\n".join(json.dumps({"a": float(i % 10), "b": float(i % 3)}) for i in range(300))
    )
    pkl = tmp_path / "model.pkl"
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    model.learn_one({"a": 1.0, "b": 2.0}, True)
    pkl.write_bytes(pickle.dumps(model))
    return {"py": module, "ref": ref, "pkl": pkl}


def run(settings: Settings, *args: str, publish: bool = False) -> Result:
    argv = list(args) if publish else ["--no-publish", *args]
    return CliRunner().invoke(models, argv, obj=settings, catch_exceptions=False)


def ok(settings: Settings, *args: str, publish: bool = False) -> str:
    result = run(settings, *args, publish=publish)
    assert result.exit_code == 0, result.output
    return result.output


def fails(settings: Settings, *args: str) -> str:
    result = run(settings, *args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("lastmile models:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_register_list_show(offline: Settings, files: dict[str, Path]) -> None:
    out = ok(
        offline,
        "register", f"{files['py']}:build", "--name", "fraud", "--flavor", "river",
        "--reference", str(files["ref"]), "--metrics", '{"auc": 0.93}',
    )  # fmt: skip
    assert out.startswith("fraud: registered version 1 (river, classification")
    out = ok(offline, "register", str(files["pkl"]), "-n", "fraud", "--flavor", "river",
             "--features", "a,b", "--parent", "1", "--promote", "champion")  # fmt: skip
    assert "registered version 2" in out and "champion -> v2" in out
    ok(offline, "register", "river.linear_model:LinearRegression", "-n", "price",
       "--flavor", "river", "--features", "x")  # fmt: skip

    lines = ok(offline, "list").splitlines()
    assert lines[0].split()[:4] == ["model", "champion", "challenger", "split"]
    assert lines[1].split()[:2] == ["fraud", "2"] and lines[2].split()[0] == "price"
    rows = json.loads(ok(offline, "list", "--json"))
    assert [(r["model"], r["champion"], r["versions"]) for r in rows] == [
        ("fraud", 2, 2),
        ("price", None, 1),
    ]

    out = ok(offline, "show", "fraud")
    assert "version" in out.splitlines()[1] and "auc=0.93" in out
    detail = ok(offline, "show", "fraud", "1")
    assert "integrity       ok" in detail and "a:number, b:number" in detail
    meta = json.loads(ok(offline, "show", "fraud", "1", "--json"))
    assert meta["reference_profile"]["n"] == 300 and meta["integrity"] == "ok"
    shown = json.loads(ok(offline, "show", "fraud", "--json"))
    assert shown["state"]["aliases"] == {"champion": 2}


def test_steering_commands(offline: Settings, files: dict[str, Path]) -> None:
    for _ in range(3):
        ok(offline, "register", f"{files['py']}:build", "-n", "fraud", "--flavor", "river")
    assert ok(offline, "promote", "fraud", "1").startswith("fraud: champion -> v1")
    assert "champion -> v2 (was v1)" in ok(offline, "promote", "fraud", "2")
    assert "nothing to change" in ok(offline, "promote", "fraud", "2")
    ok(offline, "promote", "fraud", "3", "--alias", "challenger")
    assert "split champion=90,challenger=10" in ok(
        offline, "split", "fraud", "champion=90", "challenger=10"
    )
    event = json.loads(ok(offline, "split", "fraud", "champion=80", "challenger=20", "--json"))
    assert event["kind"] == "split_set" and event["state"]["split"]["challenger"] == 20.0
    assert "shadow v1" in ok(offline, "shadow", "fraud", "1")
    assert "shadow off" in ok(offline, "shadow", "fraud", "--off")
    assert "champion -> v1 (rolled back from v2)" in ok(offline, "rollback", "fraud")
    assert "removed aliases: challenger" in ok(offline, "retire", "fraud", "3")
    assert "off (all champion)" in ok(offline, "split", "fraud", "--off")
    out = ok(offline, "show", "fraud")
    assert "retired" in out and "yes" in out


def test_errors_are_one_line_exit_1(offline: Settings, files: dict[str, Path]) -> None:
    ok(offline, "register", f"{files['py']}:build", "-n", "fraud", "--flavor", "river")
    assert "no model named 'nope'" in fails(offline, "show", "nope")
    assert "has no version 5" in fails(offline, "show", "fraud", "5")
    assert "has no version 5" in fails(offline, "promote", "fraud", "5")
    assert "no alias 'challenger'" in fails(offline, "split", "fraud", "challenger=10")
    assert "not a number" in fails(offline, "split", "fraud", "champion=lots")
    assert "not alias=weight" in fails(offline, "split", "fraud", "champion")
    assert "more than 0" in fails(offline, "split", "fraud", "champion=0")
    assert "no earlier live version" in fails(offline, "rollback", "fraud")
    assert "neither a pickle file nor" in fails(
        offline, "register", "nothing-here", "-n", "x", "--flavor", "river"
    )
    ok(offline, "promote", "fraud", "1")
    assert "is the champion" in fails(offline, "retire", "fraud", "1")

    artifact = Path(offline.registry_location) / "fraud" / "1" / "model.pkl"
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    assert "sha256" in fails(offline, "promote", "fraud", "1", "--alias", "challenger")
    assert "failed verification" in fails(offline, "verify")
    assert "MISMATCH" in ok(offline, "show", "fraud", "1")


def test_help_has_examples() -> None:
    for command in ["register", "list", "show", "promote", "split", "shadow", "rollback",
                    "retire", "publish", "verify"]:  # fmt: skip
        result = CliRunner().invoke(models, [command, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output, command


def test_publish_reaches_watchers(
    fresh_settings: Callable[..., Settings], files: dict[str, Path]
) -> None:
    settings = fresh_settings()
    ok(settings, "register", f"{files['py']}:build", "-n", "fraud", "--flavor", "river",
       publish=True)  # fmt: skip
    ok(settings, "promote", "fraud", "1", publish=True)
    table = ModelTable()
    with ModelWatcher(settings, table) as watcher:
        assert watcher.wait_caught_up(15)
        assert table.route("fraud", "k") == [(1, "champion")]
        before = table.get("fraud").updated_at
        assert "fraud: announced (champion 1)" in ok(settings, "publish", publish=True)
    assert table.get("fraud").updated_at == before  # re-announcing an unchanged state
