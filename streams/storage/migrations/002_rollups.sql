-- Per-minute rollups for the dashboard: filled by materialized views as predictions
-- are inserted, so "the last 24 h" reads 1,440 rows per model/version/variant
-- instead of millions. Replayed batches deduplicate here too: the sink inserts with
-- deduplicate_blocks_in_dependent_materialized_views = 1, and these tables keep
-- the same deduplication window as their source.
--
-- Read them with the -Merge / sum combinators, e.g.
--   SELECT minute, sum(n) FROM predictions_1m WHERE model = 'fraud' GROUP BY minute
--   SELECT quantilesTDigestMerge(0.5, 0.99)(latency_q) FROM predictions_1m WHERE ...
--   SELECT sumMap(score_hist) FROM predictions_1m WHERE ...   -- 20 bins over [0, 1]
-- The quantile levels at read time are free: a t-digest state does not depend on them.
CREATE TABLE IF NOT EXISTS ${database}.predictions_1m
(
    model       LowCardinality(String),
    version     UInt32,
    variant     LowCardinality(String),
    minute      DateTime64(3, 'UTC'),
    n           SimpleAggregateFunction(sum, UInt64),
    scored      SimpleAggregateFunction(sum, UInt64) COMMENT 'rows with a score',
    score_sum   SimpleAggregateFunction(sum, Float64),
    latency_sum SimpleAggregateFunction(sum, Float64),
    latency_max SimpleAggregateFunction(max, Float32),
    latency_q   AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), Float32),
    score_q     AggregateFunction(quantilesTDigest(0.5), Nullable(Float64)),
    score_hist  SimpleAggregateFunction(sumMap, Map(UInt8, UInt64))
        COMMENT 'bin -> count; bin i holds scores in [i/20, (i+1)/20), clamped to [0, 1]',
    labels      SimpleAggregateFunction(sumMap, Map(String, UInt64)) COMMENT 'predicted label -> count'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (model, version, variant, minute)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.predictions_1m_mv TO ${database}.predictions_1m AS
SELECT
    model,
    version,
    variant,
    toStartOfMinute(ts) AS minute,
    count() AS n,
    countIf(score IS NOT NULL) AS scored,
    sumIf(assumeNotNull(score), score IS NOT NULL) AS score_sum,
    sum(toFloat64(latency_ms)) AS latency_sum,
    max(latency_ms) AS latency_max,
    quantilesTDigestState(0.5, 0.9, 0.99)(latency_ms) AS latency_q,
    quantilesTDigestState(0.5)(score) AS score_q,
    sumMapIf(
        map(toUInt8(least(greatest(floor(assumeNotNull(score) * 20), 0), 19)), toUInt64(1)),
        score IS NOT NULL) AS score_hist,
    sumMapIf(map(toString(assumeNotNull(label)), toUInt64(1)), label IS NOT NULL) AS labels
FROM ${database}.predictions
GROUP BY model, version, variant, minute;

-- Outcomes per minute: how many labels arrive, and which.
CREATE TABLE IF NOT EXISTS ${database}.outcomes_1m
(
    model     LowCardinality(String),
    minute    DateTime64(3, 'UTC'),
    n         SimpleAggregateFunction(sum, UInt64),
    labels    SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    value_sum SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (model, minute)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.outcomes_1m_mv TO ${database}.outcomes_1m AS
SELECT
    model,
    toStartOfMinute(ts) AS minute,
    count() AS n,
    sumMapIf(map(toString(assumeNotNull(label)), toUInt64(1)), label IS NOT NULL) AS labels,
    sumIf(assumeNotNull(value), value IS NOT NULL) AS value_sum
FROM ${database}.outcomes
GROUP BY model, minute;
