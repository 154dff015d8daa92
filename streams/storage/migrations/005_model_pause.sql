-- The kill switch (schemas/ModelEvent.avsc v2): a model's state carries its pause. The
-- sink inserts events of the current schema, and ClickHouse maps an Avro record onto a
-- Tuple only when their elements agree: v2 events land in a table of their own (the v1
-- landing table and its view stay, unused). A model that is not paused lands with the
-- defaults of `pause` (since 1970-01-01): not Nullable(Tuple), which older servers lack.
-- model_versions is filled as before (the registry on disk and models.events say whether
-- a model is paused).

CREATE TABLE IF NOT EXISTS ${database}.model_events_v2_in
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
        alias_history Array(Tuple(alias String, version Nullable(Int32), ts DateTime64(3, 'UTC'))),
        pause Tuple(
            score Nullable(Float64),
            label Nullable(String),
            version Nullable(Int32),
            since DateTime64(3, 'UTC')),
        snapshot_request Nullable(DateTime64(3, 'UTC')))
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.model_events_v2_in_mv TO ${database}.model_versions AS
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
FROM ${database}.model_events_v2_in
ARRAY JOIN state.versions AS v;
