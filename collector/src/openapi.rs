//! The OpenAPI 3.1 document of /api/v1, built from one table of endpoints so
//! the document and the router are checked against each other in tests
//! (`collector/tests/blocked_api.rs`, `collector/tests/outage_api.rs`).

use axum::Json;
use serde_json::{json, Value};
use simpul_proto::BlockMethod;

use crate::auth::Access;

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Who may call it (checked on the server for every request).
    pub access: Access,
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
    access: Access,
    params: &'static [&'static str],
    schema: &'static str,
) -> Endpoint {
    Endpoint {
        method: "get",
        path,
        summary,
        access,
        params,
        body: None,
        status: 200,
        schema,
    }
}

const fn call(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    body: Option<&'static str>,
    status: u16,
    schema: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        access,
        params: &[],
        body,
        status,
        schema,
    }
}

use Access::{Admin, Operate, Public, Read, Wall};

/// Every route of the collector but the dashboard's files: the router is
/// built from this table (`routes.rs`), and a test walks every entry with
/// every role.
pub const ENDPOINTS: &[Endpoint] = &[
    get("/healthz", "Liveness of the collector and its database", Public, &[], "Health"),
    get(
        "/metrics",
        "Prometheus metrics (also on `server.metrics_listen` without login)",
        Operate,
        &[],
        "Metrics",
    ),
    get(
        "/api/v1/agent",
        "Agents' WebSocket (TLS listener only; agents authenticate with their credential)",
        Public,
        &[],
        "WebSocket",
    ),
    call(
        "post",
        "/api/v1/auth/login",
        "Log in: sets the session cookie; the answer holds the CSRF token",
        Public,
        Some("LoginRequest"),
        200,
        "Me",
    ),
    call(
        "post",
        "/api/v1/auth/kiosk",
        "Trade a kiosk token for a read-only wall session",
        Public,
        Some("KioskRequest"),
        200,
        "Me",
    ),
    call(
        "post",
        "/api/v1/auth/logout",
        "End this session",
        Wall,
        None,
        204,
        "Empty",
    ),
    get("/api/v1/auth/me", "Who is logged in, role, CSRF token", Wall, &[], "Me"),
    get(
        "/api/v1/auth/sessions",
        "Open sessions (an admin sees everyone's)",
        Wall,
        &[],
        "SessionList",
    ),
    call(
        "delete",
        "/api/v1/auth/sessions/{id}",
        "End a session (one's own; an admin any)",
        Wall,
        None,
        204,
        "Empty",
    ),
    get("/api/v1/openapi.json", "This document", Wall, &[], "OpenApi"),
    get(
        "/api/v1/live",
        "Live feed (WebSocket, permessage-deflate): a snapshot, then each second a patch of what changed",
        Wall,
        &[],
        "WebSocket",
    ),
    get(
        "/api/v1/nodes",
        "Agent nodes: status, liveness, last seen, version, health",
        Wall,
        &["agency"],
        "NodeList",
    ),
    get(
        "/api/v1/netflow/exporters",
        "NetFlow/IPFIX exporters: protocol, sampling rates in force and over time, templates, sequence gaps per observation domain, last export",
        Wall,
        &["agency"],
        "ExporterList",
    ),
    call(
        "post",
        "/api/v1/nodes/{id}/enrollment-token",
        "Issue a one-time enrollment token for a node of the inventory",
        Admin,
        None,
        201,
        "EnrollmentToken",
    ),
    call(
        "post",
        "/api/v1/nodes/{id}/revoke",
        "Revoke a node's credential; its live session ends at once",
        Admin,
        None,
        200,
        "Node",
    ),
    get(
        "/api/v1/agencies",
        "Agencies, units and allocations",
        Wall,
        &[],
        "AgencyList",
    ),
    get(
        "/api/v1/overview",
        "NOC wall: throughput now vs allocation, nodes, top sites",
        Wall,
        &["window"],
        "Overview",
    ),
    get(
        "/api/v1/agencies/{code}/usage",
        "Usage series of one agency",
        Wall,
        &["from", "to", "step"],
        "Usage",
    ),
    get(
        "/api/v1/agencies/{code}/policy",
        "The agency's policy: its own document, the merged policy it enforces",
        Read,
        &[],
        "AgencyPolicy",
    ),
    call(
        "put",
        "/api/v1/agencies/{code}/policy",
        "Save the agency's document as its next version (422 with every problem, 409 when base_version is not the version in force)",
        Admin,
        Some("PolicySave"),
        200,
        "AgencyPolicy",
    ),
    get(
        "/api/v1/agencies/{code}/policy/versions",
        "The agency's policy versions, newest first",
        Read,
        &["limit"],
        "PolicyVersionList",
    ),
    get(
        "/api/v1/agencies/{code}/policy/versions/{version}",
        "One version: its document and the merged, signed policy; with against=N, what changed from version N",
        Read,
        &["against"],
        "PolicyVersion",
    ),
    call(
        "post",
        "/api/v1/agencies/{code}/policy/preview",
        "Check a document without saving: problems, merged policy, changes, a node's nft/tc plan",
        Admin,
        Some("PolicyPreviewRequest"),
        200,
        "PolicyPreview",
    ),
    call(
        "post",
        "/api/v1/agencies/{code}/policy/rollback",
        "An earlier version's document as the next version",
        Admin,
        Some("PolicyRollback"),
        200,
        "AgencyPolicy",
    ),
    get(
        "/api/v1/policy/default",
        "The province-wide default every agency inherits",
        Read,
        &[],
        "DefaultPolicy",
    ),
    call(
        "put",
        "/api/v1/policy/default",
        "Save the default: every agency following it gets a new version where its policy changes",
        Admin,
        Some("PolicySave"),
        200,
        "DefaultPolicy",
    ),
    get(
        "/api/v1/policy/default/versions",
        "The default's versions, newest first",
        Read,
        &["limit"],
        "DefaultPolicyVersionList",
    ),
    get(
        "/api/v1/policy/default/versions/{version}",
        "One version of the default",
        Read,
        &[],
        "DefaultPolicy",
    ),
    call(
        "post",
        "/api/v1/policy/default/rollback",
        "An earlier default as the next version",
        Admin,
        Some("PolicyRollback"),
        200,
        "DefaultPolicy",
    ),
    get(
        "/api/v1/lists",
        "Named domain lists (categories): the version in force, held versions, the sync source",
        Read,
        &[],
        "ListSummaryList",
    ),
    get(
        "/api/v1/lists/{list}",
        "One list with its versions, newest first",
        Read,
        &["limit"],
        "ListDetail",
    ),
    Endpoint {
        params: &["format", "comment"],
        ..call(
            "put",
            "/api/v1/lists/{list}",
            "Upload a list (plain, hosts or adblock text; gzip accepted): a new version when the content differs; held when empty or shrunk",
            Admin,
            Some("ListText"),
            200,
            "ListUpload",
        )
    },
    get(
        "/api/v1/lists/{list}/content",
        "A version's canonical text (one domain a line, sorted; Content-Encoding: gzip)",
        Read,
        &["version"],
        "ListContent",
    ),
    call(
        "put",
        "/api/v1/lists/{list}/source",
        "Sync the list from a URL on a schedule",
        Admin,
        Some("ListSourceSpec"),
        200,
        "ListSource",
    ),
    call(
        "delete",
        "/api/v1/lists/{list}/source",
        "Stop syncing the list (its versions stay)",
        Admin,
        None,
        204,
        "Empty",
    ),
    call(
        "post",
        "/api/v1/lists/{list}/sync",
        "Sync the list from its source now",
        Admin,
        None,
        200,
        "ListUpload",
    ),
    call(
        "post",
        "/api/v1/lists/{list}/versions/{version}/confirm",
        "Put a held version in force",
        Admin,
        Some("ListDecision"),
        200,
        "ListDecided",
    ),
    call(
        "post",
        "/api/v1/lists/{list}/versions/{version}/discard",
        "Discard a held version",
        Admin,
        Some("ListDecision"),
        200,
        "ListDecided",
    ),
    get(
        "/api/v1/top/hosts",
        "Top hosts by bytes (of one unit with agency and unit); format=csv to export",
        Read,
        &["agency", "unit", "from", "to", "limit", "format"],
        "TopHosts",
    ),
    get(
        "/api/v1/top/sites",
        "Top sites by bytes; format=csv to export",
        Wall,
        &["agency", "from", "to", "limit", "format"],
        "TopSites",
    ),
    get(
        "/api/v1/flows",
        "Flows, newest first or by bytes, one page (the next page's cursor in the x-next-cursor header); the range is clipped to the flows kept; format=csv streams every page",
        Read,
        &[
            "from", "to", "agency", "unit", "host", "peer", "site", "proto", "sort", "cursor",
            "limit", "format",
        ],
        "Flows",
    ),
    get(
        "/api/v1/search",
        "What an address, network, site, agency or unit did over a range (default 24 h, clipped to the flows kept): hosts, peers, sites, units, the newest flows, blocked attempts; format=csv with part exports one list (Content-Disposition names the query and the range)",
        Read,
        &["q", "from", "to", "limit", "format", "part"],
        "SearchResult",
    ),
    get(
        "/api/v1/agencies/{code}/units",
        "Bytes per unit of one agency over a range (default 24 h); format=csv to export",
        Read,
        &["from", "to", "format"],
        "UnitUsageList",
    ),
    get(
        "/api/v1/blocked",
        "Blocked attempts (policy enforcement), newest first; format=csv to export (Content-Disposition names the range)",
        Read,
        &["from", "to", "agency", "node", "method", "limit", "format"],
        "BlockedList",
    ),
    get(
        "/api/v1/blocked/summary",
        "Blocked attempts per agency, top targets and top clients",
        Read,
        &["from", "to", "agency", "node", "method", "limit"],
        "BlockedSummary",
    ),
    get(
        "/api/v1/incidents",
        "Node outages: unacknowledged open incidents first, then newest",
        Wall,
        &["from", "to", "agency", "node", "open", "limit"],
        "IncidentList",
    ),
    get(
        "/api/v1/incidents/stats",
        "Time to acknowledge and to resolve, per severity",
        Wall,
        &["from", "to", "agency", "node"],
        "IncidentStats",
    ),
    call(
        "post",
        "/api/v1/incidents/{id}/ack",
        "Acknowledge an incident under the caller's name (the first counts)",
        Operate,
        None,
        200,
        "Incident",
    ),
    get(
        "/api/v1/availability",
        "Availability per node over a range (default the last 24 h, at most 366 days, ending at most a year ahead; time after now is not counted); maintenance, unreachable and unmonitored (before enrollment) time apart; format=csv to export (Content-Disposition names the range)",
        Wall,
        &["from", "to", "agency", "node", "format"],
        "AvailabilityList",
    ),
    get(
        "/api/v1/maintenance",
        "Maintenance windows ending in the last 30 days or later",
        Wall,
        &[],
        "MaintenanceList",
    ),
    call(
        "post",
        "/api/v1/maintenance",
        "Add a maintenance window (outages inside it alert nobody); a start in the past needs admin",
        Operate,
        Some("MaintenanceRequest"),
        201,
        "Maintenance",
    ),
    call(
        "patch",
        "/api/v1/maintenance/{id}",
        "Change a window that has not ended (a start in the past needs admin)",
        Operate,
        Some("MaintenanceChange"),
        200,
        "Maintenance",
    ),
    call(
        "post",
        "/api/v1/maintenance/{id}/end",
        "End a running window now",
        Operate,
        None,
        200,
        "Maintenance",
    ),
    call(
        "delete",
        "/api/v1/maintenance/{id}",
        "Delete a window that has not started",
        Operate,
        None,
        204,
        "Empty",
    ),
    get(
        "/api/v1/notifications",
        "The notification log: what was sent on which channel, newest first",
        Operate,
        &["limit", "incident"],
        "NotificationList",
    ),
    get(
        "/api/v1/collectors",
        "Which collector answers, who leads outage detection (null: nobody, no alerts are sent) and who holds each lease of the control store (report mailing claims too), expired ones included. Every role: the wall must show a detector nobody leads",
        Wall,
        &[],
        "Collectors",
    ),
    get("/api/v1/users", "Operator accounts", Admin, &[], "UserList"),
    call(
        "post",
        "/api/v1/users",
        "Add an operator account",
        Admin,
        Some("NewUser"),
        201,
        "User",
    ),
    call(
        "patch",
        "/api/v1/users/{name}",
        "Set an account's password or disable it (its sessions end)",
        Admin,
        Some("UserChange"),
        200,
        "User",
    ),
    get("/api/v1/tokens", "API and kiosk tokens", Admin, &[], "TokenList"),
    call(
        "post",
        "/api/v1/tokens",
        "Create an API token (shown once)",
        Admin,
        Some("NewToken"),
        201,
        "CreatedToken",
    ),
    call(
        "delete",
        "/api/v1/tokens/{id}",
        "Revoke an API token",
        Admin,
        None,
        204,
        "Empty",
    ),
    get(
        "/api/v1/reports/monthly",
        "A month's report (default: the last whole month) for an agency, or without agency the province: usage against the allocation, availability, incidents by severity, top sites, blocked attempts by category, policy changes; format=pdf or csv downloads it",
        Read,
        &["month", "agency", "format", "lang"],
        "MonthlyReport",
    ),
    get(
        "/api/v1/audit",
        "The audit log (hash chain), newest first; format=csv to export",
        Admin,
        &["from", "to", "actor", "action", "limit", "format"],
        "AuditList",
    ),
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
        "limit" if path == "/api/v1/audit" => (
            "maximum rows (default 500)",
            json!({"type": "integer", "minimum": 1, "maximum": 100000}),
        ),
        "limit" if path == "/api/v1/incidents" || path == "/api/v1/notifications" => (
            "maximum rows (default 100)",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
        ),
        "limit" if path == "/api/v1/search" => (
            "rows of each list: the summary's top hosts, peers, sites and units (default 20) and the blocked attempts (default 100); with format=csv default 1000",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        "limit" if path == "/api/v1/blocked" => (
            "maximum rows (default 100; with format=csv default 1000)",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        "part" => (
            "with format=csv: the list to export (columns as in the JSON)",
            json!({"type": "string", "enum": ["units", "hosts", "peers", "sites", "blocked"]}),
        ),
        "limit" if path == "/api/v1/flows" => (
            "rows per page (default 100, at most 1000); with format=csv the rows exported (default and at most 100000; 5000 with sort=bytes)",
            json!({"type": "integer", "minimum": 1, "maximum": 100000}),
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
        "host" => (
            "IP address or network (CIDR) on either side",
            json!({"type": "string"}),
        ),
        "peer" => (
            "IP address or network (CIDR) of the remote side (not the agency's host)",
            json!({"type": "string"}),
        ),
        "unit" => (
            "unit code (with agency)",
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
        ),
        "proto" => ("tcp, udp, icmp, … or a protocol number", json!({"type": "string"})),
        "sort" => (
            "time (newest first, default) or bytes (most first); flows that tie go by node, boot and flow id, descending, on every store",
            json!({"type": "string", "enum": ["time", "bytes"]}),
        ),
        "cursor" => (
            "the x-next-cursor header of the previous page (opaque)",
            json!({"type": "string"}),
        ),
        "q" => (
            "an IP address, a network (10.1.0.0/16), a site (matches subdomains), an agency or unit code or name, or agency/unit",
            json!({"type": "string", "maxLength": 253}),
        ),
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
        "incident" => ("incident id", json!({"type": "integer"})),
        "actor" => ("who (exact)", json!({"type": "string"})),
        "action" => (
            "action prefix, e.g. auth. or maintenance.",
            json!({"type": "string"}),
        ),
        "format" if path.starts_with("/api/v1/lists") => (
            "how the list is written (default auto: decided per line)",
            json!({"type": "string", "enum": ["plain", "hosts", "adblock", "auto"]}),
        ),
        "comment" => (
            "why (the letter's number, the request); 3-500 characters",
            json!({"type": "string", "minLength": 3, "maxLength": 500}),
        ),
        "against" => (
            "another version: `changes` lists what changed from it to this one, leaf by leaf",
            json!({"type": "integer"}),
        ),
        "version" => (
            "a version number (default: the one in force)",
            json!({"type": "integer"}),
        ),
        "month" => (
            "YYYY-MM in the NOC's time zone (default: the last whole month); not in the future, at most 24 months back",
            json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
        ),
        "lang" => (
            "language of the PDF: id (default) or en",
            json!({"type": "string", "enum": ["id", "en"]}),
        ),
        "format" if path == "/api/v1/reports/monthly" => (
            "json (default), csv or pdf (Content-Disposition names the file, e.g. simpul-laporan-2026-11-dinkes.pdf)",
            json!({"type": "string", "enum": ["json", "csv", "pdf"]}),
        ),
        "format" => (
            "json (default) or csv",
            json!({"type": "string", "enum": ["json", "csv"]}),
        ),

        _ => ("", json!({"type": "string"})),
    };
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema})
}

