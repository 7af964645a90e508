//! The collector as a component: `Collector::start(config)` opens storage,
//! starts the writer, the live ticker and the listeners; `stop()` ends them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use include_dir::{include_dir, Dir};

use crate::config::CollectorConfig;
use crate::ingest::{WriteJob, Writer};
use crate::state::{AppState, NodeRegistry};
use crate::store::{Store, StoreConfig};
use crate::tls::TlsFiles;

static DASHBOARD: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../dashboard");

/// A running collector.
pub struct Collector {
    pub state: AppState,
    pub http_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    pub tls: TlsFiles,
    handles: Vec<axum_server::Handle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer: Option<Writer>,
    notifier: Option<crate::notify::Notifier>,
}

impl Collector {
    pub async fn start(config: CollectorConfig) -> Result<Collector> {
        let data_dir = config.storage.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        let store_cfg = StoreConfig {
            flow_retention_days: config.storage.flow_retention_days,
            blocked_retention_days: config
                .storage
                .blocked_retention_days
                .unwrap_or(config.storage.flow_retention_days),
            uplink_down_bps: config.uplink.capacity_down_bps,
            uplink_up_bps: config.uplink.capacity_up_bps,
            ..StoreConfig::default()
        };
        let store = Store::open(&data_dir, store_cfg).context("cannot open storage")?;
        store
            .writer()?
            .sync_agencies(&agency_defs(&config.agencies))
            .context("cannot store agencies")?;
        let writer = Writer::start(&store)?;
        let metrics = metrics_handle();
        let (live, _) = tokio::sync::broadcast::channel(16);
        let known: Vec<(String, String)> = store
            .reader()?
            .nodes(
                std::time::SystemTime::now(),
                Duration::from_secs(config.nodes.down_after_secs),
            )?
            .into_iter()
            .filter(|n| !n.revoked)
            .map(|n| (n.node_id, n.agency))
            .collect();
        let notifier = crate::notify::Notifier::start(config.notify.clone(), store.path())
            .context("cannot start notifications")?;
        let alerts = notifier.handle().alert_sink();
        let outage =
            crate::outage::monitor::OutageMonitor::start(&config.nodes, &store, known, alerts)
                .context("cannot start the outage monitor")?;
        let state = AppState {
            config: Arc::new(config.clone()),
            store: Arc::new(store),
            writer: writer.sender(),
            nodes: Arc::new(NodeRegistry::default()),
            outage: Arc::new(outage),
            notify: notifier.handle(),
            live,
            metrics,
        };
        let tls = crate::tls::ensure(&config.server, &data_dir)?;

        let mut collector = Collector {
            state: state.clone(),
            http_addr: None,
            tls_addr: None,
            tls: tls.clone(),
            handles: Vec::new(),
            tasks: Vec::new(),
            writer: Some(writer),
            notifier: Some(notifier),
        };
        collector
            .tasks
            .push(tokio::spawn(crate::live::ticker(state.clone())));
        collector.tasks.push(tokio::spawn(retention(state.clone())));
        // "Terima" buttons pressed in the NOC's Telegram chats.
        let outage = state.outage.clone();
        let ack: crate::notify::telegram_ack::AckFn = Arc::new(move |id, by| {
            let outage = outage.clone();
            Box::pin(async move { matches!(outage.ack(id, &by).await, Ok(Some(_))) })
        });
        collector
            .tasks
            .extend(crate::notify::telegram_ack::start(&config.notify, ack)?);
        collector
            .tasks
            .push(tokio::spawn(allocation_watch(state.clone())));
        collector
            .tasks
            .push(tokio::spawn(checkpoint(state.clone())));

        if let Some(addr) = config.server.listen {
            let app = router(state.clone(), false);
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            listener.set_nonblocking(true)?;
            collector.http_addr = Some(listener.local_addr()?);
            let handle = axum_server::Handle::new();
            let server = axum_server::from_tcp(listener).handle(handle.clone());
            collector.handles.push(handle);
            collector.tasks.push(tokio::spawn(async move {
                if let Err(e) = server
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                {
                    tracing::error!(error = %e, "HTTP listener failed");
                }
            }));
        }
        if let Some(addr) = config.server.listen_tls {
            let app = router(state.clone(), true);
            let rustls_cfg = crate::tls::server_config(&tls)?;
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            listener.set_nonblocking(true)?;
            collector.tls_addr = Some(listener.local_addr()?);
            let handle = axum_server::Handle::new();
            let server = axum_server::from_tcp_rustls(
                listener,
                axum_server::tls_rustls::RustlsConfig::from_config(rustls_cfg),
            )
            .handle(handle.clone());
            collector.handles.push(handle);
            collector.tasks.push(tokio::spawn(async move {
                if let Err(e) = server
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                {
                    tracing::error!(error = %e, "TLS listener failed");
                }
            }));
        }
        tracing::info!(http = ?collector.http_addr, tls = ?collector.tls_addr, data = %data_dir.display(), "collector running");
        Ok(collector)
    }

