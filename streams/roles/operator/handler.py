"""The operator's batch handler: firing alerts in; control changes made through the
:class:`~streams.models.ControlPlane`, and one Action record per alert acted on, out."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import Message

from monitors.rules import load_rules
from schemas import Codec, DecodeError
from streams.config import Settings
from streams.kafka.lane import Output
from streams.models import ControlError, ControlEvent, ControlPlane, RegistryError
from streams.roles.operator.decision import Plan, plan_action
from streams.roles.operator.guards import ACTED, Guards
from streams.roles.operator.records import (
    ACTOR,
    action_id,
    action_record,
    plan_from_log,
    provenance,
)
from streams.roles.operator.settings import OperatorSettings

log = logging.getLogger("lastmile.operator")

__all__ = ["Operator"]


class Operator:
    """Turns firing alerts of rules with an ``action`` into control changes and Action
    records. Also usable without Kafka (tests feed it message-like objects).

    Exactly once: an action's id is a function of the alert, the control change it makes
    is logged under that id in the model's state (so a replay after a crash between the
    change and the commit makes no second change, it only publishes the state again), and
    an id already on the actions topic is not published twice.
    """

    def __init__(
        self,
        settings: Settings,
        options: OperatorSettings | None = None,
        plane: ControlPlane | None = None,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.options = options or OperatorSettings.from_settings(settings)
        self.plane = plane or ControlPlane(settings, actor=ACTOR)
        self.codec = codec or Codec.from_settings(settings)
        self.clock = clock
        self.rules = {r.name: r for r in load_rules(self.options.rules_path) if r.action}
        self.guards = Guards(self.options.cooldown, self.options.max_per_hour)
        self.seen: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.window_ms = int(self.options.window * 1000)

    def restore(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild the guards and the published ids from the actions topic's records."""
        records = list(records)
        self.guards.rebuild(records)
        self.seen = {r["action_id"] for r in records}

    # -- the batch ----------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[Output]:
        outputs: list[Output] = []
        topic = self.settings.topic_actions
        for m in messages:
            try:
                alert = self.codec.decode(m.value(), m.headers(), "Alert", m.topic())
            except DecodeError as err:
                self.counts["undecodable"] += 1
                outputs.append(self._dead_letter(m, err))
                continue
            rule = self.rules.get(alert["rule"])
            if alert["state"] != "firing" or rule is None:
                continue
            ident = action_id(alert)
            if ident in self.seen:  # published before (a replayed alert)
                self.counts["seen"] += 1
                continue
            record = self.act(alert, rule, ident)
            self.seen.add(ident)
            self.counts[record["outcome"]] += 1
            log.info("operator: %s (alert %s, rule %s)", record["message"], ident, rule.name)
            value, headers = self.codec.encode("Action", record, topic)
            outputs.append(Output(topic, value, record["model"], headers))
        return outputs

    def act(self, alert: Mapping[str, Any], rule: Any, ident: str) -> dict[str, Any]:
        """Decide about one firing alert and, in enforce mode, act; return its record."""
        now = int(self.clock() * 1000)
        mode = self.options.mode
        model = alert["model"]
        try:
            state = self.plane.state(model)
        except RegistryError as err:
            plan = Plan(rule.action, reason="error", detail=str(err))
            return action_record(alert, ident, plan, mode, "skipped", now, self.window_ms)
        logged = next((e for e in state.actions if e.get("action_id") == ident), None)
        if logged is not None:
            # Made before a restart, not recorded: record it now; publish the state again
            # in case the change never reached the topic.
            self.counts["replayed"] += 1
            if not self.options.dry_run:
                self.plane.announce(model)
            plan = dataclasses.replace(plan_from_log(logged), kind=rule.action)
            self.guards.record(model, rule.action, now)
            return action_record(
                alert, ident, plan, mode, "done", now, self.window_ms, reason="replayed"
            )
        plan = plan_action(alert, rule, state, now, self.options.stale_after)
        # The guards hold every alert on a model that was just acted on, target or not:
        # two alerts within the cooldown are one action and one "cooldown".
        held = None if plan.reason == "stale" else self.guards.check(model, rule.action, now)
        if held is not None:
            plan = dataclasses.replace(plan, reason=held, detail=self._guard_detail(held))
        if plan.skipped:
            return action_record(alert, ident, plan, mode, "skipped", now, self.window_ms)
        if self.options.dry_run:
            self.guards.record(model, rule.action, now)
            return action_record(alert, ident, plan, mode, "would", now, self.window_ms)
        prov = provenance(alert, ident, plan, mode, self.window_ms)
        outcome, plan = self._execute(plan, model, prov)
        if outcome in ACTED:
            self.guards.record(model, rule.action, now)
        return action_record(alert, ident, plan, mode, outcome, now, self.window_ms)

    def _guard_detail(self, held: str) -> str:
        if held == "cooldown":
            return f"one action of a kind per {self.options.cooldown:g} s per model"
        return f"at most {self.options.max_per_hour} actions per model per hour"

    def _execute(self, plan: Plan, model: str, prov: Mapping[str, str]) -> tuple[str, Plan]:
        """Make the change; ``done``, or ``skipped`` with the control plane's reason."""
        plane = self.plane
        calls: dict[str, Callable[[], ControlEvent]] = {
            "rollback": lambda: plane.rollback(model, provenance=prov),
            "shed": lambda: plane.split(model, plan.split_after, provenance=prov),
            "promote": lambda: plane.promote(model, plan.version_after, provenance=prov),
        }
        # pause and request_snapshot come with the kill switch and the learner's snapshot.
        for kind, name in (("pause", "pause"), ("snapshot", "request_snapshot")):
            method = getattr(plane, name, None)
            if method is not None:
                calls[kind] = functools.partial(method, model, provenance=prov)
        call = calls.get(plan.kind)
        if call is None:
            detail = f"this control plane cannot {plan.kind} yet"
            return "skipped", dataclasses.replace(plan, reason="unsupported", detail=detail)
        try:
            change = call()
        except ControlError as err:
            return "skipped", dataclasses.replace(plan, reason="error", detail=str(err))
        if not change.changed:
            return "skipped", dataclasses.replace(plan, reason="nothing_to_change")
        return "done", plan

    def _dead_letter(self, message: Message, error: DecodeError) -> Output:
        from streams.kafka.deadletters import dead_letter_from_error, encode_dead_letter

        record = dead_letter_from_error(message, error, worker=self.worker)
        value, headers = encode_dead_letter(self.codec, record, self.settings.topic_dlq)
        return Output(self.settings.topic_dlq, value, message.key(), headers)

    def close(self) -> None:
        self.plane.close()