fn schemas() -> Value {
    let rate = json!({"type": "number", "description": "bits per second"});
    let time = json!({"type": "string", "format": "date-time"});
    let peak = json!({"type": ["integer", "null"], "description": "the highest one-second rate, bits per second (null: stored before peaks were kept)"});
    let p95 = json!({"type": ["integer", "null"], "description": "95th percentile of the one-second rates (idle seconds are zeros), bits per second, within 1 %"});
    let method = json!({"type": "string", "enum": BlockMethod::ALL.iter().map(|m| m.name()).collect::<Vec<_>>()});
    let severity = json!({"type": "string", "enum": crate::config::SEVERITIES});
    let ms = json!({"type": "integer", "description": "Unix milliseconds"});
    let ms_or_null = json!({"type": ["integer", "null"], "description": "Unix milliseconds"});
    let secs_or_null = json!({"type": ["number", "null"], "description": "seconds"});
    let code = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"});
    let mut base = json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Node": {"type": "object", "properties": {
            "node_id": {"type": "string"}, "agency": {"type": "string"}, "hostname": {"type": ["string", "null"]},
            "address": {"type": ["string", "null"]}, "agent_version": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["up", "down", "never", "revoked"]},
            "liveness": {"type": ["string", "null"], "enum": ["up", "down", "unreachable", "flapping", "unknown", null],
                         "description": "the outage detector's view; null when it does not know the node"},
            "last_seen": {"type": ["string", "null"], "format": "date-time"}, "enrolled_at": {"type": ["string", "null"]},
            "revoked": {"type": "boolean"}, "health": {"type": ["object", "null"]},
            "dropped_records": {"type": "integer", "description": "records the node's spool dropped (its quota) and reported: lost for good"},
            "refused_records": {"type": "integer", "description": "records refused one by one since the collector started (outside the time bounds or beyond the node's uplink)"},
            "policy": {"$ref": "#/components/schemas/NodePolicy"}}},
        "NodePolicy": {"type": "object", "description": "where the node stands with its agency's policy", "properties": {
            "version": {"type": "integer", "description": "the version in force on the node (its last heartbeat; 0: none)"},
            "state": {"type": "string", "enum": ["applied", "pending", "rejected", "failed", "none"]},
            "pending_version": {"type": ["integer", "null"], "description": "the newest version while it is not in force on the node"},
            "error": {"type": ["string", "null"], "description": "failed: the kernel's error; rejected: signature or replay"},
            "problems": {"type": "array", "items": {"type": "object", "properties": {"place": {"type": "string"}, "message": {"type": "string"}}}},
            "reported_at": {"type": ["string", "null"], "format": "date-time"},
            "applied_at": {"type": ["string", "null"], "format": "date-time", "description": "when the node said it applied the version in force"}}},
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
                "internet_bytes_in": {"type": "integer"}, "internet_bytes_out": {"type": "integer"},
                "peak_in_bps": peak, "peak_out_bps": peak, "p95_in_bps": p95, "p95_out_bps": p95}}},
            "total_bytes_in": {"type": "integer"}, "total_bytes_out": {"type": "integer"},
            "peak_in_bps": peak, "peak_out_bps": peak, "p95_in_bps": p95, "p95_out_bps": p95,
            "steps_without_peaks": {"type": "integer", "description": "steps with traffic stored before peaks were kept: left out of the range's peak and p95"},
            "hours_above_95": {"type": ["object", "null"], "description": "hours the one-second rate stood above 95 % of the allocation in force (null: no allocation in the range)",
                "properties": {"download": {"type": "number"}, "upload": {"type": "number"}}},
            "allocation": {"type": "array", "description": "the allocation in force over the range (versions and schedule windows): a run from each change on",
                "items": {"type": "object", "properties": {"from": time,
                    "download": {"type": "object", "properties": {"rate_bps": rate, "ceil_bps": rate}},
                    "upload": {"type": "object", "properties": {"rate_bps": rate, "ceil_bps": rate}}}}}}},
        "TopHosts": {"type": "array", "items": {"type": "object", "properties": {
            "host": {"type": "string"}, "agency": {"type": "string"}, "unit": {"type": "string"},
            "bytes_up": {"type": "integer"}, "bytes_down": {"type": "integer"}, "flows": {"type": "integer"}}}},
        "TopSites": {"type": "array", "items": {"type": "object", "properties": {
            "site": {"type": "string"}, "bytes": {"type": "integer"}, "flows": {"type": "integer"}, "site_source": {"type": ["string", "null"]}}}},
        "Flows": {"type": "array", "items": {"type": "object", "description": "node_id plus every FlowRecord field (see proto/src/flow.rs), plus where it came from", "properties": {
            "origin": {"type": "string", "enum": ["agent", "netflow-v5", "netflow-v9", "ipfix", "netflow"], "description": "netflow: an exporter not heard since the collector started"},
            "sampling_interval": {"type": ["integer", "null"], "minimum": 1, "description": "exported flows: one packet in N was counted and the counts were multiplied by N (1: unsampled); null for agents or when not known (before this collector run heard the exporter, or two rates overlap)"}}}},
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
            "unmonitored_ms": {"type": "integer", "description": "before the node was enrolled: neither up nor down"},
            "availability_pct": {"type": ["number", "null"], "description": "100 × (1 − down / (elapsed period − unmonitored − maintenance − unreachable)); null when the node was enrolled after the period"},
            "incidents": {"type": "integer"},
            "never_seen": {"type": "boolean", "description": "enrolled but never connected: down all the time since enrollment"}}},
        "AvailabilityList": {"type": "array", "items": {"$ref": "#/components/schemas/Availability"}},
        "Maintenance": {"type": "object", "properties": {
            "id": {"type": "integer"}, "node_id": {"type": ["string", "null"]}, "agency": {"type": ["string", "null"]},
            "starts_ms": ms, "ends_ms": ms, "reason": {"type": "string"}, "created_by": {"type": "string"}, "created_ms": ms}},
        "MaintenanceList": {"type": "array", "items": {"$ref": "#/components/schemas/Maintenance"}},
        "MaintenanceRequest": {"type": "object", "required": ["from", "to", "reason"], "additionalProperties": false,
            "description": "node, or agency (all its nodes), or neither (every node); the creator is the caller",
            "properties": {
            "node": code, "agency": code,
            "from": {"type": "string", "description": "RFC 3339, or Unix seconds; in the past only for admin"},
            "to": {"type": "string", "description": "RFC 3339, or Unix seconds; after from, at most a year ahead"},
            "reason": {"type": "string", "minLength": 1, "maxLength": 200}}},
        "MaintenanceChange": {"type": "object", "additionalProperties": false, "properties": {
            "from": {"type": "string"}, "to": {"type": "string"}, "reason": {"type": "string", "minLength": 1, "maxLength": 200}}},
    });
    if let (Some(all), Value::Object(more)) = (base.as_object_mut(), access_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (base.as_object_mut(), policy_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (base.as_object_mut(), search_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (base.as_object_mut(), netflow_schemas()) {
        all.extend(more);
    }
    base
}

/// NetFlow/IPFIX exporters (`netflow::status`).
fn netflow_schemas() -> Value {
    json!({
        "ExporterList": {"type": "array", "items": {"$ref": "#/components/schemas/Exporter"}},
        "Exporter": {"type": "object", "properties": {
            "node_id": {"type": "string"}, "address": {"type": "string"}, "agency": {"type": ["string", "null"], "description": "null: its flows are attributed one by one by the inventory's subnets"},
            "monitored": {"type": "boolean"}, "protocol": {"type": "string", "enum": ["netflow-v5", "netflow-v9", "ipfix", "netflow"]},
            "sampling_intervals": {"type": "array", "items": {"type": "integer"}, "description": "rates in force now over its domains"},
            "templates": {"type": "integer"}, "lost": {"type": "integer", "description": "lost per the sequence numbers (flows for v5 and IPFIX, datagrams for v9)"},
            "datagrams": {"type": "integer"}, "records": {"type": "integer"}, "decode_errors": {"type": "integer"},
            "last_export_ms": {"type": ["integer", "null"]}, "last_heard_ms": {"type": ["integer", "null"]},
            "domains": {"type": "array", "items": {"type": "object", "properties": {
                "protocol": {"type": "string"}, "domain": {"type": "integer"}, "sampling_interval": {"type": "integer"},
                "sampling_algorithm": {"type": "integer"}, "templates": {"type": "integer"}, "options_templates": {"type": "integer"},
                "lost": {"type": "integer"}, "datagrams": {"type": "integer"}, "records": {"type": "integer"}, "last_export_ms": {"type": "integer"}}}},
            "spells": {"type": "array", "items": {"type": "object", "description": "a sampling rate over a span of flow end times (Unix ms)", "properties": {
                "interval": {"type": "integer"}, "from_ms": {"type": "integer"}, "to_ms": {"type": "integer"}}}}}}
    })
}

/// Investigation: search and the drill-down's units.
fn search_schemas() -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        "SearchResult": {"type": "object", "properties": {
            "q": {"type": "string"},
            "kind": {"type": "string", "enum": ["address", "network", "site", "unit", "agency", "names", "none"],
                     "description": "names: several or no agencies and units matched (see matches); none: no query"},
            "from": time, "to": time,
            "matches": {"type": "array", "items": {"type": "object", "properties": {
                "agency": {"type": "string"}, "agency_name": {"type": "string"},
                "unit": {"type": ["string", "null"]}, "unit_name": {"type": ["string", "null"]}}}},
            "flows_filter": {"type": "object", "description": "the /api/v1/flows parameters that page through these flows"},
            "summary": {"type": ["object", "null"], "properties": {
                "flows": {"type": "integer"}, "bytes_up": {"type": "integer", "description": "sent by the agency side"},
                "bytes_down": {"type": "integer"}, "scanned": {"type": "integer"},
                "complete": {"type": "boolean", "description": "false: the scan stopped at 500 000 flows; the figures cover the newest"},
                "hosts": {"type": "array", "items": {"type": "object", "properties": {
                    "host": {"type": "string"}, "agency": {"type": "string"}, "unit": {"type": "string"},
                    "bytes_up": {"type": "integer"}, "bytes_down": {"type": "integer"}, "flows": {"type": "integer"}}}},
                "peers": {"type": "array", "items": {"type": "object", "properties": {
                    "peer": {"type": "string"}, "site": {"type": ["string", "null"]},
                    "bytes_up": {"type": "integer"}, "bytes_down": {"type": "integer"}, "flows": {"type": "integer"}}}},
                "sites": {"type": "array", "items": {"type": "object", "properties": {
                    "site": {"type": "string"}, "bytes": {"type": "integer"}, "flows": {"type": "integer"}}}},
                "units": {"type": "array", "items": {"type": "object", "properties": {
                    "agency": {"type": "string"}, "unit": {"type": "string"}, "bytes": {"type": "integer"}, "flows": {"type": "integer"}}}}}},
            "flows": {"$ref": "#/components/schemas/Flows"},
            "next_cursor": {"type": ["string", "null"]},
            "blocked": {"$ref": "#/components/schemas/BlockedList"}}},
        "UnitUsageList": {"type": "array", "items": {"type": "object", "properties": {
            "unit": {"type": "string"}, "name": {"type": "string"},
            "bytes_in": {"type": "integer"}, "bytes_out": {"type": "integer"},
            "internet_bytes_in": {"type": "integer"}, "internet_bytes_out": {"type": "integer"}}}},
    })
}

