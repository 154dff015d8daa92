"""The kill switch without a broker: the paused state, its routing, its commands, its wire
format and its CLI; and snapshot requests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from river import linear_model

from schemas import SCHEMA_DIR, Codec, SchemaSet
from streams.cli.models import models
from streams.config import Settings, load_settings
from streams.models import (
    FALLBACK,
    FALLBACK_CONSTANT,
    JSON_HEADERS,
    ControlError,
    ControlPlane,
    ModelState,
    ModelTable,
    Pause,
    decode_event,
    encode_event,
    make_codec,
    make_event,
)
from streams.records import model_event_to_avro


@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    return load_settings(env={}, toml_path=None, registry=str(tmp_path / "registry"))


@pytest.fixture
def plane(offline: Settings) -> ControlPlane:
    """Model "m": v1 champion, v2 challenger on a 50/50 split, v3 in shadow."""
    cp = ControlPlane(offline, publish=False, actor="tester@host")
    for _ in range(3):
        cp.register_and_publish("m", linear_model.LinearRegression(), "river", features=["x"])
    cp.promote("m", 1)
    cp.promote("m", 2, alias="challenger")
    cp.split("m", {"champion": 50, "challenger": 50})
    cp.shadow("m", 3)
    return cp


def table_of(*events: dict) -> ModelTable:
    table = ModelTable()
    for event in events:
        table.apply(event)
    return table


KEYS = [f"customer-{i}" for i in range(2000)]


def routes(table: ModelTable, model: str = "m") -> set[tuple[tuple[int, str], ...]]:
    return {tuple(table.route(model, k)) for k in KEYS}


# -- commands and state ----------------------------------------------------------------


def test_pause_with_a_constant_routes_every_request_to_the_fallback_and_resume_restores(
    plane: ControlPlane,
) -> None:
    before = table_of(make_event("announced", plane.state("m")))
    served = routes(before)
    assert {r[0][1] for r in served} == {"champion", "challenger"}  # the split serves
    assert all(r[-1] == (3, "shadow") for r in served)

    change = plane.pause("m", fallback_score=0.25, fallback_label="0")
    assert change.kind == "paused" and change.changed and change.published is False
    assert change.detail["fallback"] == "score=0.25, label=0"
    pause = change.state.pause
    assert pause == Pause(score=0.25, label="0", since=change.state.updated_at)
    # the source of truth on disk says paused: another process sees it
    assert ControlPlane(plane.settings, publish=False).state("m").pause == pause

    paused = table_of(change.event)
    # every key, with split and shadow in the state: the fallback alone, no shadow
    assert routes(paused) == {((FALLBACK_CONSTANT, FALLBACK),)}
    assert paused.keyless_route("m") == [(FALLBACK_CONSTANT, FALLBACK)]
    assert paused.fallback("m") == pause

    resumed = plane.resume("m")
    assert resumed.kind == "resumed" and resumed.state.pause is None
    assert resumed.detail["fallback"] == "score=0.25, label=0"
    paused.apply(resumed.event)
    assert routes(paused) == served
    assert paused.keyless_route("m") is None  # the split is back: it depends on the key
    # the split and shadow were kept through the pause
    assert resumed.state.split == {"champion": 50.0, "challenger": 50.0}
    assert resumed.state.shadow == 3


def test_pause_with_a_fallback_version_answers_with_that_version(plane: ControlPlane) -> None:
    change = plane.pause("m", fallback_version="v2")
    assert change.version == 2 and change.detail["fallback"] == "version 2"
    table = table_of(change.event)
    assert routes(table) == {((2, FALLBACK),)}


def test_a_fallback_is_required_and_must_be_valid(plane: ControlPlane) -> None:
    with pytest.raises(ControlError, match="needs a fallback"):
        plane.pause("m")
    with pytest.raises(ControlError, match="not both"):
        plane.pause("m", fallback_score=0.1, fallback_version=2)
    with pytest.raises(ControlError, match="finite"):
        plane.pause("m", fallback_score=math.nan)
    with pytest.raises(ControlError, match="not a number"):
        plane.pause("m", fallback_score="high")  # type: ignore[arg-type]
    with pytest.raises(ControlError, match="label is empty"):
        plane.pause("m", fallback_label="")
    with pytest.raises(ControlError, match="no version 9"):
        plane.pause("m", fallback_version=9)
    plane.promote("m", 2)
    plane.retire("m", 1)
    with pytest.raises(ControlError, match="version 1 is retired"):
        plane.pause("m", fallback_version=1)
    # nothing of the refused pauses reached the state
    assert plane.state("m").pause is None


def test_the_fallback_version_cannot_be_retired_while_paused(plane: ControlPlane) -> None:
    plane.pause("m", fallback_version=3)
    with pytest.raises(ControlError, match="fallback of the paused model"):
        plane.retire("m", 3)
    plane.resume("m")
    assert plane.retire("m", 3).state.versions[3]["retired"]


def test_pausing_again_changes_the_fallback_and_keeps_since(plane: ControlPlane) -> None:
    first = plane.pause("m", fallback_label="0")
    seq = first.state.seq
    same = plane.pause("m", fallback_label="0")
    assert not same.changed and same.state.seq == seq  # nothing written, nothing sent
    other = plane.pause("m", fallback_score=0.5)
    assert other.changed and other.detail["previous"] == "label=0"
    assert other.state.pause.since == first.state.pause.since
    assert other.state.updated_at > first.state.updated_at


def test_resume_of_a_model_not_paused_changes_nothing(plane: ControlPlane) -> None:
    seq = plane.state("m").seq
    change = plane.resume("m")
    assert not change.changed and plane.state("m").seq == seq


def test_changes_while_paused_wait_for_the_resume(plane: ControlPlane) -> None:
    plane.pause("m", fallback_score=0.0)
    change = plane.split("m", {})  # an operator clears the split during the pause
    table = table_of(change.event)
    assert routes(table) == {((FALLBACK_CONSTANT, FALLBACK),)}
    table.apply(plane.resume("m").event)
    assert routes(table) == {((1, "champion"), (3, "shadow"))}


def test_provenance_and_snapshot_requests(plane: ControlPlane) -> None:
    provenance = {"rule": "accuracy_low", "alert_id": "a-1", "value": 0.49}
    change = plane.pause("m", fallback_score=0.0, provenance=provenance)  # type: ignore[arg-type]
    assert change.detail["rule"] == "accuracy_low" and change.detail["value"] == "0.49"
    assert change.detail["fallback"] == "score=0"

    before = plane.state("m")
    snap = plane.request_snapshot("m", provenance={"alert_id": "a-2"})
    assert snap.kind == "snapshot_requested" and snap.changed
    assert snap.detail == {"request": "snapshot", "alert_id": "a-2"}
    after = snap.state
    # the request changes nothing but the clock: a new event workers apply the same way
    assert after.updated_at > before.updated_at and after.seq == before.seq + 1
    assert (after.aliases, after.split, after.shadow, after.pause) == (
        before.aliases,
        before.split,
        before.shadow,
        before.pause,
    )
    # The request itself is state: the compacted topic keeps it until the next request.
    assert after.snapshot_request == after.updated_at and before.snapshot_request is None


# -- the table -------------------------------------------------------------------------


def test_a_stale_paused_event_is_ignored_and_the_pause_outlives_a_resume_for_routed_work() -> None:
    st = ModelState("m", updated_at=5, versions={1: {}}, aliases={"champion": 1})
    paused = ModelState("m", updated_at=6, versions={1: {}}, aliases={"champion": 1},
                        pause=Pause(label="no"))  # fmt: skip
    table = table_of(make_event("announced", st), make_event("paused", paused))
    assert table.route("m", "k") == [(FALLBACK_CONSTANT, FALLBACK)]
    st.updated_at = 7
    table.apply(make_event("resumed", st))
    assert table.route("m", "k") == [(1, "champion")]
    # a request routed to the fallback just before the resume still gets its answer
    assert table.fallback("m") == Pause(label="no")
    assert not table.apply(make_event("paused", paused))  # older than the resume
    assert table.route("m", "k") == [(1, "champion")]


def test_a_fallback_version_retired_behind_the_control_plane_routes_nowhere() -> None:
    # state.json edited by hand: the scorer dead-letters (no_version) rather than serve
    # the champion of a model someone paused
    st = ModelState("m", updated_at=5, versions={1: {}, 2: {"retired": True}},
                    aliases={"champion": 1}, pause=Pause(version=2))  # fmt: skip
    assert table_of(make_event("paused", st)).route("m", "k") == []


# -- the wire --------------------------------------------------------------------------


@pytest.mark.parametrize("avro", [True, False])
def test_the_pause_travels_on_models_events(avro: bool) -> None:
    st = ModelState(
        "m",
        seq=3,
        updated_at=1_700_000_000_123,
        versions={1: {"flavor": "river", "sha256": "ab", "path": "m/1/model.pkl", "created_at": 1}},
        aliases={"champion": 1},
        pause=Pause(score=0.1, label="0", since=1_700_000_000_000),
    )
    event = make_event("paused", st, {"fallback": "score=0.1, label=0"})
    codec = make_codec() if avro else None
    if avro:
        value, headers = encode_event(event, codec=codec)
        assert headers != JSON_HEADERS and value[:1] != b"{"
    else:
        value, headers = json.dumps(event).encode(), list(JSON_HEADERS)
    decoded = decode_event(value, headers, codec=codec)
    assert decoded["kind"] == "paused"
    assert ModelState.from_dict(decoded["state"]).pause == st.pause
    assert table_of(decoded).route("m", "k") == [(FALLBACK_CONSTANT, FALLBACK)]
    # and a state that is not paused says so
    st.pause = None
    value, headers = encode_event(make_event("resumed", st), codec=make_codec())
    assert ModelState.from_dict(decode_event(value, headers)["state"]).pause is None


@pytest.mark.parametrize("avro", [True, False])
def test_a_snapshot_request_travels_on_models_events(avro: bool) -> None:
    st = ModelState("m", updated_at=1_700_000_000_500, versions={1: {}}, aliases={"champion": 1})
    st.snapshot_request = st.updated_at
    event = make_event("snapshot_requested", st, {"request": "snapshot"})
    codec = make_codec() if avro else None
    if avro:
        value, headers = encode_event(event, codec=codec)
    else:
        value, headers = json.dumps(event).encode(), list(JSON_HEADERS)
    decoded = decode_event(value, headers, codec=codec)
    table = table_of(decoded)
    got = table.get("m")
    assert got is not None and got.snapshot_request == 1_700_000_000_500


def test_an_event_written_with_the_v1_schema_reads_as_not_paused(tmp_path: Path) -> None:
    # a control plane not yet upgraded writes v1 (no pause field): new workers read it
    (tmp_path / "history").mkdir()
    v1 = (SCHEMA_DIR / "history" / "ModelEvent.v1.avsc").read_text()
    (tmp_path / "ModelEvent.avsc").write_text(v1)
    (tmp_path / "history" / "ModelEvent.v1.avsc").write_text(v1)
    old_writer = Codec(schemas=SchemaSet.load(tmp_path))
    st = ModelState("m", updated_at=9, versions={1: {}}, aliases={"champion": 1})
    record = model_event_to_avro(make_event("alias_set", st))
    record["state"].pop("pause")
    record["state"].pop("snapshot_request")
    value, headers = old_writer.encode("ModelEvent", record)
    decoded = decode_event(value, headers, codec=make_codec())
    assert decoded["state"]["pause"] is None
    assert table_of(decoded).route("m", "k") == [(1, "champion")]


# -- the CLI ---------------------------------------------------------------------------


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(models, ["--no-publish", *args], obj=settings)


def test_cli_pause_show_list_resume(plane: ControlPlane, offline: Settings) -> None:
    result = run(offline, "pause", "m", "--fallback-score", "0.02", "--fallback-label", "0")
    assert result.exit_code == 0, result.output
    assert "m: paused, answering with the fallback score=0.02, label=0" in result.output
    show = run(offline, "show", "m").output
    assert "PAUSED since" in show and "score=0.02, label=0" in show
    state = json.loads(run(offline, "show", "m", "--json").output)["state"]
    assert state["pause"]["score"] == 0.02 and state["pause"]["label"] == "0"
    rows = json.loads(run(offline, "list", "--json").output)
    assert rows[0]["paused"] == "score=0.02, label=0"

    event = json.loads(run(offline, "pause", "m", "--fallback-version", "2", "--json").output)
    assert event["kind"] == "paused" and event["state"]["pause"]["version"] == 2

    result = run(offline, "resume", "m")
    assert result.exit_code == 0 and "m: resumed, champion v1" in result.output
    assert "PAUSED" not in run(offline, "show", "m").output
    assert "not paused (nothing to change)" in run(offline, "resume", "m").output


def test_cli_refuses_a_pause_without_a_valid_fallback(plane: ControlPlane, offline: Settings):
    for args, reason in [
        ([], "give a fallback"),
        (["--fallback-score", "1", "--fallback-version", "2"], "not both"),
        (["--fallback-version", "7"], "no version 7"),
    ]:
        result = run(offline, "pause", "m", *args)
        assert result.exit_code == 1 and reason in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert plane.state("m").pause is None
    for command in ["pause", "resume"]:
        assert "Example" in CliRunner().invoke(models, [command, "--help"]).output
