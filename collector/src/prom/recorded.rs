//! The event counters the code records where things happen (the `metrics`
//! crate's `counter!`, `gauge!`, `histogram!` calls in agent sessions, the
//! writer, the notifier, authentication, the edge): their help text, in one
//! table. The recorder renders them; a test reads the sources and fails
//! for a recorded name this table does not describe.

use super::text::Kind;

/// Name, kind, help of every recorded family.
pub const RECORDED: &[(&str, Kind, &str)] = &[
    // Ingest (the store writer).
    ("simpul_ingest_batches_total", Kind::Counter, "Agent batches committed to the flow store (duplicates included: they are acknowledged again)."),
    ("simpul_ingest_records_total", Kind::Counter, "Records (flows, counter samples, blocked attempts) in committed batches."),
    ("simpul_ingest_blocked_records_total", Kind::Counter, "Blocked-attempt records in committed batches (one record folds one or more attempts)."),
    ("simpul_ingest_duplicate_batches_total", Kind::Counter, "Batches already stored before (an agent re-sent them after a reconnect); nothing written."),
    ("simpul_ingest_errors_total", Kind::Counter, "Ingest transactions that failed; their batches were not acknowledged and will be re-sent."),
    ("simpul_ingest_commit_seconds", Kind::Summary, "Duration of one ingest transaction (one commit, one fsync, for every node's batches of a 20 ms window)."),
    ("simpul_records_refused_total", Kind::Counter, "Records refused before storage by reason: future (dated ahead of the collector's clock), past (before retention), rate (impossible rate)."),
    ("simpul_records_foreign_agency_total", Kind::Counter, "Records naming another agency than the inventory gives the sending node (stored under the node's agency)."),
    ("simpul_batches_refused_total", Kind::Counter, "Batches refused by reason (sequence: a gap larger than the drops the agent reports)."),
    ("simpul_agent_dropped_records_total", Kind::Counter, "Records an agent reported dropping at its spool quota, per node, as received in stored batches."),
    // Agent sessions and the lists they fetch.
    ("simpul_agent_connections", Kind::Gauge, "Agent WebSocket sessions open now."),
    ("simpul_agent_refused_total", Kind::Counter, "Agent connections refused before or at authentication."),
    ("simpul_list_bytes_sent_total", Kind::Counter, "Bytes of named domain lists sent to agents."),
    ("simpul_list_chunks_sent_total", Kind::Counter, "Chunks of named domain lists sent to agents."),
    ("simpul_list_versions_total", Kind::Counter, "Named list versions recorded, by origin (upload, source) and state."),
    ("simpul_list_syncs_total", Kind::Counter, "Named list source synchronisations, by result (ok, error)."),
    // Notifications.
    ("simpul_notify_sent_total", Kind::Counter, "Notifications delivered, per channel (as named in the configuration)."),
    ("simpul_notify_failed_total", Kind::Counter, "Notifications given up on (permanent error, attempts or age exhausted), per channel."),
    ("simpul_notify_retries_total", Kind::Counter, "Notification attempts that failed and will be retried, per channel."),
    ("simpul_notify_rate_limited_total", Kind::Counter, "Notifications held back by their channel's rate limit (each counted once), per channel."),
    // Dashboard, API and their edge.
    ("simpul_auth_logins_total", Kind::Counter, "Dashboard logins by result (ok, failed, throttled)."),
    ("simpul_auth_denied_total", Kind::Counter, "API requests refused by status (401: no or bad credentials, 403: role, CSRF or kiosk)."),
    ("simpul_http_connections", Kind::Gauge, "HTTP connections open now (dashboard, API, live feeds)."),
    ("simpul_http_connections_refused_total", Kind::Counter, "HTTP connections refused at the connection limits."),
    ("simpul_live_feeds", Kind::Gauge, "Live dashboard feeds (WebSockets) open now."),
    // NetFlow/IPFIX in (per exporter node; exporters are bounded by [netflow] max_exporters).
    ("simpul_netflow_datagrams_total", Kind::Counter, "NetFlow/IPFIX datagrams received, per exporter node."),
    ("simpul_netflow_records_total", Kind::Counter, "Flow records decoded from NetFlow/IPFIX datagrams, per exporter node."),
    ("simpul_netflow_decode_errors_total", Kind::Counter, "NetFlow/IPFIX datagrams that could not be read, per exporter node and reason (truncated, version, malformed, exporters)."),
    ("simpul_netflow_sequence_lost_total", Kind::Counter, "Records (v5, IPFIX) or datagrams (v9) the exporter's sequence numbers say were lost, per exporter node."),
    ("simpul_netflow_templates_refused_total", Kind::Counter, "Templates not kept because the exporter's share of the template cache is full, per exporter node."),
    ("simpul_netflow_sets_without_template_total", Kind::Counter, "Data sets skipped because their template was not known yet, per exporter node."),
    ("simpul_netflow_sampling_interval", Kind::Gauge, "Sampling interval of the exporter's last records (1: unsampled; stored counts are multiplied by it), per exporter node."),
    ("simpul_netflow_ignored_datagrams_total", Kind::Counter, "Datagrams from exporters not listed (accept_unlisted = false) or past max_exporters."),
    ("simpul_netflow_store_errors_total", Kind::Counter, "NetFlow/IPFIX batches the flow store failed to write (UDP: nothing is re-sent)."),
];