/// Operators, sessions, tokens, audit, and the routes that are not JSON.
fn access_schemas() -> Value {
    let ms = json!({"type": "integer", "description": "Unix milliseconds"});
    let ms_or_null = json!({"type": ["integer", "null"], "description": "Unix milliseconds"});
    let code = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"});
    json!({
        "Health": {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]}, "db": {"type": "string"},
            "control": {"type": "string", "enum": ["sqlite", "postgres"], "description": "the control store ([storage.control] backend)"},
            "outage_leader": {"type": "boolean", "description": "this collector's outage detector leads (opens incidents, sends alerts); always true for one collector on SQLite"}}},
        "Metrics": {"type": "string", "description": "Prometheus text format"},
        "WebSocket": {"type": "string", "description": "a WebSocket upgrade"},
        "OpenApi": {"type": "object"},
        "Empty": {"type": "object"},
        "LoginRequest": {"type": "object", "required": ["username", "password"], "additionalProperties": false, "properties": {
            "username": {"type": "string"}, "password": {"type": "string"}}},
        "KioskRequest": {"type": "object", "required": ["token"], "additionalProperties": false, "properties": {"token": {"type": "string"}}},
        "Me": {"type": "object", "properties": {
            "username": {"type": "string"}, "display_name": {"type": "string"},
            "role": {"type": "string", "enum": ["admin", "operator", "agency", "viewer"]},
            "agency": {"type": ["string", "null"], "description": "role agency: the one agency the account sees"},
            "csrf_token": {"type": ["string", "null"], "description": "repeat as X-CSRF-Token on POST, PATCH, DELETE"},
            "kiosk": {"type": "boolean"}, "session_id": {"type": ["string", "null"]},
            "zone": {"type": "object", "description": "the NOC's time zone (notify.utc_offset): the dashboard shows every time in it",
                "properties": {"offset_secs": {"type": "integer", "description": "seconds east of UTC"},
                    "label": {"type": "string", "description": "WIB, WITA or WIT for +07:00, +08:00, +09:00; else UTC+hh:mm"}}}}},
        "Session": {"type": "object", "properties": {
            "id": {"type": "string"}, "username": {"type": "string"}, "address": {"type": "string"}, "user_agent": {"type": "string"},
            "created_ms": ms, "last_seen_ms": ms, "expires_ms": ms, "idle_ms": {"type": ["integer", "null"]},
            "revoked_ms": ms_or_null, "token_id": {"type": ["string", "null"], "description": "a kiosk session: its token"}}},
        "SessionList": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}},
        "User": {"type": "object", "properties": {
            "username": {"type": "string"}, "display_name": {"type": "string"},
            "role": {"type": "string", "enum": ["admin", "operator", "agency", "viewer"]}, "agency": {"type": ["string", "null"]},
            "disabled": {"type": "boolean"}, "created_ms": ms, "password_changed_ms": ms}},
        "UserList": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
        "NewUser": {"type": "object", "required": ["username", "role", "password"], "additionalProperties": false, "properties": {
            "username": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}, "display_name": {"type": "string", "maxLength": 80},
            "role": {"type": "string", "enum": ["admin", "operator", "agency", "viewer"]}, "agency": code,
            "password": {"type": "string", "minLength": 10, "maxLength": 256}}},
        "UserChange": {"type": "object", "additionalProperties": false, "properties": {
            "password": {"type": "string", "minLength": 10, "maxLength": 256}, "disabled": {"type": "boolean"}}},
        "Token": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"},
            "role": {"type": "string", "enum": ["admin", "operator", "agency", "viewer"]}, "agency": {"type": ["string", "null"]},
            "kiosk": {"type": "boolean"}, "created_ms": ms, "created_by": {"type": "string"},
            "expires_ms": ms_or_null, "revoked_ms": ms_or_null, "last_used_ms": ms_or_null}},
        "TokenList": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}},
        "NewToken": {"type": "object", "required": ["name", "role"], "additionalProperties": false, "properties": {
            "name": {"type": "string", "maxLength": 80}, "role": {"type": "string", "enum": ["admin", "operator", "agency", "viewer"]},
            "agency": code, "expires_days": {"type": "integer", "minimum": 1, "maximum": 3660},
            "kiosk": {"type": "boolean", "description": "a wall token (role viewer): POST /api/v1/auth/kiosk trades it for a session"}}},
        "CreatedToken": {"allOf": [{"$ref": "#/components/schemas/Token"},
            {"type": "object", "properties": {"token": {"type": "string", "description": "shown once; only its hash is kept"}}}]},
        "EnrollmentToken": {"type": "object", "properties": {
            "node_id": {"type": "string"}, "agency": {"type": "string"}, "token": {"type": "string"}, "expires_ms": ms}},
        "Notification": {"type": "object", "description": "one message on one channel for one incident state"},
        "NotificationList": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}},
        "Collectors": collectors_schema(),
        "AuditEntry": {"type": "object", "properties": {
            "seq": {"type": "integer"}, "at_ms": ms, "actor": {"type": "string"}, "address": {"type": "string"},
            "action": {"type": "string"}, "target": {"type": "string"}, "detail": {"type": "string", "description": "JSON"},
            "outcome": {"type": "string", "enum": ["ok", "denied", "failed"]},
            "prev_hash": {"type": "string"}, "hash": {"type": "string", "description": "SHA-256 over prev_hash and every field"}}},
        "AuditList": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
        "MonthlyReport": report_schema(),
    })
}