    /// Issue a one-time enrollment token for `node` of `agency` (valid a day).
    pub async fn enrollment_token(&self, agency: &str, node: &str) -> Result<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.state
            .writer
            .send(WriteJob::CreateToken {
                agency: agency.to_string(),
                node_id: node.to_string(),
                ttl: Duration::from_secs(24 * 3600),
                done: tx,
            })
            .map_err(|_| anyhow::anyhow!("writer stopped"))?;
        rx.await?.map_err(|e| anyhow::anyhow!(e))
    }

    /// Close listeners, let the writer finish what was queued.
    pub async fn stop(mut self) {
        // Outages first, so their last alerts are queued; then the notifier
        // finishes the sends in flight.
        self.state.outage.shutdown();
        if let Some(n) = self.notifier.take() {
            let _ = tokio::task::spawn_blocking(move || n.stop()).await;
        }
        for h in &self.handles {
            h.graceful_shutdown(Some(Duration::from_secs(2)));
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.stop()).await;
        }
    }
}

/// Every 5 s: each agency's internet use over the last minute against its
/// allocation, for the outage monitor's `allocation_high` condition.
async fn allocation_watch(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let store = state.store.clone();
        let timeout = Duration::from_secs(state.config.nodes.down_after_secs);
        let end = crate::api::overview_end();
        let ov =
            tokio::task::spawn_blocking(move || store.reader()?.overview(end, 60, timeout)).await;
        let Ok(Ok(ov)) = ov else { continue };
        for a in &ov.agencies {
            let pct = |used: u64, alloc: u64| {
                if alloc == 0 {
                    0.0
                } else {
                    100.0 * used as f64 / alloc as f64
                }
            };
            let used = pct(a.internet_in_bps, a.alloc_down_bps)
                .max(pct(a.internet_out_bps, a.alloc_up_bps));
            state.outage.allocation_usage(&a.code, used);
        }
    }
}

/// The configured agencies, as the store records them.
pub fn agency_defs(agencies: &[crate::config::AgencyConfig]) -> Vec<crate::store::AgencyDef> {
    agencies
        .iter()
        .map(|a| crate::store::AgencyDef {
            code: a.code.clone(),
            name: if a.name.is_empty() {
                a.code.clone()
            } else {
                a.name.clone()
            },
            alloc_down_bps: a.alloc_down_bps,
            alloc_up_bps: a.alloc_up_bps,
            units: a
                .units
                .iter()
                .map(|u| crate::store::UnitDef {
                    code: u.code.clone(),
                    name: if u.name.is_empty() {
                        u.code.clone()
                    } else {
                        u.name.clone()
                    },
                })
                .collect(),
        })
        .collect()
}

/// The process-wide Prometheus recorder (installed once, shared by every
/// collector started in this process, e.g. in tests).
fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

/// Copy the WAL into the database beside the writer (never on it), so
/// commits never stall on a checkpoint and the WAL stays short.
async fn checkpoint(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let store = state.store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.checkpoint()).await {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

async fn retention(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_secs(3600));
    loop {
        interval.tick().await;
        let _ = state.writer.try_send(WriteJob::Retention {
            now_secs: crate::state::now_secs(),
        });
    }
}

/// Routes; the agent endpoint exists only on the TLS listener.
pub fn router(state: AppState, tls: bool) -> Router {
    use crate::api;
    let mut r = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/openapi.json", get(crate::openapi::document))
        .route("/api/v1/nodes", get(api::nodes))
        .route("/api/v1/agencies", get(api::agencies))
        .route("/api/v1/overview", get(api::overview))
        .route("/api/v1/agencies/{code}/usage", get(api::usage))
        .route("/api/v1/top/hosts", get(api::top_hosts))
        .route("/api/v1/top/sites", get(api::top_sites))
        .route("/api/v1/flows", get(api::flows))
        .route("/api/v1/blocked", get(api::blocked))
        .route("/api/v1/blocked/summary", get(api::blocked_summary))
        .route("/api/v1/incidents", get(crate::outage::api::incidents))
        .route("/api/v1/incidents/stats", get(crate::outage::api::stats))
        .route("/api/v1/incidents/{id}/ack", post(crate::outage::api::ack))
        .route(
            "/api/v1/availability",
            get(crate::outage::api::availability),
        )
        .route(
            "/api/v1/maintenance",
            get(crate::outage::api::maintenance).post(crate::outage::api::add_maintenance),
        )
        .route("/api/v1/live", get(crate::live::upgrade));
    if tls {
        r = r.route(simpul_proto::wire::AGENT_PATH, get(agent_upgrade));
    } else {
        r = r.route(simpul_proto::wire::AGENT_PATH, get(agent_needs_tls));
    }
    r.fallback(get(static_file))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

async fn agent_upgrade(
    ws: WebSocketUpgrade,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
) -> Response {
    let max = state.config.server.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| crate::agent_ws::session(socket, addr, state))
}

async fn agent_needs_tls() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(
            serde_json::json!({"error": "agents connect over TLS (listen_tls), never plain HTTP"}),
        ),
    )
        .into_response()
}

async fn static_file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match DASHBOARD.get_file(path) {
        Some(f) => {
            let mime = match path.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("js" | "mjs") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            ([(header::CONTENT_TYPE, mime)], f.contents()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
