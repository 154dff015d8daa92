-- What the operator did about each alert (topic monitor.actions): done, would (dry-run)
-- or skipped with the reason, with the provenance of the alert it acted on. Few rows;
-- read by model and time (the Models page's timeline) and by alert_id (the Alerts page).
CREATE TABLE IF NOT EXISTS ${database}.actions
(
    action_id       String,
    alert_id        String,
    rule            LowCardinality(String),
    model           LowCardinality(String),
    version         UInt32 COMMENT '0: the model as a whole',
    kind            LowCardinality(String),
    mode            LowCardinality(String),
    outcome         LowCardinality(String),
    reason          LowCardinality(String),
    version_before  Nullable(UInt32),
    version_after   Nullable(UInt32),
    split_before    String,
    split_after     String,
    metric          LowCardinality(String),
    value           Float64,
    threshold       Float64,
    window_start    DateTime64(3, 'UTC'),
    window_end      DateTime64(3, 'UTC'),
    ts              DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    actor           LowCardinality(String),
    message         String CODEC(ZSTD(1)),
    kafka_partition UInt16,
    kafka_offset    UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1)),
    INDEX kafka_offset_mm kafka_offset TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (model, ts)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.actions_in
(
    kafka_partition Int32,
    kafka_offset    Int64,
    action_id       String,
    alert_id        String,
    rule            String,
    model           String,
    version         Nullable(Int32),
    kind            String,
    mode            String,
    outcome         String,
    reason          String,
    version_before  Nullable(Int32),
    version_after   Nullable(Int32),
    split_before    String,
    split_after     String,
    metric          String,
    value           Float64,
    threshold       Float64,
    window_start    DateTime64(3, 'UTC'),
    window_end      DateTime64(3, 'UTC'),
    ts              DateTime64(3, 'UTC'),
    actor           String,
    message         String
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.actions_in_mv TO ${database}.actions AS
SELECT
    action_id,
    alert_id,
    rule,
    model,
    toUInt32(ifNull(version, 0)) AS version,
    kind,
    mode,
    outcome,
    reason,
    CAST(version_before, 'Nullable(UInt32)') AS version_before,
    CAST(version_after, 'Nullable(UInt32)') AS version_after,
    split_before,
    split_after,
    metric,
    value,
    threshold,
    window_start,
    window_end,
    ts,
    actor,
    message,
    toUInt16(kafka_partition) AS kafka_partition,
    toUInt64(kafka_offset) AS kafka_offset
FROM ${database}.actions_in;