/// `GET /api/v1/collectors` (collectors_api.rs).
fn collectors_schema() -> Value {
    let ms = json!({"type": "integer", "description": "Unix milliseconds"});
    json!({"type": "object", "properties": {
            "this_collector": {"type": "string", "description": "the collector answering: [storage.control] collector_id, else HOSTNAME:PID"},
            "control": {"type": "string", "enum": ["sqlite", "postgres"]},
            "outage_leader": {"type": ["object", "null"], "description": "null: no collector holds the outage detector's lease, so nobody opens incidents or sends alerts",
                "properties": {"collector_id": {"type": "string"}, "instance": {"type": ["string", "null"]}, "this_collector": {"type": "boolean"},
                    "until_ms": {"type": ["integer", "null"], "description": "the lease's expiry, renewed every third of it; null: one collector on SQLite, which leads without a lease"}}},
            "leases": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "purpose": {"type": "string", "enum": ["outage-detection", "report-mailing", "other"]},
                "month": {"type": ["string", "null"], "description": "YYYY-MM of a report mailing claim"},
                "holder": {"type": "string", "description": "collector_id#instance (the instance tag tells two processes with one collector_id apart)"},
                "collector_id": {"type": "string"}, "instance": {"type": ["string", "null"]}, "this_collector": {"type": "boolean"},
                "live": {"type": "boolean", "description": "false: expired, nobody holds it"}, "expires_ms": ms}}}}})
}

