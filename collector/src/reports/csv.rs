//! A report as CSV: one table per section, each opening with a header row
//! whose first cell names the section, a blank line between them. Numbers
//! are raw (bytes, bits per second, seconds, percent with a dot).

use super::Report;

/// RFC 4180 quoting; a cell a spreadsheet would run as a formula (`=`,
/// `+`, `-`, `@` first: comments and names are free text) gets a `'`.
fn cell(v: &str) -> String {
    let v = match v.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if v.parse::<f64>().is_err() => format!("'{v}"),
        _ => v.to_string(),
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

struct Out(String);

impl Out {
    fn row<I: IntoIterator<Item = String>>(&mut self, cells: I) {
        let line: Vec<String> = cells.into_iter().map(|c| cell(&c)).collect();
        self.0.push_str(&line.join(","));
        self.0.push_str("\r\n");
    }

    fn blank(&mut self) {
        self.0.push_str("\r\n");
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_default()
}

fn optu(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

macro_rules! row {
    ($o:expr, $($c:expr),* $(,)?) => { $o.row([$($c.to_string()),*]) };
}

pub fn write(r: &Report) -> String {
    let mut o = Out(String::new());
    let u = &r.usage;
    row!(o, "report", "value");
    row!(o, "month", r.month);
    row!(o, "agency", r.agency.as_deref().unwrap_or("province"));
    row!(o, "name", r.name);
    row!(o, "utc_offset", r.utc_offset);
    row!(o, "from", r.from);
    row!(o, "to", r.to);
    row!(o, "complete", r.complete);
    row!(o, "generated_at", r.generated_at);
    o.blank();
    row!(o, "usage", "value");
    for (k, v) in [
        ("bytes_in", u.bytes_in.to_string()),
        ("bytes_out", u.bytes_out.to_string()),
        ("internet_bytes_in", u.internet_bytes_in.to_string()),
        ("internet_bytes_out", u.internet_bytes_out.to_string()),
        ("alloc_down_bps", u.alloc_down_bps.to_string()),
        ("alloc_up_bps", u.alloc_up_bps.to_string()),
        ("peak_in_bps", format!("{:.3}", u.rates.peak_in_bps)),
        ("peak_out_bps", format!("{:.3}", u.rates.peak_out_bps)),
        ("p95_in_bps", format!("{:.3}", u.rates.p95_in_bps)),
        ("p95_out_bps", format!("{:.3}", u.rates.p95_out_bps)),
        ("rate_step_secs", u.rates.rate_step_secs.to_string()),
        ("peak_1s_in_bps", optu(u.peak_1s_in_bps)),
        ("peak_1s_out_bps", optu(u.peak_1s_out_bps)),
        ("p95_1s_in_bps", optu(u.p95_1s_in_bps)),
        ("p95_1s_out_bps", optu(u.p95_1s_out_bps)),
        ("hours_above_95_in", u.hours_above_95_in.to_string()),
        ("hours_above_95_out", u.hours_above_95_out.to_string()),
        ("hours_with_allocation", u.hours_with_allocation.to_string()),
    ] {
        row!(o, k, v);
    }
    o.blank();
    row!(
        o,
        "daily",
        "bytes_in",
        "bytes_out",
        "peak_in_bps",
        "alloc_down_bps"
    );
    for d in &r.daily {
        row!(
            o,
            d.date,
            d.bytes_in,
            d.bytes_out,
            format!("{:.3}", d.peak_in_bps),
            d.alloc_down_bps
        );
    }
    o.blank();
    row!(
        o,
        "availability",
        "agency",
        "availability_pct",
        "down_ms",
        "maintenance_ms",
        "unreachable_ms",
        "unmonitored_ms",
        "incidents",
        "never_seen"
    );
    row!(
        o,
        "overall",
        "",
        opt(r.availability.overall_pct),
        "",
        "",
        "",
        "",
        "",
        ""
    );
    for a in &r.availability.nodes {
        row!(
            o,
            a.node_id,
            a.agency,
            opt(a.availability_pct),
            a.down_ms,
            a.maintenance_ms,
            a.unreachable_ms,
            a.unmonitored_ms,
            a.incidents,
            a.never_seen
        );
    }
    o.blank();
    row!(
        o,
        "incidents_by_severity",
        "incidents",
        "acknowledged",
        "resolved",
        "mean_ack_secs",
        "max_ack_secs",
        "mean_resolve_secs",
        "max_resolve_secs"
    );
    for s in &r.incidents.by_severity {
        let st = &s.stats;
        row!(
            o,
            s.severity,
            st.incidents,
            st.acknowledged,
            st.resolved,
            opt(st.mean_ack_secs),
            opt(st.max_ack_secs),
            opt(st.mean_resolve_secs),
            opt(st.max_resolve_secs)
        );
    }
    row!(
        o,
        "in_maintenance",
        r.incidents.in_maintenance,
        "",
        "",
        "",
        "",
        "",
        ""
    );
    row!(
        o,
        "unreachable",
        r.incidents.unreachable,
        "",
        "",
        "",
        "",
        "",
        ""
    );
    o.blank();
    row!(
        o,
        "incident",
        "node_id",
        "agency",
        "kind",
        "severity",
        "started_ms",
        "detected_ms",
        "acked_ms",
        "acked_by",
        "resolved_ms",
        "maintenance"
    );
    for i in &r.incidents.list {
        row!(
            o,
            i.id,
            i.node_id,
            i.agency,
            i.kind,
            i.severity,
            i.started_ms,
            i.detected_ms,
            optu(i.acked_ms),
            i.acked_by.as_deref().unwrap_or(""),
            optu(i.resolved_ms),
            i.maintenance
        );
    }
    o.blank();
    row!(o, "top_site", "bytes", "flows");
    for s in &r.top_sites {
        row!(o, s.site, s.bytes, s.flows);
    }
    o.blank();
    row!(o, "blocked_category", "attempts", "clients", "targets");
    for c in &r.blocked.categories {
        row!(o, c.category, c.attempts, c.clients, c.targets);
    }
    o.blank();
    row!(
        o,
        "policy_change",
        "version",
        "at",
        "by",
        "comment",
        "changes"
    );
    for p in &r.policy_changes {
        row!(
            o,
            p.scope,
            p.version,
            p.at,
            p.by,
            p.comment,
            p.changes.join(" ")
        );
    }
    if !r.agencies.is_empty() {
        o.blank();
        row!(
            o,
            "agency",
            "name",
            "bytes_in",
            "bytes_out",
            "alloc_down_bps",
            "availability_pct",
            "incidents"
        );
        for a in &r.agencies {
            row!(
                o,
                a.code,
                a.name,
                a.bytes_in,
                a.bytes_out,
                a.alloc_down_bps,
                opt(a.availability_pct),
                a.incidents
            );
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-12.5"), "-12.5");
        assert_eq!(cell("@sum"), "'@sum");
    }
}
