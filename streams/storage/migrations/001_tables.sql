-- The tables the sink fills, one per topic, and the sink's own bookkeeping.
--
-- ${database} is replaced by the configured database (a quoted identifier) when the
-- migration runs. Every statement must be idempotent (IF NOT EXISTS): a migration
-- that stopped half-way, or two sinks migrating at once, simply run it again.
--
-- How rows arrive: the sink does not decode Avro in Python. It frames the Kafka
-- values of one topic-partition as an Avro object container and inserts it into a
-- Null-engine landing table (`*_in`, columns exactly as ClickHouse reads the Avro
-- schema, plus kafka_partition and kafka_offset); a materialized view turns those
-- rows into the table's own shape. The landing tables store nothing.
--
-- Common choices:
-- * Times are DateTime64(3, 'UTC') (chDB drops the zone of DateTime('tz') columns).
-- * Names with few distinct values (model, variant, metric, ...) are LowCardinality.
-- * kafka_partition/kafka_offset say where each row came from; a minmax index on the
--   offset lets the sink count a batch's rows back cheaply when it must (sink.py).
-- * non_replicated_deduplication_window: the sink inserts every batch with an
--   insert_deduplication_token built from its topic/partition/offset range, and a
--   batch replayed after a crash is dropped by ClickHouse instead of counted twice.
-- * Retention (TTL) is not written here: `lastmile db migrate` and the sink set it
--   from LASTMILE_RETENTION_DAYS on every start (see streams/db.py), so changing
--   retention is configuration, not a new migration. ttl_only_drop_parts makes
--   expiry drop whole daily/monthly partitions instead of rewriting parts.

-- Predictions: the big table. Read by model, version and time (dashboard, drift
-- windows) and by request_id (joins with outcomes: bloom filter index). Daily
-- partitions: `ts` is when the scorer scored, always close to now.
-- Features: numbers (long, double, boolean as 0/1) in one Map, strings in another,
-- names of null features in an array; `features_num['age']` reads one feature and
-- `mapKeys`/ARRAY JOIN aggregate all of them per name. One row per feature in a side
-- table was measured too (bench/sink.py, 9 numeric features): twice the write time
-- and 2.6x the disk, as fast for "every feature's mean", faster only for one
-- feature's history (which the monitor's metrics table serves anyway).
CREATE TABLE IF NOT EXISTS ${database}.predictions
(
    request_id      String CODEC(ZSTD(1)),
    model           LowCardinality(String),
    version         UInt32,
    variant         LowCardinality(String),
    score           Nullable(Float64) CODEC(ZSTD(1)),
    label           LowCardinality(Nullable(String)),
    features_num    Map(LowCardinality(String), Float64) CODEC(ZSTD(1)),
    features_cat    Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    features_null   Array(LowCardinality(String)),
    event_time      DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    ts              DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    latency_ms      Float32 CODEC(ZSTD(1)),
    entity_id       Nullable(String) CODEC(ZSTD(1)),
    caller          LowCardinality(Nullable(String)),
    metadata        Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    kafka_partition UInt16,
    kafka_offset    UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1)),
    INDEX request_id_bf request_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX kafka_offset_mm kafka_offset TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, version, ts)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.predictions_in