/// `GET /api/v1/reports/monthly` (reports/mod.rs `Report`).
fn report_schema() -> Value {
    let int = json!({"type": "integer"});
    let num = json!({"type": "number"});
    let num_or_null = json!({"type": ["number", "null"]});
    let s = json!({"type": "string"});
    json!({"type": "object", "properties": {
        "month": {"type": "string", "description": "YYYY-MM"},
        "agency": {"type": ["string", "null"], "description": "null: the province"},
        "name": s, "utc_offset": {"type": "string", "description": "the NOC's local time the month is cut in"},
        "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
        "complete": {"type": "boolean", "description": "false while the month runs"},
        "generated_at": {"type": "string", "format": "date-time"},
        "usage": {"type": "object", "properties": {
            "bytes_in": int, "bytes_out": int, "internet_bytes_in": int, "internet_bytes_out": int,
            "alloc_down_bps": int, "alloc_up_bps": int,
            "peak_in_bps": num, "peak_out_bps": num, "p95_in_bps": num, "p95_out_bps": num,
            "rate_step_secs": {"type": "integer", "description": "60: per-minute rates; 3600: only hourly sums were left"},
            "peak_1s_in_bps": {"type": ["integer", "null"], "description": "an agency's highest one-second rate (all traffic); null for the province or before peaks were kept"},
            "peak_1s_out_bps": {"type": ["integer", "null"]},
            "p95_1s_in_bps": {"type": ["integer", "null"], "description": "95th percentile of the month's seconds (idle ones count as 0)"},
            "p95_1s_out_bps": {"type": ["integer", "null"]},
            "hours_above_95_in": int, "hours_above_95_out": int, "hours_with_allocation": int}},
        "daily": {"type": "array", "items": {"type": "object", "properties": {
            "date": s, "bytes_in": int, "bytes_out": int, "peak_in_bps": num, "alloc_down_bps": int}}},
        "availability": {"type": "object", "properties": {
            "overall_pct": num_or_null,
            "nodes": {"$ref": "#/components/schemas/AvailabilityList"}}},
        "incidents": {"type": "object", "properties": {
            "by_severity": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/SeverityStats"},
                {"type": "object", "properties": {"severity": s}}]}},
            "in_maintenance": int, "unreachable": int, "total": int,
            "list": {"$ref": "#/components/schemas/IncidentList"}}},
        "top_sites": {"$ref": "#/components/schemas/TopSites"},
        "blocked": {"type": "object", "properties": {"attempts": int, "categories": {"type": "array", "items": {"type": "object", "properties": {
            "category": {"type": "string", "description": "the rule's list: a named list (judi, …), domains, cidrs, ports, dot, doh, quic"},
            "attempts": int, "clients": int, "targets": int}}}}},
        "policy_changes": {"type": "array", "items": {"type": "object", "properties": {
            "scope": {"type": "string", "description": "the agency, or default"}, "version": int, "at": s, "at_ms": int,
            "by": s, "comment": s, "changes": {"type": "array", "items": s}}}},
        "agencies": {"type": "array", "description": "province only", "items": {"type": "object", "properties": {
            "code": s, "name": s, "bytes_in": int, "bytes_out": int, "alloc_down_bps": int,
            "availability_pct": num_or_null, "incidents": int}}}}})
}

