//! The OpenAPI 3.1 document of /api/v1, built from one table of endpoints so
//! the document and the router are checked against each other in tests.

use axum::Json;
use serde_json::{json, Value};
use simpul_proto::BlockMethod;

/// (path, summary, query parameters, response schema name)
pub const ENDPOINTS: &[(&str, &str, &[&str], &str)] = &[
    (
        "/api/v1/nodes",
        "Agent nodes: status, last seen, version, health",
        &[],
        "NodeList",
    ),
    (
        "/api/v1/agencies",
        "Agencies, units and allocations",
        &[],
        "AgencyList",
    ),
    (
        "/api/v1/overview",
        "NOC wall: throughput now vs allocation, nodes, top sites",
        &["window"],
        "Overview",
    ),
    (
        "/api/v1/agencies/{code}/usage",
        "Usage series of one agency",
        &["from", "to", "step"],
        "Usage",
    ),
    (
        "/api/v1/top/hosts",
        "Top hosts by bytes",
        &["agency", "from", "to", "limit"],
        "TopHosts",
    ),
    (
        "/api/v1/top/sites",
        "Top sites by bytes",
        &["agency", "from", "to", "limit"],
        "TopSites",
    ),
    (
        "/api/v1/flows",
        "Flow search",
        &["from", "to", "agency", "host", "site", "limit"],
        "Flows",
    ),
    (
        "/api/v1/blocked",
        "Blocked attempts (policy enforcement), newest first",
        &["from", "to", "agency", "node", "method", "limit"],
        "BlockedList",
    ),
    (
        "/api/v1/blocked/summary",
        "Blocked attempts per agency, top targets and top clients",
        &["from", "to", "agency", "node", "method", "limit"],
        "BlockedSummary",
    ),
];

fn param(name: &str) -> Value {
    let (desc, schema) = match name {
        "from" | "to" => ("RFC 3339 time or Unix seconds", json!({"type": "string"})),
        "window" => (
            "seconds averaged (1..3600, default 5)",
            json!({"type": "integer", "minimum": 1, "maximum": 3600}),
        ),
        "step" => (
            "1s (last hour), 1m or 1h",
            json!({"type": "string", "enum": ["1s", "1m", "1h"]}),
        ),
        "limit" => (
            "maximum rows",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        "agency" => (
            "agency code",
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
        ),
        "host" => ("IP address on either side", json!({"type": "string"})),
        "node" => (
            "node id",
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
        ),
        "method" => (
            "where the agent stopped the attempt",
            json!({"type": "string", "enum": BlockMethod::ALL.iter().map(|m| m.name()).collect::<Vec<_>>()}),
        ),
        "site" => (
            "site name; matches subdomains too",
            json!({"type": "string"}),
        ),
        _ => ("", json!({"type": "string"})),
    };
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema})
}

