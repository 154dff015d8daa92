-- Views for the dashboard and for ad-hoc SQL.

-- Predictions with their outcomes, for a time range of predictions:
--   SELECT model, version, avg(label = outcome_label) AS accuracy
--   FROM prediction_outcomes(since = '2024-05-01 00:00:00', until = '2099-01-01 00:00:00')
--   WHERE has_outcome GROUP BY model, version
-- A parameterized view, because the outcome side of a join is read whole: the
-- parameters bound both sides (outcomes are only looked up among those whose
-- request_id is in the range), which keeps "the last hour" cheap on a big table.
-- One outcome per (request_id, model): a duplicate outcome does not double a row.
CREATE VIEW IF NOT EXISTS ${database}.prediction_outcomes AS
SELECT
    p.request_id AS request_id,
    p.model AS model,
    p.version AS version,
    p.variant AS variant,
    p.score AS score,
    p.label AS label,
    p.ts AS ts,
    p.event_time AS event_time,
    p.latency_ms AS latency_ms,
    o.label AS outcome_label,
    o.value AS outcome_value,
    o.ts AS outcome_ts,
    o.matched = 1 AS has_outcome
FROM
(
    SELECT request_id, model, version, variant, score, label, ts, event_time, latency_ms
    FROM ${database}.predictions
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
) AS p
LEFT ANY JOIN
(
    SELECT request_id, model, label, value, ts, toUInt8(1) AS matched
    FROM ${database}.outcomes
    WHERE request_id IN (
        SELECT request_id FROM ${database}.predictions
        WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')})
) AS o
ON p.request_id = o.request_id AND p.model = o.model;

-- The current state of every model version (the latest models.events event).
CREATE VIEW IF NOT EXISTS ${database}.model_versions_current AS
SELECT * FROM ${database}.model_versions FINAL;

-- Each sink worker's latest status row.
CREATE VIEW IF NOT EXISTS ${database}.sink_status_current AS
SELECT * FROM ${database}.sink_status FINAL;
