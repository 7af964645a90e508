//! Policy documents as the NOC edits them: a province-wide default and,
//! per agency, a document of what it overrides. The policy an agency
//! enforces is the default with the agency's document merged over it
//! (RFC 7396 JSON merge patch: objects merge key by key, anything else —
//! a number, a list — replaces; `null` removes the default's value).
//!
//! Pure: JSON values in, a [`Policy`] or problems with their places out,
//! so the collector's API, its tests and the fuzzer share one rule.

use serde_json::{Map, Value};
use simpul_proto::policy::Policy;
use simpul_proto::Problem;

/// Keys of the default that only make sense for one agency.
const AGENCY_ONLY: &[(&str, &str)] = &[
    ("agency", "the default is every agency's"),
    (
        "allocation.units",
        "units belong to one agency: set them on the agency",
    ),
    (
        "suspension",
        "a suspension names an agency: set it on the agency",
    ),
];

/// Merge `patch` into `base` (RFC 7396).
pub fn merge_patch(base: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !base.is_object() {
                *base = Value::Object(Map::new());
            }
            if let Value::Object(b) = base {
                for (k, v) in p {
                    if v.is_null() {
                        b.remove(k);
                    } else {
                        merge_patch(b.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *base = other.clone(),
    }
}

/// Check a document's shape before merging: an object, no `version` that
/// matters (the collector sets it: dropped), and for the default nothing
/// agency-specific. Returns the document as it will be stored.
pub fn clean_document(doc: &Value, default: bool, agency: &str) -> Result<Value, Vec<Problem>> {
    let Value::Object(map) = doc else {
        return Err(vec![Problem::new(
            "policy",
            "a policy document is a JSON object",
        )]);
    };
    let mut map = map.clone();
    // Set by the collector: the version when it saves, the named lists'
    // content when it signs.
    map.remove("version");
    if let Some(Value::Object(b)) = map.get_mut("blocking") {
        b.remove("lists");
    }
    let mut problems = Vec::new();
    if default {
        for (path, why) in AGENCY_ONLY {
            if lookup(&map, path).is_some() {
                problems.push(Problem::new(format!("policy.{path}"), *why));
            }
        }
        if let Some(Value::Array(s)) = map.get("schedules") {
            for (i, w) in s.iter().enumerate() {
                if w.get("units").is_some() {
                    problems.push(Problem::new(
                        format!("policy.schedules[{i}].units"),
                        "units belong to one agency: set them on the agency",
                    ));
                }
            }
        }
    } else {
        match map.remove("agency") {
            None => {}
            Some(Value::String(a)) if a == agency => {}
            Some(other) => problems.push(Problem::new(
                "policy.agency",
                format!("{other} in the policy of {agency:?}"),
            )),
        }
    }
    if problems.is_empty() {
        Ok(Value::Object(map))
    } else {
        Err(problems)
    }
}

fn lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = map.get(parts.next()?)?;
    for p in parts {
        cur = cur.get(p)?;
    }
    Some(cur)
}

/// The policy `agency` enforces: `default` with `document` merged over it,
/// numbered `version`. Problems name the place in the merged policy.
pub fn effective(
    default: &Value,
    document: &Value,
    agency: &str,
    version: u64,
) -> Result<Policy, Vec<Problem>> {
    let mut merged = effective_value(default, document);
    if let Value::Object(m) = &mut merged {
        m.insert("agency".into(), Value::String(agency.to_string()));
        m.insert("version".into(), Value::from(version));
    }
    serde_json::from_value::<Policy>(merged).map_err(|e| {
        vec![Problem::new(
            "policy",
            format!("the merged policy does not read: {e}"),
        )]
    })
}

/// The merged document, before it is read as a policy.
pub fn effective_value(default: &Value, document: &Value) -> Value {
    let mut merged = match default {
        Value::Object(_) => default.clone(),
        _ => Value::Object(Map::new()),
    };
    merge_patch(&mut merged, document);
    merged
}

/// One difference between two documents.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    /// `allocation.download.rate_bps`, `blocking.domains`, …
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Every leaf that differs between `before` and `after` (objects are walked;
/// a list that differs is one change).
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", Some(before), Some(after), &mut out);
    out
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&p, x.get(k), y.get(k), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            path: path.to_string(),
            before: a.cloned(),
            after: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn default() -> Value {
        json!({
            "allocation": {"download": {"rate_bps": 50_000_000, "ceil_bps": 100_000_000},
                           "upload": {"rate_bps": 10_000_000, "ceil_bps": 20_000_000}},
            "blocking": {"domains": ["judi.example"], "block_dot": true}
        })
    }

    #[test]
    fn agency_overrides_only_what_it_names() {
        let doc =
            json!({"allocation": {"download": {"rate_bps": 80_000_000, "ceil_bps": 100_000_000}}});
        let p = effective(&default(), &doc, "dinkes", 3).unwrap();
        assert_eq!(p.agency, "dinkes");
        assert_eq!(p.version, 3);
        assert_eq!(p.allocation.download.rate_bps, 80_000_000);
        // Upload and blocking keep following the default.
        assert_eq!(p.allocation.upload.rate_bps, 10_000_000);
        assert_eq!(p.blocking.domains, vec!["judi.example".to_string()]);
        assert!(p.blocking.block_dot);
        // A list replaces the default's; null removes it.
        let doc = json!({"blocking": {"domains": ["slot.example"], "block_dot": null}});
        let p = effective(&default(), &doc, "dinkes", 4).unwrap();
        assert_eq!(p.blocking.domains, vec!["slot.example".to_string()]);
        assert!(!p.blocking.block_dot);
    }

    #[test]
    fn documents_are_checked_with_places() {
        let e = clean_document(&json!([1]), false, "dinkes").unwrap_err();
        assert_eq!(e[0].place, "policy");
        let e = clean_document(&json!({"agency": "bappeda"}), false, "dinkes").unwrap_err();
        assert_eq!(e[0].place, "policy.agency");
        let ok =
            clean_document(&json!({"agency": "dinkes", "version": 99}), false, "dinkes").unwrap();
        assert_eq!(ok, json!({}));
        let e = clean_document(
            &json!({"allocation": {"units": {}}, "schedules": [{"units": {}}], "suspension": {"agency": true}}),
            true,
            "",
        )
        .unwrap_err();
        let places: Vec<&str> = e.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(
            places,
            [
                "policy.allocation.units",
                "policy.suspension",
                "policy.schedules[0].units"
            ]
        );
        // A field the policy does not have is named.
        let e = effective(&default(), &json!({"alocation": {}}), "dinkes", 1).unwrap_err();
        assert!(e[0].message.contains("alocation"), "{e:?}");
    }

    #[test]
    fn diff_names_leaves() {
        let a = default();
        let mut b = a.clone();
        merge_patch(
            &mut b,
            &json!({"allocation": {"upload": {"ceil_bps": 30_000_000}}, "blocking": {"block_quic": true}}),
        );
        let d = diff(&a, &b);
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["allocation.upload.ceil_bps", "blocking.block_quic"]);
        assert_eq!(d[1].before, None);
        assert_eq!(d[1].after, Some(json!(true)));
        assert!(diff(&a, &a).is_empty());
    }
}
