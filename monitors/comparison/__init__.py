"""Champion against challenger, decided by evidence: an always-valid confidence
sequence on the difference of a metric's means, read at every outcome without
inflating the false-win rate.

- :mod:`monitors.comparison.sequence` — the normal-mixture SPRT (Johari et al. 2017) and
  its confidence sequence (Howard et al. 2021, Waudby-Smith et al. 2023)
- :mod:`monitors.comparison.metrics` — accuracy, log loss, ROC AUC, MAE, RMSE as means
  of per-outcome values
- :mod:`monitors.comparison.difference` — a split's two arms, or a shadow's pairs
- :mod:`monitors.comparison.result` — the :class:`Comparison` and how to compute one
- :mod:`monitors.comparison.monitor` — the monitor role's per-window comparisons

>>> from monitors.comparison import DECISIONS
>>> DECISIONS["challenger_better"]
1
"""

from monitors.comparison.difference import DECISIONS, PairedDifference, UnpairedDifference
from monitors.comparison.metrics import METRICS, observe, roc_auc
from monitors.comparison.result import Arm, Comparison, Outcomes, compare_paired, compare_split
from monitors.comparison.sequence import MixtureSequence

__all__ = [
    "DECISIONS",
    "METRICS",
    "Arm",
    "Comparison",
    "MixtureSequence",
    "Outcomes",
    "PairedDifference",
    "UnpairedDifference",
    "compare_paired",
    "compare_split",
    "observe",
    "roc_auc",
]
