//! The collector as a component: [`Collector::start`] opens storage, loads
//! the inventory and policies, starts the writer, the outage monitor, the
//! notifier, the background tasks and the listeners; [`Collector::stop`]
//! signals every task and connection to end (none is aborted), lets agent
//! sessions close cleanly, then stops the notifier and the writer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};
use tokio::sync::watch;

use crate::config::CollectorConfig;
use crate::ingest::{WriteJob, Writer};
use crate::inventory::Inventories;
use crate::policies::Policies;
use crate::state::{AppState, NodeRegistry};
use crate::store::{AccessStore, ControlStore, FlowStore, Store, StoreConfig};
use crate::tls::TlsFiles;

static DASHBOARD: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../dashboard");

/// How long agent sessions and HTTP requests get to finish on a stop.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Tells every task and connection the collector is stopping.
#[derive(Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

/// One listener's view of [`Shutdown`].
pub struct ShutdownSignal(watch::Receiver<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> ShutdownSignal {
        ShutdownSignal(self.0.subscribe())
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

impl ShutdownSignal {
    /// Resolves once the collector is stopping (never, if every
    /// [`Shutdown`] is gone without triggering).
    pub async fn wait(&mut self) {
        if self.0.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A running collector.
pub struct Collector {
    pub state: AppState,
    pub http_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    /// `[netflow] listen` as bound.
    pub netflow_addr: Option<SocketAddr>,
    pub tls: TlsFiles,
    handles: Vec<axum_server::Handle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer: Option<Writer>,
    notifier: Option<crate::notify::Notifier>,
    /// The outage detector's lease (several collectors on PostgreSQL).
    leader: Option<crate::outage::leader::Leader>,
}

impl Collector {
    /// Start on the embedded SQLite store in `storage.data_dir`.
    pub async fn start(config: CollectorConfig) -> Result<Collector> {
        let data_dir = config.storage.data_dir.clone();
        let store = Store::open(&data_dir, store_config(&config)).context("cannot open storage")?;
        let store = Arc::new(store);
        let flows: Arc<dyn FlowStore> = match config.storage.backend {
            crate::config::StorageBackend::Sqlite => store.clone(),
            crate::config::StorageBackend::Clickhouse => Arc::new(
                crate::store::clickhouse::ClickHouseFlowStore::open(
                    &config.storage.clickhouse,
                    &store_config(&config),
                )
                .context("cannot open the ClickHouse flow store")?,
            ),
        };
        let (control, access): (Arc<dyn ControlStore>, Arc<dyn AccessStore>) =
            match config.storage.control.backend {
                crate::store::postgres::ControlBackend::Sqlite => (store.clone(), store),
                crate::store::postgres::ControlBackend::Postgres => {
                    let cfg = config.storage.control.clone();
                    let pg = tokio::task::spawn_blocking(move || {
                        crate::store::postgres::PgStore::open(&cfg)
                    })
                    .await?
                    .context("cannot open the PostgreSQL control store ([storage.control])")?;
                    tracing::info!(url = %pg.url(), "control store on PostgreSQL");
                    let pg = Arc::new(pg);
                    (pg.clone(), pg)
                }
            };
        Self::start_with(config, flows, control, access).await
    }

    /// Start on the given stores (tests use an in-memory flow store).
    pub async fn start_with(
        config: CollectorConfig,
        flows: Arc<dyn FlowStore>,
        control: Arc<dyn ControlStore>,
        access: Arc<dyn AccessStore>,
    ) -> Result<Collector> {
        let data_dir = config.storage.data_dir.clone();
        crate::store::private_dir(&data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        let inventory = Arc::new(
            Inventories::load(control.clone(), config.inventory.file.clone())
                .context("cannot load the inventory")?,
        );
        let lists = Arc::new(
            crate::lists::Lists::start(&data_dir, control.clone(), config.policy.lists.clone())
                .context("cannot load the named lists")?,
        );
        let policies = Arc::new(
            Policies::start(
                &data_dir,
                control.clone(),
                config.policy.dir.clone(),
                &inventory,
                lists.clone(),
            )
            .context("cannot load the policies")?,
        );
        let writer = Writer::start(flows.as_ref())?;
        let metrics = metrics_handle();
        let live = Arc::new(crate::live::Live::default());
        let known: Vec<(String, String)> = control
            .nodes(
                std::time::SystemTime::now(),
                Duration::from_secs(config.nodes.down_after_secs),
            )?
            .into_iter()
            .filter(|n| !n.revoked)
            .map(|n| (n.node_id, n.agency))
            .collect();
        let notifier =
            crate::notify::Notifier::start_on(config.notify.clone(), || control.notification_log())
                .context("cannot start notifications")?;
        let alerts = notifier.handle().alert_sink();
        // One collector on SQLite always leads; collectors sharing a
        // PostgreSQL control store take turns through its lease.
        let leader = if control.backend() == "postgres" {
            let id = crate::outage::leader::collector_id(&config.storage.control.collector_id);
            Some(
                crate::outage::leader::Leader::start(
                    control.clone(),
                    crate::outage::leader::OUTAGE_LEASE,
                    &id,
                    Duration::from_secs(config.storage.control.lease_secs),
                )
                .context("cannot start the outage detector's lease")?,
            )
        } else {
            None
        };
        let outage = crate::outage::monitor::OutageMonitor::start_led(
            &config.nodes,
            control.as_ref(),
            known,
            inventory.topology(),
            alerts,
            leader.as_ref().map(crate::outage::leader::Leader::gate),
        )
        .context("cannot start the outage monitor")?
        .with_collector_id(leader.as_ref().map(|l| l.holder().to_owned()));
        let state = AppState {
            config: Arc::new(config.clone()),
            flows,
            control,
            inventory,
            policies,
            lists,
            writer: writer.sender(),
            nodes: Arc::new(NodeRegistry::default()),
            outage: Arc::new(outage),
            notify: notifier.handle(),
            live,
            metrics,
            shutdown: Shutdown::default(),
            access,
            auth: Arc::new(crate::auth::Auth::new(config.auth.clone())),
            agents: Arc::new(crate::state::AgentSessions::default()),
            netflow: Arc::new(crate::netflow::status::Exporters::default()),
        };
        let tls = crate::tls::ensure(&config.server, &data_dir)?;

        let mut collector = Collector {
            state: state.clone(),
            http_addr: None,
            tls_addr: None,
            netflow_addr: None,
            tls: tls.clone(),
            handles: Vec::new(),
            tasks: Vec::new(),
            writer: Some(writer),
            notifier: Some(notifier),
            leader,
        };
        let every = |period: Duration, f: fn(&AppState)| {
            let state = state.clone();
            tokio::spawn(periodic(state, period, f))
        };
        collector.tasks.extend([
            tokio::spawn(crate::live::ticker(state.clone())),
            tokio::spawn(sync_lists(state.clone())),
            tokio::spawn(crate::reports::schedule::run(state.clone())),
            every(Duration::from_secs(3600), retention),
            every(Duration::from_secs(5), allocation_watch),
            every(Duration::from_secs(1), maintain),
            every(Duration::from_secs(2), reload_inventory_and_policies),
            every(Duration::from_secs(2), end_revoked_sessions),
            every(Duration::from_secs(3600), prune_access),
            every(Duration::from_secs(30), |_| {
                crate::edge::return_free_memory()
            }),
        ]);
        if collector.leader.is_some() {
            collector
                .tasks
                .push(tokio::spawn(crate::outage::shared::seen_elsewhere(
                    state.clone(),
                )));
        }
        // "Terima" buttons pressed in the NOC's Telegram chats.
        let outage = state.outage.clone();
        let ack: crate::notify::telegram_ack::AckFn = Arc::new(move |id, by| {
            let outage = outage.clone();
            Box::pin(async move { matches!(outage.ack(id, &by).await, Ok(Some(_))) })
        });
        let outage = state.outage.clone();
        collector.tasks.extend(crate::notify::telegram_ack::start(
            &config.notify,
            ack,
            state.shutdown.clone(),
            Arc::new(move || outage.is_leading()),
        )?);

        if let Some((addr, task)) = crate::netflow::start(&state)? {
            collector.netflow_addr = Some(addr);
            collector.tasks.push(task);
        }

        let limits = connection_limits(&config.server);
        // The loopback listener (tools, a local reverse proxy: one address
        // for all) and the metrics listener have places of their own, so a
        // flood on the network-facing listener cannot lock them out.
        let idle = Duration::from_secs(config.server.idle_timeout_secs);
        let local_limits = crate::edge::ConnLimits::new(LOCAL_CONNECTIONS, LOCAL_CONNECTIONS, idle);
        let metrics_limits =
            crate::edge::ConnLimits::new(METRICS_CONNECTIONS, METRICS_CONNECTIONS, idle);
        let header_timeout = Duration::from_secs(config.server.header_read_timeout_secs);
        if let Some(addr) = config.server.metrics_listen {
            let app = axum::Router::new()
                .route("/metrics", axum::routing::get(crate::api::metrics))
                .with_state(state.clone());
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
            listener.set_nonblocking(true)?;
            let handle = axum_server::Handle::new();
            let mut server = axum_server::from_tcp(listener)
                .acceptor(crate::edge::LimitAcceptor {
                    limits: metrics_limits,
                })
                .handle(handle.clone());
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            collector.handles.push(handle);
            collector.tasks.push(tokio::spawn(async move {
                if let Err(e) = server.serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            }));
        }
        if let Some(addr) = config.server.listen {
            let app = router(state.clone(), false);
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            listener.set_nonblocking(true)?;
            collector.http_addr = Some(listener.local_addr()?);
            let handle = axum_server::Handle::new();
            let mut server = axum_server::from_tcp(listener)
                .acceptor(crate::edge::LimitAcceptor {
                    limits: local_limits,
                })
                .handle(handle.clone());
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
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
            let edge = crate::edge::LimitAcceptor {
                limits: limits.clone(),
            };
            let mut server = axum_server::from_tcp_rustls(
                listener,
                axum_server::tls_rustls::RustlsConfig::from_config(rustls_cfg),
            )
            .map(|tls| tls.acceptor(edge))
            .handle(handle.clone());
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
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

    /// Issue a one-time enrollment token for `node` (valid a day). The node
    /// must be in the inventory; its agency is the inventory's.
    pub async fn enrollment_token(&self, node: &str) -> Result<String> {
        let agency = self
            .state
            .inventory
            .node(node)
            .map(|n| n.agency)
            .with_context(|| format!("node {node:?} is not in the inventory"))?;
        let control = self.state.control.clone();
        let node = node.to_string();
        Ok(tokio::task::spawn_blocking(move || {
            control.create_enrollment_token(&agency, &node, Duration::from_secs(24 * 3600))
        })
        .await??)
    }

    /// Stop: listeners stop accepting; every task and agent session ends on
    /// the shutdown signal (sessions acknowledge what is committed and close
    /// with a WebSocket Close and a TLS close_notify); outages are flushed to
    /// the notifier, which finishes its sends within its grace; the writer
    /// commits what is queued.
    /// This collector's name in the outage detector's lease (None: a
    /// single collector on SQLite, which always leads).
    pub fn collector_id(&self) -> Option<&str> {
        self.leader
            .as_ref()
            .map(crate::outage::leader::Leader::holder)
    }

    /// Stop renewing the outage detector's lease without giving it up, as
    /// a collector killed with SIGKILL does (tests of the takeover).
    pub fn abandon_lease(&mut self) {
        if let Some(l) = self.leader.take() {
            l.abandon();
        }
    }

    pub async fn stop(mut self) {
        self.state.shutdown.trigger();
        for h in &self.handles {
            h.graceful_shutdown(Some(STOP_GRACE));
        }
        for t in self.tasks.drain(..) {
            if tokio::time::timeout(STOP_GRACE + Duration::from_secs(1), t)
                .await
                .is_err()
            {
                tracing::warn!("a collector task did not stop in time");
            }
        }
        // Outages first, so their last alerts are queued; then the notifier
        // finishes the sends in flight.
        self.state.outage.shutdown();
        // A clean stop hands the lease over at once.
        if let Some(l) = self.leader.take() {
            let _ = tokio::task::spawn_blocking(move || drop(l)).await;
        }
        if let Some(n) = self.notifier.take() {
            let _ = tokio::task::spawn_blocking(move || n.stop()).await;
        }
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.stop()).await;
        }
        tracing::info!("collector stopped");
    }
}

/// Places of the loopback listener (its own pool, per address too: a
/// reverse proxy is one address).
const LOCAL_CONNECTIONS: usize = 256;
/// Places of the metrics listener.
const METRICS_CONNECTIONS: usize = 32;

/// The network-facing listener's caps, fitted under the descriptor limit
/// (raised to the hard limit first): the database, logs, notifier and the
/// other listeners' pools need some too.
fn connection_limits(cfg: &crate::config::ServerConfig) -> Arc<crate::edge::ConnLimits> {
    let nofile = crate::edge::raise_nofile();
    let reserved = 256 + LOCAL_CONNECTIONS + METRICS_CONNECTIONS;
    let room = usize::try_from(nofile)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserved);
    let total = cfg.max_connections.min(room.max(16));
    if total < cfg.max_connections {
        tracing::warn!(
            configured = cfg.max_connections,
            nofile,
            used = total,
            "server.max_connections lowered to fit the open-files limit (raise LimitNOFILE)"
        );
    }
    crate::edge::ConnLimits::new(
        total,
        cfg.max_connections_per_address.min(total),
        Duration::from_secs(cfg.idle_timeout_secs),
    )
}

pub fn store_config(config: &CollectorConfig) -> StoreConfig {
    StoreConfig {
        flow_retention_days: config.storage.flow_retention_days,
        blocked_retention_days: config
            .storage
            .blocked_retention_days
            .unwrap_or(config.storage.flow_retention_days),
        ..StoreConfig::default()
    }
}

/// Run `f` every `period` until the collector stops (blocking work: `f`
/// runs off the async threads).
async fn periodic(state: AppState, period: Duration, f: fn(&AppState)) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = state.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.wait() => return,
        }
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || f(&s)).await;
    }
}

