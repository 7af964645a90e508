//! Ingest benchmark on ClickHouse (bench/clickhouse.sh).
