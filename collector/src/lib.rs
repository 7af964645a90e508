//! Simpul collector: authenticates agents, stores their flows and counters,
//! serves the API and the live NOC dashboard.
//!
//! Components: [`server::Collector`] (start/stop), [`agent_ws`] (agent
//! sessions), [`ingest`] (the single storage writer), [`store`] (SQLite),
//! [`api`] and [`live`] (dashboard), [`tls`], [`demo`].

pub mod agent_ws;
pub mod api;
pub mod config;
pub mod demo;
pub mod ingest;
pub mod live;
pub mod notify;
pub mod openapi;
pub mod outage;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
