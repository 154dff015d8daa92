"""The control plane: state changes, routing, and the watcher against the embedded broker."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from river import linear_model

from streams.config import Settings, load_settings
from streams.models import (
    JSON_HEADERS,
    ArtifactIntegrityError,
    ControlError,
    ControlPlane,
    ModelNotFoundError,
    ModelState,
    ModelTable,
    ModelWatcher,
    decode_event,
    encode_event,
    make_event,
    route_hash,
)


def offline_plane(tmp_path: Path) -> ControlPlane:
    settings = load_settings(env={}, toml_path=None, registry=str(tmp_path / "registry"))
    return ControlPlane(settings, publish=False, actor="tester@host")


def register(plane: ControlPlane, name: str = "fraud", n: int = 1) -> None:
    for _ in range(n):
        plane.register_and_publish(name, linear_model.LinearRegression(), "river", features=["x"])


def state(**kw: object) -> ModelState:
    base: dict = {"model": "fraud", "updated_at": 10, "versions": {1: {}, 2: {}, 3: {}}}
    base.update(kw)
    return ModelState(**base)


# -- routing ---------------------------------------------------------------------------


def test_split_90_10_within_two_points_and_sticky() -> None:
    table = ModelTable()
    st = state(aliases={"champion": 1, "challenger": 2}, split={"champion": 90, "challenger": 10})
    assert table.apply(make_event("split_set", st))
    keys = [f"customer-{i}" for i in range(20_000)]
    first = [table.route("fraud", k) for k in keys]
    shares = Counter(r[0][1] for r in first)
    assert abs(shares["challenger"] / len(keys) - 0.10) < 0.02
    assert abs(shares["champion"] / len(keys) - 0.90) < 0.02
    assert all(len(r) == 1 for r in first)
    assert all(r == [(2, "challenger")] for r in first if r[0][1] == "challenger")

    # Sticky: the same key routes the same way, also after an unrelated change.
    newer = state(
        updated_at=11,
        aliases={"champion": 1, "challenger": 2},
        split={"champion": 90, "challenger": 10},
        shadow=None,
    )
    newer.versions[4] = {}
    assert table.apply(make_event("registered", newer))
    assert [table.route("fraud", k) for k in keys] == first
    assert route_hash("fraud", "customer-1") == route_hash("fraud", b"customer-1")
    assert 0.0 <= route_hash("fraud", "x") < 1.0


def test_route_champion_shadow_and_unknown() -> None:
    table = ModelTable()
    table.apply(make_event("shadow_set", state(aliases={"champion": 1}, shadow=3)))
    assert table.route("fraud", "k") == [(1, "champion"), (3, "shadow")]
    assert table.route("fraud", None) == [(1, "champion"), (3, "shadow")]
    assert table.route("churn", "k") == []
    # A shadow on the answering version is not scored twice.
    table.apply(make_event("shadow_set", state(updated_at=11, aliases={"champion": 3}, shadow=3)))
    assert table.route("fraud", "k") == [(3, "champion")]
    # A retired challenger gets no traffic: with no live weight left, the champion answers.
    st = state(updated_at=12, aliases={"champion": 1, "challenger": 2}, split={"challenger": 1})
    st.versions[2] = {"retired": True}
    table.apply(make_event("split_set", st))
    assert {table.route("fraud", f"k{i}")[0] for i in range(100)} == {(1, "champion")}
    st.split = {"champion": 1, "challenger": 1}
    st.updated_at = 13
    table.apply(make_event("split_set", st))
    assert {table.route("fraud", f"k{i}")[0] for i in range(100)} == {(1, "champion")}


def test_apply_idempotent_and_ignores_stale() -> None:
    table = ModelTable()
    seen: list[tuple] = []
    table.subscribe(lambda old, new: seen.append((old and old.champion, new.champion)))
    old = make_event("alias_set", state(updated_at=100, aliases={"champion": 1}))
    new = make_event("alias_set", state(updated_at=200, aliases={"champion": 2}))
    assert table.apply(new)
    assert not table.apply(new)  # a replay
    assert not table.apply(old)  # an older state arriving late
    assert table.get("fraud").champion == 2
    assert seen == [(None, 2)]
    assert not table.apply(None)  # a tombstone
    assert table.models() == ["fraud"] and table.ignored == 2


def routing_view(st: ModelState) -> tuple:
    """What workers act on (the wire drops seq and the alias log's rollback marks)."""
    return (st.model, st.updated_at, st.versions, st.aliases, st.split, st.shadow)


def test_event_codec_round_trip() -> None:
    st = state(seq=4, aliases={"champion": 1}, split={"champion": 1.0})
    info = {"flavor": "river", "sha256": "ab" * 32, "path": "fraud/1/model.pkl", "created_at": 5}
    st.versions = {1: {**info, "parent": None, "retired": False, "meta_json": "{}"}}
    st.log_alias("champion", 1)
    event = make_event("alias_set", st, {"alias": "champion", "version": 1}, "me", 1)
    assert {"model", "kind", "version", "actor", "ts", "state"} <= set(event)

    value, headers = encode_event(event)  # Avro, schemas/ModelEvent.avsc
    assert dict(headers).get("lastmile.schema") == b"lastmile.v1.ModelEvent"
    back = decode_event(value, headers)
    assert (back["model"], back["kind"], back["version"], back["actor"], back["ts"]) == (
        "fraud", "alias_set", 1, "me", 10,
    )  # fmt: skip
    assert routing_view(ModelState.from_dict(back["state"])) == routing_view(st)
    assert ModelState.from_dict(back["state"]).alias_history == st.alias_history

    # JSON events (written where the codec is missing) still read.
    as_json = decode_event(orjson.dumps(event), JSON_HEADERS)
    assert ModelState.from_dict(as_json["state"]) == st
    assert decode_event(None) is None


# -- changes ----------------------------------------------------------------------------


def test_promote_errors_and_rollback(tmp_path: Path) -> None:
    plane = offline_plane(tmp_path)
    register(plane, n=3)
    with pytest.raises(ControlError, match="has no version 7"):
        plane.promote("fraud", 7)
    with pytest.raises(ModelNotFoundError):
        plane.promote("churn", 1)
    for v in (1, 2, 3):
        change = plane.promote("fraud", v)
        assert change.kind == "alias_set" and change.version == v
    assert not plane.promote("fraud", 3).changed  # already champion: no event
    assert plane.rollback("fraud").state.champion == 2
    assert plane.rollback("fraud").state.champion == 1
    with pytest.raises(ControlError, match="no earlier live version"):
        plane.rollback("fraud")
    plane.promote("fraud", 3)
    plane.retire("fraud", 2)
    assert plane.rollback("fraud").state.champion == 1  # retired 2 is skipped
    with pytest.raises(ControlError, match="is retired"):
        plane.promote("fraud", 2)

    on_disk = orjson.loads((tmp_path / "registry" / "fraud" / "state.json").read_bytes())
    assert ModelState.from_dict(on_disk) == plane.state("fraud")
    assert on_disk["aliases"] == {"champion": 1}


def test_split_shadow_retire_rules(tmp_path: Path) -> None:
    plane = offline_plane(tmp_path)
    register(plane, n=3)
    plane.promote("fraud", 1)
    with pytest.raises(ControlError, match="no alias 'challenger'"):
        plane.split("fraud", {"champion": 90, "challenger": 10})
    plane.promote("fraud", 2, alias="challenger")
    with pytest.raises(ControlError, match=">= 0"):
        plane.split("fraud", {"champion": 90, "challenger": -1})
    with pytest.raises(ControlError, match="more than 0"):
        plane.split("fraud", {"champion": 0, "challenger": 0})
    with pytest.raises(ControlError, match="not a number"):
        plane.split("fraud", {"champion": "lots"})
    st = plane.split("fraud", {"champion": 90, "challenger": 10}).state
    assert st.split == {"champion": 90.0, "challenger": 10.0}

    assert plane.shadow("fraud", 3).state.shadow == 3
    with pytest.raises(ControlError, match="is the champion"):
        plane.retire("fraud", 1)
    change = plane.retire("fraud", 2)
    assert change.detail["aliases_removed"] == "challenger"
    assert change.state.split == {"champion": 90.0} and "challenger" not in change.state.aliases
    assert plane.retire("fraud", 3).state.shadow is None
    assert plane.retire("fraud", 1, force=True).state.aliases == {}
    assert plane.shadow("fraud", None).changed is False


def test_promote_refuses_changed_artifact(tmp_path: Path) -> None:
    plane = offline_plane(tmp_path)
    register(plane, n=1)
    artifact = tmp_path / "registry" / "fraud" / "1" / "model.pkl"
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes() + b"x")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        plane.promote("fraud", 1)