/// The `{name}` parameters of a path.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

pub fn build() -> Value {
    let mut paths = serde_json::Map::new();
    let error = |what: &str| json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    for e in ENDPOINTS {
        let mut parameters: Vec<Value> = e.params.iter().map(|p| param(e.path, p)).collect();
        for name in path_params(e.path) {
            let schema = if name == "version"
                || name == "id"
                    && !e.path.contains("/sessions/")
                    && !e.path.contains("/tokens/")
                    && !e.path.contains("/nodes/")
            {
                json!({"type": "integer"})
            } else {
                json!({"type": "string"})
            };
            parameters
                .push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
        let mut responses = serde_json::Map::new();
        let ok = match e.status {
            201 => "Created",
            204 => "No content",
            _ => "OK",
        };
        if e.status == 204 {
            responses.insert("204".into(), json!({"description": ok}));
        } else {
            responses.insert(
                e.status.to_string(),
                json!({"description": ok,
                       "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", e.schema)}}}}),
            );
        }
        responses.insert(
            "400".into(),
            error("Bad request (what was wrong, and where)"),
        );
        if e.access != Access::Public {
            responses.insert(
                "401".into(),
                error("Not logged in, or the session or token ended"),
            );
            responses.insert("403".into(), error("The role may not use this route, or another agency's data was asked for, or the CSRF token is missing"));
        }
        if !path_params(e.path).is_empty() {
            responses.insert("404".into(), error("No such object"));
        }
        let lists = e.path.starts_with("/api/v1/lists");
        if (e.method == "put" && !lists) || e.path.ends_with("/rollback") {
            responses.insert(
                "409".into(),
                error("base_version is not the version in force: another save came first"),
            );
        }
        if lists && e.method != "get" {
            responses.insert(
                "413".into(),
                error("The list is larger than [policy.lists] allows"),
            );
            responses.insert(
                "422".into(),
                error("The list cannot be read (gzip, too many domains)"),
            );
            responses.insert("502".into(), error("The source could not be downloaded"));
        } else if e.method == "put" || e.path.ends_with("/rollback") || e.path.ends_with("/preview")
        {
            responses.insert("422".into(), json!({"description": "The policy is refused: every problem with its place",
                "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "error": {"type": "string"}, "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}}}}}}));
        }
        if e.path == "/api/v1/auth/login" {
            responses.insert("401".into(), error("Wrong username or password"));
            responses.insert(
                "429".into(),
                error("Too many failed logins; Retry-After says when to try again"),
            );
        }
        let mut op = json!({"summary": e.summary, "parameters": parameters, "responses": responses,
                            "x-access": e.access.name(), "x-roles": e.access.roles()});
        op["security"] = if e.access == Access::Public {
            json!([])
        } else if e.method == "get" {
            json!([{"session": []}, {"bearer": []}])
        } else {
            json!([{"session": [], "csrf": []}, {"bearer": []}])
        };
        if e.body == Some("ListText") {
            op["requestBody"] = json!({"required": true, "content": {
                "text/plain": {"schema": {"type": "string", "description": "one domain a line (plain), hosts lines or adblock rules; # and ! comments"}},
                "application/gzip": {"schema": {"type": "string", "format": "binary"}}}});
        } else if let Some(body) = e.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        if e.params.contains(&"format") && !lists && e.schema != "MonthlyReport" {
            op["responses"]["200"]["content"]["text/csv"] = json!({"schema": {"type": "string",
                "description": "format=csv: UTF-8 with a byte-order mark, RFC 4180, the JSON's fields as columns; text that a spreadsheet would run as a formula starts with an apostrophe"}});
        }
        if e.schema == "MonthlyReport" {
            op["responses"]["200"]["content"]["application/pdf"] =
                json!({"schema": {"type": "string", "format": "binary"}});
            op["responses"]["200"]["content"]["text/csv"] = json!({"schema": {"type": "string"}});
            op["responses"]["404"] = error("Unknown agency");
        }
        if e.schema == "ListContent" {
            op["responses"]["200"] = json!({"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}});
        }
        let item = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        item[e.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Simpul collector API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "NOC API of the Simpul collector. Every route but /healthz, the login endpoints and the agents' WebSocket needs a session cookie (from POST /api/v1/auth/login; state-changing requests repeat the CSRF token in X-CSRF-Token) or an API token (Authorization: Bearer). x-roles lists the roles a route admits; an agency officer's answers hold its agency only. Live feed: WebSocket /api/v1/live. Agents: WebSocket /api/v1/agent (TLS, binary proto::wire)."},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE,
                            "description": "set by POST /api/v1/auth/login (HttpOnly, SameSite=Strict, Secure under HTTPS)"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "the csrf_token of the login answer (or /api/v1/auth/me); required on POST, PATCH and DELETE with a session cookie"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API token from `simpul-collector api-token create` or POST /api/v1/tokens"}
            }
        },
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}

