//! The OpenAPI 3.1 document of /api/v1, built from one table of endpoints so
//! the document and the router are checked against each other in tests
//! (`collector/tests/blocked_api.rs`, `collector/tests/outage_api.rs`).

use axum::Json;
use serde_json::{json, Value};
use simpul_proto::BlockMethod;

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Query parameters.
    pub params: &'static [&'static str],
    /// JSON request body schema name.
    pub body: Option<&'static str>,
    /// Success status and the response schema name.
    pub status: u16,
    pub schema: &'static str,
}

const fn get(
    path: &'static str,
    summary: &'static str,
    params: &'static [&'static str],
    schema: &'static str,
) -> Endpoint {
    Endpoint {
        method: "get",
        path,
        summary,
        params,
        body: None,
        status: 200,
        schema,
    }
}

pub const ENDPOINTS: &[Endpoint] = &[
    get(
        "/api/v1/nodes",
        "Agent nodes: status, liveness, last seen, version, health",
        &[],
        "NodeList",
    ),
    get(
        "/api/v1/agencies",
        "Agencies, units and allocations",
        &[],
        "AgencyList",
    ),
    get(
        "/api/v1/overview",
        "NOC wall: throughput now vs allocation, nodes, top sites",
        &["window"],
        "Overview",
    ),
    get(
        "/api/v1/agencies/{code}/usage",
        "Usage series of one agency",
        &["from", "to", "step"],
        "Usage",
    ),
    get(
        "/api/v1/top/hosts",
        "Top hosts by bytes",
        &["agency", "from", "to", "limit"],
        "TopHosts",
    ),
    get(
        "/api/v1/top/sites",
        "Top sites by bytes",
        &["agency", "from", "to", "limit"],
        "TopSites",
    ),
    get(
        "/api/v1/flows",
        "Flow search",
        &["from", "to", "agency", "host", "site", "limit"],
        "Flows",
    ),
    get(
        "/api/v1/blocked",
        "Blocked attempts (policy enforcement), newest first",
        &["from", "to", "agency", "node", "method", "limit"],
        "BlockedList",
    ),
    get(
        "/api/v1/blocked/summary",
        "Blocked attempts per agency, top targets and top clients",
        &["from", "to", "agency", "node", "method", "limit"],
        "BlockedSummary",
    ),
    get(
        "/api/v1/incidents",
        "Node outages: unacknowledged open incidents first, then newest",
        &["from", "to", "agency", "node", "open", "limit"],
        "IncidentList",
    ),
    get(
        "/api/v1/incidents/stats",
        "Time to acknowledge and to resolve, per severity",
        &["from", "to", "agency", "node"],
        "IncidentStats",
    ),
    Endpoint {
        method: "post",
        path: "/api/v1/incidents/{id}/ack",
        summary: "Acknowledge an incident (the first acknowledgement counts)",
        params: &[],
        body: Some("AckRequest"),
        status: 200,
        schema: "Incident",
    },
    get(
        "/api/v1/availability",
        "Availability per node; maintenance and unreachable time apart",
        &["from", "to", "agency", "node"],
        "AvailabilityList",
    ),
    get(
        "/api/v1/maintenance",
        "Maintenance windows ending in the last 30 days or later",
        &[],
        "MaintenanceList",
    ),
    Endpoint {
        method: "post",
        path: "/api/v1/maintenance",
        summary: "Add a maintenance window (outages inside it alert nobody)",
        params: &[],
        body: Some("MaintenanceRequest"),
        status: 201,
        schema: "Maintenance",
    },
];

