//! The inventory in force at the collector: agencies, units, subnets, the
//! intranet, the central uplink and the nodes, defined once (the
//! `[inventory] file`) and kept versioned in the control store. Every
//! change is validated by core (every problem with its place), gets a new
//! version and reaches the agents at once through [`Inventories::subscribe`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use simpul_core::inventory::{validate, AgencyView};
use simpul_proto::inventory::{Capacity, Inventory, Node};
use simpul_proto::Problem;
use tokio::sync::watch;

use crate::store::{ControlStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: {cause}")]
    Parse {
        path: PathBuf,
        cause: simpul_proto::inventory::InventoryParseError,
    },
    #[error("{path}: the inventory has {}", simpul_proto::problem::describe(.problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parents and severities of nodes, for the outage monitor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub parents: HashMap<String, String>,
    pub criticality: HashMap<String, String>,
}

pub struct Inventories {
    control: Arc<dyn ControlStore>,
    file: Option<PathBuf>,
    current: RwLock<Arc<Inventory>>,
    tx: watch::Sender<Arc<Inventory>>,
    /// The file's text last read (reloads skip an unchanged file).
    seen: Mutex<Option<String>>,
}

fn now_ms() -> u64 {
    crate::state::now_ms()
}

impl Inventories {
    /// The file's inventory when one is configured (it must be valid), else
    /// the one stored last, else an empty one.
    pub fn load(
        control: Arc<dyn ControlStore>,
        file: Option<PathBuf>,
    ) -> Result<Inventories, InventoryError> {
        let initial = match &file {
            Some(path) => {
                let text = read(path)?;
                let inv = parse(path, &text)?;
                let saved = control.save_inventory(&inv, now_ms())?;
                (saved, Some(text))
            }
            None => (control.latest_inventory()?.unwrap_or_default(), None),
        };
        let inv = Arc::new(initial.0);
        tracing::info!(
            version = inv.version,
            agencies = inv.agencies.len(),
            nodes = inv.nodes.len(),
            "inventory in force"
        );
        let (tx, _) = watch::channel(inv.clone());
        Ok(Inventories {
            control,
            file,
            current: RwLock::new(inv),
            tx,
            seen: Mutex::new(initial.1),
        })
    }

    pub fn current(&self) -> Arc<Inventory> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes, as they are made.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Inventory>> {
        self.tx.subscribe()
    }

    /// Validate and put `inv` in force (a new version if its content
    /// changed); every problem with its place otherwise.
    pub fn set(&self, inv: &Inventory) -> Result<Arc<Inventory>, InventoryError> {
        validate(inv).map_err(|problems| InventoryError::Invalid {
            path: "inventory".into(),
            problems,
        })?;
        let saved = Arc::new(self.control.save_inventory(inv, now_ms())?);
        let changed = saved.version != self.current().version;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = saved.clone();
        if changed {
            tracing::info!(
                version = saved.version,
                "inventory changed; sending it to the agents"
            );
            self.tx.send_replace(saved.clone());
        }
        Ok(saved)
    }

    /// Re-read the file if it changed. Ok(true) when a new inventory is in
    /// force; an invalid file leaves the current one (the error says why).
    pub fn reload(&self) -> Result<bool, InventoryError> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let text = read(path)?;
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.as_deref() == Some(text.as_str()) {
                return Ok(false);
            }
            *seen = Some(text.clone());
        }
        let before = self.current().version;
        let inv = parse(path, &text)?;
        Ok(self.set(&inv)?.version != before)
    }

    pub fn node(&self, id: &str) -> Option<Node> {
        self.current().node(id).cloned()
    }

    /// An agency of the inventory, with parsed subnets.
    pub fn agency(&self, code: &str) -> Option<AgencyView> {
        self.current().agency(code).map(AgencyView::from_agency)
    }

    /// The smallest uplink among the agency's nodes: its allocation must
    /// fit on every one of them.
    pub fn agency_uplink(&self, code: &str) -> Option<Capacity> {
        simpul_core::inventory::agency_uplink(&self.current(), code)
    }

    pub fn topology(&self) -> Topology {
        let inv = self.current();
        let mut t = Topology::default();
        for n in &inv.nodes {
            if let Some(p) = &n.parent {
                t.parents.insert(n.id.clone(), p.clone());
            }
            if let Some(c) = &n.criticality {
                t.criticality.insert(n.id.clone(), c.clone());
            }
        }
        t
    }
}

fn read(path: &PathBuf) -> Result<String, InventoryError> {
    std::fs::read_to_string(path).map_err(|cause| InventoryError::Read {
        path: path.clone(),
        cause,
    })
}

fn parse(path: &std::path::Path, text: &str) -> Result<Inventory, InventoryError> {
    let inv = Inventory::parse(text).map_err(|cause| InventoryError::Parse {
        path: path.to_owned(),
        cause,
    })?;
    validate(&inv).map_err(|problems| InventoryError::Invalid {
        path: path.display().to_string(),
        problems,
    })?;
    Ok(inv)
}