/// The policy API's shapes.
fn policy_schemas() -> Value {
    let ms = json!({"type": "integer", "description": "Unix milliseconds"});
    let code = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"});
    json!({
        "AgencyPolicy": {"type": "object", "properties": {
            "agency": code, "version": {"type": "integer", "description": "the version in force (0: none saved; base_version of the next save)"},
            "policy": {"type": "object", "description": "the agency's own document: what it overrides of the default (proto::policy::Policy fields)"},
            "effective": {"type": ["object", "null"], "description": "the merged policy it enforces (null when the default alone is no policy)"},
            "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
            "follows_default": {"type": "boolean", "description": "false for a version that came whole (a policy file)"},
            "default_version": {"type": "integer"}, "created_ms": {"type": ["integer", "null"]},
            "created_by": {"type": ["string", "null"]}, "comment": {"type": ["string", "null"]},
            "changed": {"type": "boolean", "description": "after a save: false when the content equals the version in force (no new version)"}}},
        "Problem": {"type": "object", "properties": {"place": {"type": "string"}, "message": {"type": "string"}}},
        "PolicySave": {"type": "object", "required": ["base_version", "policy", "comment"], "additionalProperties": false, "properties": {
            "base_version": {"type": "integer", "description": "the version this edit started from"},
            "policy": {"type": "object", "description": "the whole document: fields left out follow the default (RFC 7396 merge; null removes the default's value); version is set by the collector"},
            "comment": {"type": "string", "minLength": 3, "maxLength": 500, "description": "why: the letter's number, the request"}}},
        "PolicyRollback": {"type": "object", "required": ["version", "base_version", "comment"], "additionalProperties": false, "properties": {
            "version": {"type": "integer", "description": "the earlier version to restore"},
            "base_version": {"type": "integer"}, "comment": {"type": "string", "minLength": 3, "maxLength": 500}}},
        "PolicyPreviewRequest": {"type": "object", "required": ["policy"], "additionalProperties": false, "properties": {
            "policy": {"type": "object"}, "node": code}},
        "PolicyPreview": {"type": "object", "properties": {
            "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
            "effective": {"type": ["object", "null"]},
            "changes": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "before": {}, "after": {}}}},
            "plan": {"type": ["object", "null"], "description": "for `node`: schedule, classes, nft and tc text (lan/wan stand for its interfaces)"}}},
        "PolicyVersionRow": {"type": "object", "properties": {
            "version": {"type": "integer"}, "created_ms": ms, "created_by": {"type": "string"}, "comment": {"type": "string"},
            "follows_default": {"type": "boolean"}, "default_version": {"type": "integer"}, "key_id": {"type": "string"}}},
        "PolicyVersionList": {"type": "array", "items": {"$ref": "#/components/schemas/PolicyVersionRow"}},
        "PolicyVersion": {"type": "object", "properties": {
            "version": {"type": "integer"}, "created_ms": ms, "created_by": {"type": "string"}, "comment": {"type": "string"},
            "follows_default": {"type": "boolean"}, "default_version": {"type": "integer"}, "key_id": {"type": "string"},
            "policy": {"type": "object"}, "effective": {"type": "object", "description": "as signed and sent to the nodes"},
            "against": {"type": "integer"},
            "changes": {"type": "array", "description": "with ?against=N: from version N's effective policy to this one's", "items": {"type": "object", "properties": {"path": {"type": "string"}, "before": {}, "after": {}}}}}},
        "DefaultPolicy": {"type": "object", "properties": {
            "version": {"type": "integer", "description": "0: none saved"}, "policy": {"type": "object"},
            "created_ms": {"type": ["integer", "null"]}, "created_by": {"type": ["string", "null"]}, "comment": {"type": ["string", "null"]},
            "agencies": {"type": "array", "description": "after a save: the agencies' new versions", "items": {"type": "object", "properties": {"agency": code, "version": {"type": "integer"}}}}}},
        "ListVersion": {"type": "object", "properties": {
            "name": code, "version": {"type": "integer"}, "sha256": {"type": "string", "description": "SHA-256 of the canonical text: what policies and agents name it by"},
            "domains": {"type": "integer"}, "stored_bytes": {"type": "integer", "description": "gzip size agents fetch"},
            "lines": {"type": "integer"}, "invalid": {"type": "integer"},
            "state": {"type": "string", "enum": ["current", "held", "superseded", "discarded"]},
            "hold_reason": {"type": ["string", "null"]}, "origin": {"type": "string", "enum": ["upload", "sync"]},
            "created_ms": ms, "created_by": {"type": "string"}, "comment": {"type": "string"},
            "decided_ms": {"type": ["integer", "null"]}, "decided_by": {"type": ["string", "null"]}}},
        "ListSource": {"type": "object", "properties": {
            "name": code, "url": {"type": "string"}, "format": {"type": "string"}, "interval_secs": {"type": "integer"},
            "max_shrink_percent": {"type": "number"}, "last_attempt_ms": {"type": ["integer", "null"]},
            "last_ok_ms": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
            "updated_ms": ms, "updated_by": {"type": "string"}}},
        "ListSourceSpec": {"type": "object", "required": ["url"], "additionalProperties": false, "properties": {
            "url": {"type": "string", "description": "http:// or https://"},
            "format": {"type": "string", "enum": ["plain", "hosts", "adblock", "auto"], "default": "auto"},
            "interval_secs": {"type": "integer", "minimum": 60, "maximum": 2_592_000, "default": 86400},
            "max_shrink_percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 20}}},
        "ListSummary": {"type": "object", "properties": {
            "name": code, "current": {"oneOf": [{"$ref": "#/components/schemas/ListVersion"}, {"type": "null"}]},
            "held": {"type": "array", "items": {"$ref": "#/components/schemas/ListVersion"}},
            "source": {"oneOf": [{"$ref": "#/components/schemas/ListSource"}, {"type": "null"}]}}},
        "ListSummaryList": {"type": "array", "items": {"$ref": "#/components/schemas/ListSummary"}},
        "ListDetail": {"allOf": [{"$ref": "#/components/schemas/ListSummary"}, {"type": "object", "properties": {
            "versions": {"type": "array", "items": {"$ref": "#/components/schemas/ListVersion"}}}}]},
        "ListUpload": {"type": "object", "properties": {
            "version": {"$ref": "#/components/schemas/ListVersion"},
            "changed": {"type": "boolean", "description": "false: the content equals the version in force"},
            "in_force_changed": {"type": "boolean"}, "lines": {"type": "integer"}, "duplicates": {"type": "integer"},
            "invalid": {"type": "integer"},
            "first_invalid": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer"}, "text": {"type": "string"}, "reason": {"type": "string"}}}},
            "policies": {"type": "array", "description": "the agencies' new policy versions", "items": {"type": "object", "properties": {"agency": code, "version": {"type": "integer"}}}}}},
        "ListDecision": {"type": "object", "required": ["comment"], "additionalProperties": false, "properties": {
            "comment": {"type": "string", "minLength": 3, "maxLength": 500}}},
        "ListDecided": {"type": "object", "properties": {
            "version": {"$ref": "#/components/schemas/ListVersion"},
            "policies": {"type": "array", "items": {"type": "object"}}}},
        "ListContent": {"type": "string"},
        "DefaultPolicyVersionList": {"type": "array", "items": {"type": "object", "properties": {
            "version": {"type": "integer"}, "created_ms": ms, "created_by": {"type": "string"}, "comment": {"type": "string"}}}}
    })
}