/// Label values known in advance: these series exist from the start at
/// zero (an alert on `increase(...)` then sees the first event, and a
/// dashboard shows 0 rather than no data). Channel names come from the
/// configuration ([`super::collector`]); node labels appear as nodes send.
const KNOWN: &[(&str, &str, &[&str])] = &[
    (
        "simpul_records_refused_total",
        "reason",
        &["future", "past", "rate"],
    ),
    ("simpul_batches_refused_total", "reason", &["sequence"]),
    (
        "simpul_auth_logins_total",
        "result",
        &["ok", "failed", "throttled"],
    ),
    ("simpul_auth_denied_total", "status", &["401", "403"]),
    ("simpul_list_syncs_total", "result", &["ok", "error"]),
];

/// Give the recorder the help text of every recorded family, and the
/// series known in advance their zero (once; the recorder keeps both).
pub fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for &(name, kind, help) in RECORDED {
            match kind {
                Kind::Counter => metrics::describe_counter!(name, help),
                Kind::Gauge => metrics::describe_gauge!(name, help),
                Kind::Summary => metrics::describe_histogram!(name, help),
            }
            let labelled = RECORDED_LABELLED.contains(&name);
            match kind {
                Kind::Counter if !labelled => metrics::counter!(name).increment(0),
                Kind::Gauge if !labelled => metrics::gauge!(name).increment(0.0),
                _ => {}
            }
        }
        for &(name, label, values) in KNOWN {
            for v in values {
                metrics::counter!(name, label => *v).increment(0);
            }
        }
    });
}

/// Families always recorded with labels (no unlabelled zero for them).
const RECORDED_LABELLED: &[&str] = &[
    "simpul_records_refused_total",
    "simpul_batches_refused_total",
    "simpul_agent_dropped_records_total",
    "simpul_list_versions_total",
    "simpul_list_syncs_total",
    "simpul_notify_sent_total",
    "simpul_notify_failed_total",
    "simpul_notify_retries_total",
    "simpul_notify_rate_limited_total",
    "simpul_auth_logins_total",
    "simpul_auth_denied_total",
    "simpul_netflow_datagrams_total",
    "simpul_netflow_records_total",
    "simpul_netflow_decode_errors_total",
    "simpul_netflow_sequence_lost_total",
    "simpul_netflow_templates_refused_total",
    "simpul_netflow_sets_without_template_total",
    "simpul_netflow_sampling_interval",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name given to the `metrics` macros in the collector's
    /// sources (a family recorded without help would fail
    /// `promtool check metrics`).
    fn recorded_in_sources() -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for macro_ in ["counter!(", "gauge!(", "histogram!("] {
                        let needle = format!("metrics::{macro_}");
                        for (at, _) in text.match_indices(&needle) {
                            let rest = text[at + needle.len()..].trim_start();
                            if let Some(q) = rest.strip_prefix('"') {
                                let name = q.split('"').next().unwrap_or("").to_string();
                                out.push((name, p.display().to_string()));
                            }
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    #[test]
    fn every_recorded_family_has_help() {
        let found = recorded_in_sources();
        assert!(found.len() > 20, "the source scan found {found:?}");
        for (name, file) in found {
            assert!(
                RECORDED.iter().any(|(n, ..)| *n == name),
                "{name} (recorded in {file}) has no help text in prom/recorded.rs"
            );
        }
    }

    #[test]
    fn names_follow_the_conventions() {
        for (name, kind, help) in RECORDED {
            assert!(name.starts_with("simpul_"), "{name}");
            assert_eq!(name.ends_with("_total"), *kind == Kind::Counter, "{name}");
            assert!(help.ends_with('.'), "{name}: {help}");
        }
    }
}
