"""The operator role: alerts that act.

It runs a :class:`~streams.kafka.lane.BatchLane` over ``monitor.alerts``. A firing alert
whose rule has an ``action`` (``monitors/rules.yaml``: rollback, shed, pause, promote,
snapshot) is decided (:mod:`.decision`), passed through the guards (:mod:`.guards`:
cooldown and hourly cap per model; the stale, first-version and target checks are in the
decision) and, in ``enforce`` mode, carried out through
:class:`~streams.models.ControlPlane` as ``lastmile-operator``, with its provenance
(rule, alert id, metric, value, threshold, window). Every decision, done, would (dry-run)
or skipped with its reason, is an Action record (:mod:`.records`) on ``monitor.actions``,
produced in the transaction that commits the alert's offset.

Exactly once across restarts: the action id is a hash of the alert's id and time, and the
control change is logged under it in the model's state, so an operator that died between
the change and the commit replays the alert, finds the id in the log, makes no second
change and records ``done`` (reason ``replayed``).

One idea per module: :mod:`.settings`, :mod:`.guards`, :mod:`.decision`, :mod:`.records`,
:mod:`.handler` (the batch) and :mod:`.lane` (Kafka).

>>> from streams.roles.operator import MODES
>>> MODES
('enforce', 'dry-run')
"""

from streams.roles.operator.decision import Plan, describe, plan_action, split_text
from streams.roles.operator.guards import ACTED, Guards
from streams.roles.operator.handler import Operator
from streams.roles.operator.lane import OperatorLane, operator_lane, read_actions
from streams.roles.operator.records import ACTOR, action_id, action_record, provenance
from streams.roles.operator.settings import MODES, OperatorSettings

__all__ = [
    "ACTED",
    "ACTOR",
    "MODES",
    "Guards",
    "Operator",
    "OperatorLane",
    "OperatorSettings",
    "Plan",
    "action_id",
    "action_record",
    "describe",
    "operator_lane",
    "plan_action",
    "provenance",
    "read_actions",
    "split_text",
]