def test_updated_at_strictly_increases(tmp_path: Path) -> None:
    plane = offline_plane(tmp_path)
    register(plane, n=2)
    stamps = [plane.promote("fraud", v % 2 + 1).state.updated_at for v in range(6)]
    assert stamps == sorted(set(stamps))
    assert plane.state("fraud").seq == 2 + 6  # two registrations, six promotions


# -- the watcher against the broker ------------------------------------------------------


def test_watcher_sees_promotion(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings()
    with ControlPlane(settings) as plane:
        register(plane, n=2)
        plane.promote("fraud", 1)
        table = ModelTable()
        with ModelWatcher(settings, table) as watcher:
            assert watcher.wait_caught_up(15)
            assert table.route("fraud", "k") == [(1, "champion")]
            assert table.get("fraud").versions.keys() == {1, 2}
            start = time.monotonic()
            plane.promote("fraud", 2)
            while table.route("fraud", "k") != [(2, "champion")]:
                assert time.monotonic() - start < 1.0, "promotion not seen within 1 s"
                time.sleep(0.005)
            assert watcher.errors == 0

        # A worker starting later replays the topic to the same state.
        late = ModelTable()
        with ModelWatcher(settings, late) as watcher:
            assert watcher.wait_caught_up(15)
        expected = routing_view(plane.state("fraud"))
        assert routing_view(late.get("fraud")) == routing_view(table.get("fraud")) == expected


def test_watcher_on_missing_topic_is_caught_up(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings()
    with ModelWatcher(settings, ModelTable()) as watcher:
        assert watcher.wait_caught_up(10)


def test_model_plane_errors_carry_the_model_and_version(tmp_path: Path) -> None:
    from streams.errors import StreamsError
    from streams.models import RegistryError, VersionNotFoundError

    plane = offline_plane(tmp_path)
    plane.register_and_publish("m", linear_model.LinearRegression(), "river", features=["x"])
    with pytest.raises(ControlError, match="model 'm' has no version 7") as refused:
        plane.promote("m", 7)
    assert (refused.value.model, refused.value.version) == ("m", 7)
    assert isinstance(refused.value, RegistryError) and isinstance(refused.value, StreamsError)
    with pytest.raises(ModelNotFoundError) as unknown:
        plane.registry.versions("nope")
    assert unknown.value.model == "nope" and unknown.value.version is None
    with pytest.raises(VersionNotFoundError) as absent:
        plane.registry.get("m", 3)
    assert (absent.value.model, absent.value.version) == ("m", 3)
