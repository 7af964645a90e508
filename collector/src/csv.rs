//! CSV answers (`format=csv`): RFC 4180, UTF-8 with a byte-order mark so a
//! spreadsheet opened by double-click reads Indonesian names right, and a
//! text cell a spreadsheet would run as a formula defused with a leading
//! apostrophe (a site name is whatever a client put in its TLS hello).

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

pub const BOM: &str = "\u{feff}";

/// One text cell, quoted when needed.
pub fn cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

fn value_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => cell(s),
        // Numbers and booleans as JSON writes them: never formulas.
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => cell(&other.to_string()),
    }
}

/// The header line of these columns.
pub fn header(cols: &[&str]) -> String {
    let mut s: String = cols.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
    s.push_str("\r\n");
    s
}

/// One line: the named fields of a row as it serializes to JSON.
pub fn line<T: Serialize>(row: &T, cols: &[&str]) -> String {
    let v = serde_json::to_value(row).unwrap_or(Value::Null);
    let mut s = cols
        .iter()
        .map(|c| value_cell(v.get(c)))
        .collect::<Vec<_>>()
        .join(",");
    s.push_str("\r\n");
    s
}

/// A whole table: BOM, header, rows.
pub fn table<T: Serialize>(rows: &[T], cols: &[&str]) -> String {
    let mut s = String::from(BOM);
    s.push_str(&header(cols));
    for r in rows {
        s.push_str(&line(r, cols));
    }
    s
}

/// A CSV download named `name`.csv.
pub fn response(name: &str, body: impl Into<Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body.into(),
    )
        .into_response()
}

/// "20261204T0300Z": a Unix time in a file name (UTC, to the minute).
pub fn stamp(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The name (without `.csv`) of an export of `parts` over `from..to`:
/// "simpul-blocked-dinkes-20261204T0300Z-20261204T0400Z". Whatever is not
/// `[A-Za-z0-9._-]` in a part (a search's text) becomes `_`, so the name
/// cannot break out of the header's quotes; a part is cut at 64 bytes.
pub fn range_name(parts: &[&str], from: u64, to: u64) -> String {
    let mut name = String::from("simpul");
    for p in parts.iter().filter(|p| !p.is_empty()) {
        name.push('-');
        name.extend(p.chars().take(64).map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        }));
    }
    format!("{name}-{}-{}", stamp(from), stamp(to))
}

/// Whether `format` asks for CSV (None and "json" do not).
pub fn wanted(format: Option<&str>) -> Result<bool, crate::api::ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(f) => Err(crate::api::bad(format!("format: {f:?} is not json or csv"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_defuses_and_keeps_numbers() {
        #[derive(Serialize)]
        struct R {
            a: String,
            n: i64,
            o: Option<String>,
        }
        let t = table(
            &[R {
                a: "=HYPERLINK(\"x\"),1".into(),
                n: -5,
                o: None,
            }],
            &["a", "n", "o"],
        );
        assert_eq!(t, "\u{feff}a,n,o\r\n\"'=HYPERLINK(\"\"x\"\"),1\",-5,\r\n");
    }

    #[test]
    fn range_names_are_safe_file_names() {
        assert_eq!(stamp(1_796_400_000), "20261204T1600Z");
        assert_eq!(
            range_name(&["search", "hosts", "a\"b/c d"], 0, 86_400),
            "simpul-search-hosts-a_b_c_d-19700101T0000Z-19700102T0000Z"
        );
        assert_eq!(
            range_name(&["blocked", ""], 60, 120),
            "simpul-blocked-19700101T0001Z-19700101T0002Z"
        );
    }
}
