"""The learning step: score each joined outcome (prequential), then learn it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from streams.models import LoadedModel, RegistryError, label_str
from streams.roles.learner.envelope import key_model, source_message
from streams.roles.learner.model_line import ModelLine
from streams.roles.learner.part import LearnerPart
from streams.roles.learner.partition_state import PartitionState
from streams.roles.learner.publishing import REGISTERED_BY
from streams.roles.learner.snapshot_policy import requested_at

if TYPE_CHECKING:
    from streams.models import LoadedModel

log = logging.getLogger("lastmile.learner")


class LearningStep(LearnerPart):
    """Keeps each model's line and teaches it the joined outcomes in order.

    A :class:`~streams.roles.learner.part.LearnerPart`; besides its attributes it reads:"""

    model_names: dict[bytes, str]
    frozen_models: dict[tuple[str, int], LoadedModel | None]
    unlearnable: set[tuple[str, int]]

    def _model_name(self, key: bytes) -> str:
        raw = key_model(key)
        name = self.model_names.get(raw)
        if name is None:
            name = self.model_names[raw] = raw.decode()
        return name

    def learn(self, state: PartitionState, joined: Sequence[tuple[bytes, bytes, bytes]]) -> None:
        groups: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
        for item in joined:
            model = self._model_name(item[0])
            group = groups.get(model)
            if group is None:
                group = groups[model] = []
            group.append(item)
        for model, items in groups.items():
            line = self._line(state, model)
            if line is None:
                state.counts["outcomes_unlearnable"] += len(items)
                continue
            self._learn_line(state, line, items)

    def _line(self, state: PartitionState, model: str) -> ModelLine | None:
        """The model's line: started from its champion, restarted from a new champion the
        learner did not make, or None when the model has no River champion."""
        line = state.lines.get(model)
        mstate = self.table.get(model)
        champion = mstate.champion if mstate is not None else None
        if champion is not None and not mstate.live(champion):  # type: ignore[union-attr]
            champion = None
        if line is not None:
            if champion is None or champion == line.champion:
                return line
            if champion in line.versions or self._made_by_learner(model, champion):
                log.info("learner: %s champion is now v%d", model, champion)
                self._follow(line, champion)
                state.dirty = True
                return line
            log.info(
                "learner: %s champion v%d was not made by the learner; the line from v%d "
                "(%d learned) ends, a new one starts from v%d",
                model,
                champion,
                line.origin,
                line.learned,
                champion,
            )
            self.counts["rebased"] += 1
            del state.lines[model]
            state.dirty = True
        if champion is None or (model, champion) in self.unlearnable:
            return None
        try:
            loaded = self.registry.load(model, champion)
        except RegistryError as err:
            log.error("learner: cannot load %s v%d: %s", model, champion, err)
            self.unlearnable.add((model, champion))
            return None
        if not loaded.can_learn:
            log.info("learner: %s v%d is not a River model; it does not learn", model, champion)
            self.unlearnable.add((model, champion))
            return None
        o = self.options
        line = ModelLine(model, loaded, o.window, o.reference_rows, self.clock())
        # A request made before the line existed is not for it: it has learned nothing yet.
        line.snapshot_answered = requested_at(self.table.get(model))
        self._follow(line, champion)
        state.lines[model] = line
        state.dirty = True
        log.info("learner: %s learns from v%d (line %s)", model, champion, line.line_id)
        return line

    def _follow(self, line: ModelLine, champion: int) -> None:
        """The frozen evaluator scores `champion` from now on (when it runs at all)."""
        line.reset_frozen(champion)
        if not self.options.evaluate_champion:
            line.perf_frozen = None

    def _made_by_learner(self, model: str, version: int) -> bool:
        key = (model, version)
        made = self.learner_made.get(key)
        if made is None:
            try:
                made = self.registry.get(model, version).registered_by == REGISTERED_BY
            except RegistryError:
                made = False
            self.learner_made[key] = made
        return made

    def _frozen_model(self, line: ModelLine) -> LoadedModel | None:
        version = line.champion
        if version is None or line.perf_frozen is None:
            return None
        key = (line.model, version)
        if key not in self.frozen_models:
            # One champion per model is scored: let the previous one go.
            for old in [k for k in self.frozen_models if k[0] == line.model]:
                del self.frozen_models[old]
            try:
                self.frozen_models[key] = self.registry.load(line.model, version)
            except RegistryError as err:
                log.error("learner: cannot load champion %s v%d: %s", line.model, version, err)
                self.frozen_models[key] = None
        return self.frozen_models[key]

    def _learn_line(
        self, state: PartitionState, line: ModelLine, items: Sequence[tuple[bytes, bytes, bytes]]
    ) -> None:
        """Score each outcome's features before learning them (prequential), in order."""
        o = self.options
        names = line.feature_names
        width = len(names) if names else 0
        loads = orjson.loads
        xs: list[dict[str, Any]] = []
        outs: list[list[Any]] = []
        for _key, pv, ov in items:
            features = loads(pv[9:])[2]  # a bytes slice: cheaper than a memoryview here
            if names and len(features) != width:
                # Extra request fields the model was not registered with: not learned.
                features = {n: features.get(n) for n in names}
            xs.append(features)
            outs.append(loads(ov[13 : 13 + int.from_bytes(ov[9:13], "big")]))
        frozen = self._frozen_model(line)
        frozen_scores = frozen.predict_many(xs, return_errors=True) if frozen else None
        model = line.online
        classifier, binary, positive = line.classifier, line.binary, line.positive
        predict = model.predict_proba_one if classifier else model.predict_one
        learn = model.learn_one
        coerce = line.coerce
        update = line.perf.update
        frozen_update = line.perf_frozen.update if line.perf_frozen is not None else None
        if frozen_scores is None:
            frozen_update = None
        remember = line.reference.append
        # Counters stay local in the loop and are written back at each boundary.
        metrics_every = o.metrics_every or 1 << 62
        snapshot_every = o.snapshot_every or 1 << 62
        to_metrics = metrics_every - line.since_metrics
        to_snapshot = snapshot_every - line.since_snapshot
        first_t, last_t = line.first_t, line.last_t
        learned = total = 0
        for i, x in enumerate(xs):
            label, value, t_out = outs[i]
            try:
                raw = label if classifier or value is None else value
                if raw is None:
                    raw = value
                if raw is None:
                    raise _BadLabel("the outcome has neither a label nor a value")
                try:
                    y = coerce(raw)
                except (TypeError, ValueError) as err:
                    raise _BadLabel(f"label {raw!r}: {err}") from None
                if binary:
                    truth = y == positive
                    update(truth, predict(x).get(positive, 0.0))
                elif classifier:
                    proba = predict(x)
                    guess = max(proba, key=proba.__getitem__) if proba else None
                    update(label_str(y), label_str(guess))
                else:
                    update(y, predict(x))
                learn(x, y)
            except Exception as err:  # a model is user code: its error is contained
                self._learn_failed(state, line, items[i][0], items[i][2], err)
                continue
            if frozen_update is not None:
                result = frozen_scores[i]  # type: ignore[index]
                if not isinstance(result, BaseException):
                    if binary:
                        frozen_update(truth, result[0])
                    elif classifier:
                        frozen_update(label_str(y), result[1])
                    else:
                        frozen_update(y, result[0])
            remember(x)
            learned += 1
            total += 1
            # Outcomes of several input partitions interleave: not in event-time order.
            if first_t is None or t_out < first_t:
                first_t = t_out
            if last_t is None or t_out > last_t:
                last_t = t_out
            to_metrics -= 1
            to_snapshot -= 1
            if to_metrics <= 0 or to_snapshot <= 0:
                self._advance(line, learned, to_metrics, to_snapshot, first_t, last_t)
                learned = 0
                if to_metrics <= 0:
                    self.emit_metrics(state, line)
                    to_metrics = metrics_every
                    first_t = last_t = None
                if to_snapshot <= 0:
                    self.take_snapshot(state, line, "count")
                    to_snapshot = snapshot_every
        self._advance(line, learned, to_metrics, to_snapshot, first_t, last_t)
        self.counts["learned"] += total
        state.counts["learned"] += total

    def _advance(
        self,
        line: ModelLine,
        learned: int,
        to_metrics: int,
        to_snapshot: int,
        first_t: int | None,
        last_t: int | None,
    ) -> None:
        o = self.options
        line.learned += learned
        line.since_metrics = (o.metrics_every or 1 << 62) - to_metrics
        line.since_snapshot = (o.snapshot_every or 1 << 62) - to_snapshot
        line.first_t, line.last_t = first_t, last_t

    def _learn_failed(
        self, state: PartitionState, line: ModelLine, key: bytes, value: bytes, err: Exception
    ) -> None:
        rid = key[key.index(b"\0") + 1 :].decode(errors="replace")
        if isinstance(err, _BadLabel):
            kind, why = "bad_label", str(err)
        else:
            kind, why = "model_exception", f"the model raised {type(err).__name__}: {err}"
        reason = (
            f"model {line.model!r} (line from v{line.origin}) cannot learn the outcome of "
            f"request {rid!r}: {why[:300]}"
        )
        self.send_dead_letter(state, source_message(value), reason, kind, line.model)


class _BadLabel(ValueError):
    """An outcome without a usable label."""