/// Each agency's internet use over the last minute against its allocation
/// in force, for the outage monitor's `allocation_high` condition.
fn allocation_watch(state: &AppState) {
    let end = crate::api::overview_end();
    let Ok(reader) = state.flows.reader() else {
        return;
    };
    let Ok(traffic) = reader.traffic(end, 60) else {
        return;
    };
    for a in &state.inventory.current().agencies {
        let t = traffic.agencies.get(&a.code).copied().unwrap_or_default();
        let (down, up) = crate::service::allocation(state, &a.code, end);
        let pct = |bytes: u64, alloc: u64| {
            if alloc == 0 {
                0.0
            } else {
                100.0 * (bytes as f64 * 8.0 / 60.0) / alloc as f64
            }
        };
        state
            .outage
            .allocation_usage(&a.code, pct(t[0], down).max(pct(t[1], up)));
    }
}

/// Storage housekeeping beside the writer (SQLite: copy the WAL into the
/// database, so commits never stall on a checkpoint).
fn maintain(state: &AppState) {
    if let Err(e) = state.flows.maintain() {
        tracing::warn!(error = %e, "storage maintenance failed");
    }
}

/// A node revoked from the command line (another process) loses its live
/// session within a couple of seconds; the API revokes at once.
fn end_revoked_sessions(state: &AppState) {
    let connected = state.agents.nodes();
    if connected.is_empty() {
        return;
    }
    let Ok(nodes) = state
        .control
        .nodes(std::time::SystemTime::now(), Duration::from_secs(1))
    else {
        return;
    };
    for n in nodes.iter().filter(|n| n.revoked) {
        if connected.contains(&n.node_id) {
            state
                .agents
                .kick(&n.node_id, "the node's credential was revoked");
        }
    }
}

