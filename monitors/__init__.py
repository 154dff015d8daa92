"""lastmile's monitor: the pure computation behind the monitor role.

One idea per module (see ``monitors/README.md`` for the whole picture):

- :mod:`monitors.events` — the records that come out: MetricValue, AlertEvent
- :mod:`monitors.profile` — ReferenceProfile, the training-data baseline in meta.json
- :mod:`monitors.sketches` — bounded, mergeable summaries of one window
- :mod:`monitors.aggregate` — PredictionSketch, a window's state for a prediction stream
- :mod:`monitors.windows` — tumbling, sliding and count windows with lateness
- :mod:`monitors.drift` — PSI, KS, Wasserstein, Jensen-Shannon, chi-square; the policy
- :mod:`monitors.quality` — missing, out-of-range, unseen, dead letters, latency
- :mod:`monitors.report` — WindowEvaluator: closed window to metric values
- :mod:`monitors.detectors` — River's ADWIN, Page-Hinkley and KSWIN behind one protocol
- :mod:`monitors.performance` — rolling accuracy, log loss, AUC, MAE, RMSE, label delay
- :mod:`monitors.rules` — YAML alert rules and the RuleEngine
- :mod:`monitors.notify` — log, webhook and Slack sinks behind a non-blocking queue

Nothing is imported here, so ``import monitors.events`` stays cheap (no scipy, no River).
"""