(
    kafka_partition Int32,
    kafka_offset    Int64,
    request_id      String,
    model           String,
    version         Int32,
    variant         String,
    score           Nullable(Float64),
    label           Nullable(String),
    features        Map(String, Variant(Bool, Float64, Int64, String)),
    event_time      DateTime64(3, 'UTC'),
    scored_time     DateTime64(3, 'UTC'),
    latency_ms      Float64,
    entity_id       Nullable(String),
    caller          Nullable(String),
    metadata        Map(String, String)
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.predictions_in_mv TO ${database}.predictions AS
SELECT
    request_id,
    model,
    toUInt32(version) AS version,
    variant,
    score,
    label,
    mapApply(
        (k, v) -> (k, multiIf(
            variantType(v) = 'Float64', variantElement(v, 'Float64'),
            variantType(v) = 'Int64', toFloat64(variantElement(v, 'Int64')),
            toFloat64(variantElement(v, 'Bool')))),
        mapFilter((k, v) -> variantType(v) IN ('Float64', 'Int64', 'Bool'), features)
    ) AS features_num,
    mapApply(
        (k, v) -> (k, variantElement(v, 'String')),
        mapFilter((k, v) -> variantType(v) = 'String', features)
    ) AS features_cat,
    mapKeys(mapFilter((k, v) -> isNull(v), features)) AS features_null,
    event_time,
    scored_time AS ts,
    toFloat32(latency_ms) AS latency_ms,
    entity_id,
    caller,
    metadata,
    toUInt16(kafka_partition) AS kafka_partition,
    toUInt64(kafka_offset) AS kafka_offset
FROM ${database}.predictions_in;

-- Outcomes: joined to predictions by request_id (bloom filter), read by model and
-- time. Monthly partitions: `ts` is the outcome's own event time, which a backfill
-- can spread over years (a daily key would split such a batch into thousands of parts).
CREATE TABLE IF NOT EXISTS ${database}.outcomes
(
    request_id      String CODEC(ZSTD(1)),
    model           LowCardinality(String),
    label           LowCardinality(Nullable(String)),
    value           Nullable(Float64) CODEC(ZSTD(1)),
    ts              DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    kafka_partition UInt16,
    kafka_offset    UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1)),
    INDEX request_id_bf request_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX kafka_offset_mm kafka_offset TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (model, ts)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.outcomes_in
(
    kafka_partition Int32,
    kafka_offset    Int64,
    request_id      String,
    model           String,
    label           Nullable(String),
    value           Nullable(Float64),
    event_time      DateTime64(3, 'UTC')
)
ENGINE = Null;

-- No throwIf/CHECK here (NaN outcomes are refused by the sink, with the codec):
-- chDB's streaming insert swallows an exception raised inside a view or a
-- constraint, reports success and stores nothing of the batch.
CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.outcomes_in_mv TO ${database}.outcomes AS
SELECT
    request_id,
    model,
    label,
    value,
    event_time AS ts,
    toUInt16(kafka_partition) AS kafka_partition,
    toUInt64(kafka_offset) AS kafka_offset
FROM ${database}.outcomes_in;

-- Monitor metrics: one window's value of one metric. Missing version, segment and
-- feature are stored as 0 / '' so they can be part of the sorting key.
CREATE TABLE IF NOT EXISTS ${database}.metrics
(
    model           LowCardinality(String),
    version         UInt32 COMMENT '0: all versions',
    segment         LowCardinality(String) COMMENT 'empty: all traffic',
    metric          LowCardinality(String),
    feature         LowCardinality(String) COMMENT 'empty: a model-level metric',
    value           Float64,
    n               UInt64,
    window_start    DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    window_end      DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    ts              DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    kafka_partition UInt16,
    kafka_offset    UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1)),
    INDEX kafka_offset_mm kafka_offset TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (model, metric, feature, window_start)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.metrics_in