/// Ended sessions go after a day; maintenance windows after a year and a
/// month (availability reports look back a year).
fn prune_access(state: &AppState) {
    let now = crate::state::now_ms();
    if let Err(e) = state.access.prune_sessions(now) {
        tracing::warn!(error = %e, "cannot prune sessions");
    }
    let outage = state.outage.clone();
    let before_ms = now.saturating_sub(396 * 86_400_000);
    tokio::spawn(async move {
        let _ = outage
            .maintenance(crate::outage::monitor::MaintenanceChange::Prune { before_ms })
            .await;
    });
}

fn retention(state: &AppState) {
    let _ = state.writer.try_send(WriteJob::Retention {
        now_secs: crate::state::now_secs(),
    });
}

/// Follow the inventory file and the policy directory: a change is in
/// force (and sent to the agents) within a couple of seconds.
fn reload_inventory_and_policies(state: &AppState) {
    match state.inventory.reload() {
        Ok(true) => state.outage.set_topology(state.inventory.topology()),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "inventory file refused; the inventory in force stays")
        }
    }
    for e in state.policies.reload_dir(&state.inventory) {
        tracing::error!(error = %e, "policy file refused; the version in force stays");
    }
}

/// Sync the named lists whose interval has passed (one at a time).
async fn sync_lists(state: AppState) {
    let mut interval = tokio::time::interval(crate::lists::SYNC_CHECK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = state.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.wait() => return,
        }
        let lists = state.lists.clone();
        let due = tokio::task::spawn_blocking(move || lists.due(crate::state::now_ms()))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        for src in due {
            tokio::select! {
                () = crate::lists_api::sync_and_follow(&state, &src.name, "sync") => {}
                () = stop.wait() => return,
            }
        }
    }
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

/// Routes of one listener (see `routes.rs`).
pub fn router(state: AppState, tls: bool) -> axum::Router {
    crate::routes::router(state, tls)
}

pub(crate) async fn static_file(uri: Uri) -> Response {
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
        None => {
            crate::api::ApiError(StatusCode::NOT_FOUND, format!("no file {path}")).into_response()
        }
    }
}