fn param(path: &str, name: &str) -> Value {
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
        "limit" if path == "/api/v1/incidents" => (
            "maximum rows (default 100)",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
        ),
        "limit" => (
            "maximum rows",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        "open" => (
            "true: open (unresolved) incidents only",
            json!({"type": "boolean"}),
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
    let severity = json!({"type": "string", "enum": crate::config::SEVERITIES});
    let ms = json!({"type": "integer", "description": "Unix milliseconds"});
    let ms_or_null = json!({"type": ["integer", "null"], "description": "Unix milliseconds"});
    let secs_or_null = json!({"type": ["number", "null"], "description": "seconds"});
    let code = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Node": {"type": "object", "properties": {
            "node_id": {"type": "string"}, "agency": {"type": "string"}, "hostname": {"type": ["string", "null"]},
            "address": {"type": ["string", "null"]}, "agent_version": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["up", "down", "never", "revoked"]},
            "liveness": {"type": ["string", "null"], "enum": ["up", "down", "unreachable", "flapping", "unknown", null],
                         "description": "the outage detector's view; null when it does not know the node"},
            "last_seen": {"type": ["string", "null"], "format": "date-time"}, "enrolled_at": {"type": ["string", "null"]},
            "revoked": {"type": "boolean"}, "health": {"type": ["object", "null"]},
            "policy": {"$ref": "#/components/schemas/NodePolicy"}}},
        "NodePolicy": {"type": "object", "description": "where the node stands with its agency's policy", "properties": {
            "version": {"type": "integer", "description": "the version in force on the node (its last heartbeat; 0: none)"},
            "state": {"type": "string", "enum": ["applied", "pending", "rejected", "failed", "none"]},
            "pending_version": {"type": ["integer", "null"], "description": "the newest version while it is not in force on the node"},
            "error": {"type": ["string", "null"], "description": "failed: the kernel's error; rejected: signature or replay"},
            "problems": {"type": "array", "items": {"type": "object", "properties": {"place": {"type": "string"}, "message": {"type": "string"}}}},
            "reported_at": {"type": ["string", "null"], "format": "date-time"}}},
        "NodeList": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        "Agency": {"type": "object", "properties": {
            "code": {"type": "string"}, "name": {"type": "string"},
            "alloc_down_bps": {"type": "integer", "description": "the allocation of the policy in force now (0: no policy)"}, "alloc_up_bps": {"type": "integer"},
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
        "Incident": {"type": "object", "description": "One outage (or unreachable/flapping spell) of one node; times are Unix milliseconds",
            "required": ["id", "node_id", "agency", "kind", "severity", "root_cause", "children", "started_ms", "detected_ms",
                         "notified_ms", "acked_ms", "acked_by", "escalation", "resolved_ms", "maintenance"],
            "properties": {
            "id": {"type": "integer"}, "node_id": {"type": "string"}, "agency": {"type": "string"},
            "kind": {"type": "string", "enum": ["down", "group_down", "unreachable", "flapping"]},
            "severity": severity,
            "root_cause": {"type": ["string", "null"], "description": "unreachable: the down ancestor"},
            "children": {"type": "array", "items": {"type": "string"}, "description": "group_down: the nodes unreachable because of this one"},
            "started_ms": ms, "detected_ms": ms, "notified_ms": ms_or_null, "acked_ms": ms_or_null,
            "acked_by": {"type": ["string", "null"]}, "escalation": {"type": "integer", "minimum": 0},
            "resolved_ms": ms_or_null,
            "maintenance": {"type": "boolean", "description": "detected inside a maintenance window (nobody alerted)"}}},
        "IncidentList": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
        "SeverityStats": {"type": "object", "properties": {
            "incidents": {"type": "integer"}, "acknowledged": {"type": "integer"}, "resolved": {"type": "integer"},
            "mean_ack_secs": secs_or_null, "max_ack_secs": secs_or_null,
            "mean_resolve_secs": secs_or_null, "max_resolve_secs": secs_or_null}},
        "IncidentStats": {"type": "object", "description": "by severity; severities without incidents are absent; unreachable spells and incidents in maintenance are not counted",
            "propertyNames": severity,
            "additionalProperties": {"$ref": "#/components/schemas/SeverityStats"}},
        "Availability": {"type": "object", "properties": {
            "node_id": {"type": "string"}, "agency": {"type": "string"}, "from_ms": ms, "to_ms": ms,
            "down_ms": {"type": "integer", "description": "own outages outside maintenance"},
            "unreachable_ms": {"type": "integer", "description": "silent because an ancestor was down"},
            "maintenance_ms": {"type": "integer", "description": "outages inside maintenance windows"},
            "availability_pct": {"type": "number", "description": "100 × (1 − down / (elapsed period − maintenance − unreachable))"},
            "incidents": {"type": "integer"}}},
        "AvailabilityList": {"type": "array", "items": {"$ref": "#/components/schemas/Availability"}},
        "Maintenance": {"type": "object", "properties": {
            "id": {"type": "integer"}, "node_id": {"type": ["string", "null"]}, "agency": {"type": ["string", "null"]},
            "starts_ms": ms, "ends_ms": ms, "reason": {"type": "string"}, "created_by": {"type": "string"}, "created_ms": ms}},
        "MaintenanceList": {"type": "array", "items": {"$ref": "#/components/schemas/Maintenance"}},
        "AckRequest": {"type": "object", "required": ["by"], "additionalProperties": false, "properties": {
            "by": {"type": "string", "minLength": 1, "maxLength": 64, "description": "who takes the incident"}}},
        "MaintenanceRequest": {"type": "object", "required": ["from", "to", "reason", "by"], "additionalProperties": false,
            "description": "node, or agency (all its nodes), or neither (every node)",
            "properties": {
            "node": code, "agency": code,
            "from": {"type": "string", "description": "RFC 3339, or Unix seconds as a string"},
            "to": {"type": "string", "description": "RFC 3339, or Unix seconds as a string; after from"},
            "reason": {"type": "string", "minLength": 1, "maxLength": 200},
            "by": {"type": "string", "minLength": 1, "maxLength": 64}}},
    })
}

pub fn build() -> Value {
    let mut paths = serde_json::Map::new();
    let error = |what: &str| json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    for e in ENDPOINTS {
        let mut parameters: Vec<Value> = e.params.iter().map(|p| param(e.path, p)).collect();
        if e.path.contains("{code}") {
            parameters.push(json!({"name": "code", "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        if e.path.contains("{id}") {
            parameters.push(json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}));
        }
        let mut responses = serde_json::Map::new();
        responses.insert(
            e.status.to_string(),
            json!({"description": if e.status == 201 { "Created" } else { "OK" },
                   "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", e.schema)}}}}),
        );
        responses.insert("400".into(), error("Bad request"));
        if e.path.contains("{id}") {
            responses.insert("404".into(), error("No such incident"));
        }
        let mut op =
            json!({"summary": e.summary, "parameters": parameters, "responses": responses});
        if let Some(body) = e.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        let item = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        item[e.method] = op;
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