fn schemas() -> Value {
    let rate = json!({"type": "number", "description": "bits per second"});
    let time = json!({"type": "string", "format": "date-time"});
    let method = json!({"type": "string", "enum": BlockMethod::ALL.iter().map(|m| m.name()).collect::<Vec<_>>()});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Node": {"type": "object", "properties": {
            "node_id": {"type": "string"}, "agency": {"type": "string"}, "hostname": {"type": ["string", "null"]},
            "address": {"type": ["string", "null"]}, "agent_version": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["up", "down", "never", "revoked"]},
            "last_seen": {"type": ["string", "null"], "format": "date-time"}, "enrolled_at": {"type": ["string", "null"]},
            "revoked": {"type": "boolean"}, "health": {"type": ["object", "null"]}}},
        "NodeList": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        "Agency": {"type": "object", "properties": {
            "code": {"type": "string"}, "name": {"type": "string"},
            "alloc_down_bps": {"type": "integer"}, "alloc_up_bps": {"type": "integer"},
            "units": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "name": {"type": "string"}}}},
            "nodes": {"type": "array", "items": {"type": "string"}}}},
        "AgencyList": {"type": "array", "items": {"$ref": "#/components/schemas/Agency"}},
        "Overview": {"type": "object", "properties": {
            "ts": time, "window_secs": {"type": "integer"},
            "uplink": {"type": "object", "properties": {"capacity_down_bps": {"type": "integer"}, "capacity_up_bps": {"type": "integer"}, "in_bps": rate, "out_bps": rate}},
            "agencies": {"type": "array", "items": {"type": "object", "properties": {
                "code": {"type": "string"}, "name": {"type": "string"}, "alloc_down_bps": {"type": "integer"}, "alloc_up_bps": {"type": "integer"},
                "in_bps": rate, "out_bps": rate, "internet_in_bps": rate, "internet_out_bps": rate,
                "intranet_in_bps": rate, "intranet_out_bps": rate, "nodes_up": {"type": "integer"}, "nodes_total": {"type": "integer"}}}},
            "nodes": {"$ref": "#/components/schemas/NodeList"},
            "top_sites": {"$ref": "#/components/schemas/TopSites"},
            "top_agencies": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "bytes": {"type": "integer"}}}}}},
        "Usage": {"type": "object", "properties": {
            "agency": {"type": "string"}, "step_secs": {"type": "integer"}, "from": time, "to": time,
            "points": {"type": "array", "items": {"type": "object", "properties": {
                "ts": time, "bytes_in": {"type": "integer"}, "bytes_out": {"type": "integer"}, "in_bps": rate, "out_bps": rate,
                "internet_bytes_in": {"type": "integer"}, "internet_bytes_out": {"type": "integer"}}}},
            "total_bytes_in": {"type": "integer"}, "total_bytes_out": {"type": "integer"}}},
        "TopHosts": {"type": "array", "items": {"type": "object", "properties": {
            "host": {"type": "string"}, "agency": {"type": "string"}, "unit": {"type": "string"},
            "bytes_up": {"type": "integer"}, "bytes_down": {"type": "integer"}, "flows": {"type": "integer"}}}},
        "TopSites": {"type": "array", "items": {"type": "object", "properties": {
            "site": {"type": "string"}, "bytes": {"type": "integer"}, "flows": {"type": "integer"}, "site_source": {"type": ["string", "null"]}}}},
        "Flows": {"type": "array", "items": {"type": "object", "description": "node_id plus every FlowRecord field (see proto/src/flow.rs)"}},
        "Blocked": {"type": "object", "description": "node_id plus every BlockedAttempt field (see proto/src/blocked.rs)", "properties": {
            "node_id": {"type": "string"}, "first_seen": time, "last_seen": time,
            "client": {"type": "string"}, "agency": {"type": "string"}, "unit": {"type": "string"}, "method": method,
            "target": {"type": "string"}, "server": {"type": ["string", "null"]}, "port": {"type": ["integer", "null"]},
            "proto": {"type": "string"}, "rule": {"type": "string"}, "list": {"type": "string"},
            "attempts": {"type": "integer", "minimum": 1}}},
        "BlockedList": {"type": "array", "items": {"$ref": "#/components/schemas/Blocked"}},
        "BlockedSummary": {"type": "object", "properties": {
            "from": time, "to": time, "attempts": {"type": "integer"}, "records": {"type": "integer"},
            "agencies": {"type": "array", "items": {"type": "object", "properties": {
                "agency": {"type": "string"}, "attempts": {"type": "integer"}, "clients": {"type": "integer"}}}},
            "targets": {"type": "array", "items": {"type": "object", "properties": {
                "target": {"type": "string"}, "attempts": {"type": "integer"}, "clients": {"type": "integer"},
                "method": method, "rule": {"type": "string"}, "list": {"type": "string"}, "last_seen": time}}},
            "clients": {"type": "array", "items": {"type": "object", "properties": {
                "client": {"type": "string"}, "agency": {"type": "string"}, "unit": {"type": "string"},
                "attempts": {"type": "integer"}, "targets": {"type": "integer"}, "last_seen": time}}}}},
    })
}

pub fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for (path, summary, params, schema) in ENDPOINTS {
        let mut parameters: Vec<Value> = params.iter().map(|p| param(p)).collect();
        if path.contains("{code}") {
            parameters.push(json!({"name": "code", "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        paths.insert(
            (*path).to_string(),
            json!({"get": {
                "summary": summary,
                "parameters": parameters,
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}},
                    "400": {"description": "Bad request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                }
            }}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Simpul collector API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "NOC API of the Simpul collector. Live feed: WebSocket /api/v1/live. Agents: WebSocket /api/v1/agent (TLS, binary proto::wire)."},
        "paths": paths,
        "components": {"schemas": schemas()},
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
