//! Simpul collector: authenticates agents, stores their flows and counters,
//! serves the inventory and signed policies to them, and serves the API and
//! the live NOC dashboard.
//!
//! Components: [`server::Collector`] (start/stop), [`agent_ws`] (agent
//! sessions), [`ingest`] (the single flow writer), [`store`] (the storage
//! seams and their SQLite and in-memory implementations), [`inventory`] and
//! [`policies`] (what the agents get), [`service`] (what the API asks of
//! storage), [`api`] and [`live`] (dashboard), [`outage`] and [`notify`]
//! (incidents and alerts), [`tls`].

pub mod agent_ws;
pub mod api;
pub mod auth;
pub mod collectors_api;
pub mod config;
pub mod csv;
pub mod edge;
pub mod ingest;
pub mod inventory;
pub mod lists;
pub mod lists_api;
pub mod live;
pub mod logging;
pub mod netflow;
pub mod notify;
pub mod openapi;
pub mod outage;
pub mod policies;
pub mod policy_api;
pub mod prom;
pub mod reports;
pub mod routes;
pub mod search_api;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod tls;