(
    kafka_partition Int32,
    kafka_offset    Int64,
    model           String,
    version         Nullable(Int32),
    segment         Nullable(String),
    metric          String,
    feature         Nullable(String),
    value           Float64,
    n               Int64,
    window_start    DateTime64(3, 'UTC'),
    window_end      DateTime64(3, 'UTC'),
    ts              DateTime64(3, 'UTC')
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.metrics_in_mv TO ${database}.metrics AS
SELECT
    model,
    toUInt32(ifNull(version, 0)) AS version,
    ifNull(segment, '') AS segment,
    metric,
    ifNull(feature, '') AS feature,
    value,
    toUInt64(greatest(n, 0)) AS n,
    window_start,
    window_end,
    ts,
    toUInt16(kafka_partition) AS kafka_partition,
    toUInt64(kafka_offset) AS kafka_offset
FROM ${database}.metrics_in;

-- Alerts firing and resolving; a firing and its resolution share alert_id.
CREATE TABLE IF NOT EXISTS ${database}.alerts
(
    alert_id        String,
    model           LowCardinality(String),
    version         UInt32 COMMENT '0: the model as a whole',
    kind            LowCardinality(String),
    metric          LowCardinality(String),
    feature         LowCardinality(String) COMMENT 'empty: a model-level alert',
    state           LowCardinality(String),
    value           Float64,
    threshold       Float64,
    severity        LowCardinality(String),
    rule            LowCardinality(String),
    ts              DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
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

CREATE TABLE IF NOT EXISTS ${database}.alerts_in
(
    kafka_partition Int32,
    kafka_offset    Int64,
    alert_id        String,
    model           String,
    version         Nullable(Int32),
    kind            String,
    metric          String,
    feature         Nullable(String),
    state           String,
    value           Float64,
    threshold       Float64,
    severity        String,
    rule            String,
    ts              DateTime64(3, 'UTC'),
    message         String
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.alerts_in_mv TO ${database}.alerts AS
SELECT
    alert_id,
    model,
    toUInt32(ifNull(version, 0)) AS version,
    kind,
    metric,
    ifNull(feature, '') AS feature,
    state,
    value,
    threshold,
    severity,
    rule,
    ts,
    message,
    toUInt16(kafka_partition) AS kafka_partition,
    toUInt64(kafka_offset) AS kafka_offset
FROM ${database}.alerts_in;

-- Model versions: every models.events event carries the model's full state, so
-- each event becomes one row per version, and the row from the latest event (the
-- highest offset of the compacted topic) wins: ReplacingMergeTree(kafka_offset).
-- A handful of rows per model: read it with FINAL (or the model_versions_current view).
CREATE TABLE IF NOT EXISTS ${database}.model_versions
(
    model           LowCardinality(String),
    version         UInt32,
    flavor          LowCardinality(String),
    sha256          String,
    path            String,
    created_at      DateTime64(3, 'UTC'),
    parent          Nullable(UInt32),
    retired         Bool,
    meta_json       String CODEC(ZSTD(3)),
    aliases         Array(LowCardinality(String)) COMMENT 'aliases pointing at this version',
    is_shadow       Bool,
    split           Map(LowCardinality(String), Float64) COMMENT 'the model''s traffic split, alias -> weight',
    event_kind      LowCardinality(String) COMMENT 'the last change to the model',
    event_version   Nullable(UInt32) COMMENT 'the version that change concerned',
    actor           Nullable(String),
    updated_at      DateTime64(3, 'UTC'),
    kafka_partition UInt16,
    kafka_offset    UInt64,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(kafka_offset)
ORDER BY (model, version)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ${database}.model_events_in
(
    kafka_partition Int32,
    kafka_offset    Int64,
    model           String,
    kind            String,
    version         Nullable(Int32),
    actor           Nullable(String),
    ts              DateTime64(3, 'UTC'),
    state Tuple(
        versions Array(Tuple(
            version Int32,
            flavor String,
            sha256 String,
            path String,
            created_at DateTime64(3, 'UTC'),
            parent Nullable(Int32),
            retired Bool,
            meta_json String)),
        aliases Map(String, Int32),
        split Map(String, Float64),
        shadow Nullable(Int32),
        alias_history Array(Tuple(alias String, version Nullable(Int32), ts DateTime64(3, 'UTC'))))
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.model_events_in_mv TO ${database}.model_versions AS
SELECT
    model,
    toUInt32(v.version) AS version,
    v.flavor AS flavor,
    v.sha256 AS sha256,
    v.path AS path,
    v.created_at AS created_at,
    CAST(v.parent, 'Nullable(UInt32)') AS parent,
    v.retired AS retired,
    v.meta_json AS meta_json,
    mapKeys(mapFilter((alias, target) -> target = v.version, state.aliases)) AS aliases,
    ifNull(state.shadow = v.version, false) AS is_shadow,
    state.split AS split,
    kind AS event_kind,
    CAST(version, 'Nullable(UInt32)') AS event_version,
    actor,
    ts AS updated_at,
    toUInt16(kafka_partition) AS kafka_partition,
    toUInt64(kafka_offset) AS kafka_offset
FROM ${database}.model_events_in
ARRAY JOIN state.versions AS v;

-- Dead letters, from every role. The DLQ is at-least-once for the roles that
-- produce without a transaction (the sink itself among them), so the same source
-- message may be dead-lettered twice: ReplacingMergeTree keyed on the source
-- message collapses those copies (count with FINAL or uniqExact on the key).
CREATE TABLE IF NOT EXISTS ${database}.dead_letters
(
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    source_timestamp Nullable(DateTime64(3, 'UTC')),
    stage            LowCardinality(String),
    error            String CODEC(ZSTD(1)),
    error_type       LowCardinality(String),
    ts               DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    worker           LowCardinality(Nullable(String)),
    model            LowCardinality(Nullable(String)),
    original_key     Nullable(String) CODEC(ZSTD(1)),
    original_value   Nullable(String) CODEC(ZSTD(3)),
    original_headers Array(Tuple(key String, value Nullable(String))) CODEC(ZSTD(1)),
    kafka_partition  UInt16,
    kafka_offset     UInt64 CODEC(Delta, ZSTD(1)),
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(kafka_offset)
PARTITION BY toYYYYMM(ts)
ORDER BY (source_topic, stage, source_partition, source_offset)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.dead_letters_in
(
    kafka_partition  Int32,
    kafka_offset     Int64,
    original_key     Nullable(String),
    original_value   Nullable(String),
    original_headers Array(Tuple(key String, value Nullable(String))),
    source_topic     String,
    source_partition Int32,
    source_offset    Int64,
    source_timestamp Nullable(DateTime64(3, 'UTC')),
    stage            String,
    error            String,
    error_type       String,
    ts               DateTime64(3, 'UTC'),
    worker           Nullable(String),
    model            Nullable(String)
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.dead_letters_in_mv TO ${database}.dead_letters AS
SELECT
    source_topic,
    toUInt32(source_partition) AS source_partition,
    toUInt64(source_offset) AS source_offset,
    source_timestamp,
    stage,
    error,
    error_type,
    ts,
    worker,
    model,
    original_key,
    original_value,
    original_headers,
    toUInt16(kafka_partition) AS kafka_partition,
    toUInt64(kafka_offset) AS kafka_offset
FROM ${database}.dead_letters_in;

-- The sink's journal: the offset range of every batch, written BEFORE the batch's
-- rows. A sink taking over a partition replays an unfinished range with exactly
-- the same boundaries, hence the same deduplication token (streams/sink.py).
-- Only the uncommitted tail matters; a week of history is plenty.
CREATE TABLE IF NOT EXISTS ${database}.sink_batches
(
    group_id     LowCardinality(String),
    topic        LowCardinality(String),
    partition    UInt32,
    first_offset UInt64,
    last_offset  UInt64,
    rows         UInt32,
    worker       LowCardinality(String),
    created_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (group_id, topic, partition, first_offset)
TTL toDateTime(created_at) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- What each sink worker last said about itself (lag, errors, rows per table); the
-- dashboard reads sink_status FINAL. While ClickHouse is down nothing can be
-- written here: the worker's /lastmile/status page has the live view.
CREATE TABLE IF NOT EXISTS ${database}.sink_status
(
    group_id      LowCardinality(String),
    worker        String,
    ts            DateTime64(3, 'UTC'),
    lag           UInt64,
    buffered_rows UInt64,
    paused        Bool,
    rows_written  Map(LowCardinality(String), UInt64),
    dead_letters  UInt64,
    errors        UInt64,
    last_error    String,
    last_error_at Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree(ts)
ORDER BY (group_id, worker)
TTL toDateTime(ts) + INTERVAL 7 DAY;
