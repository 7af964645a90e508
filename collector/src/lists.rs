//! Named domain lists at the collector: uploaded or synced from a URL,
//! kept in canonical form named by its SHA-256 (`simpul_core::lists`), and
//! fetched by agents in chunks when a policy names a hash they lack.
//!
//! Where the content lives: `data_dir/lists/<sha256>.gz`, the gzip of the
//! canonical text, written once (tmp + fsync + rename) and never changed —
//! agents resume a transfer by offset into it. The versions and sources
//! are in the control store. A new version that is empty, or that lost
//! more than the allowed share of names, is held until an administrator
//! confirms it (a source that broke must not lift every block at once).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use simpul_core::lists::{canonicalize, hold, valid_name, valid_sha256};
use simpul_core::policy::domains::{DomainsError, InvalidLine, ListFormat};
use simpul_proto::policy::ListRef;

use crate::config::ListsConfig;
use crate::store::{ControlStore, ListSource, ListVersion, StoreError};

pub const DIR: &str = "lists";

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0:?} is not a list name: letters, digits, '-', '_' (at most 64)")]
    Name(String),
    #[error("the list is larger than {limit} bytes ([policy.lists] max_bytes)")]
    TooLarge { limit: u64 },
    #[error("gzip: {0}")]
    Gzip(String),
    #[error("the list holds {domains} domains; at most {limit} ([policy.lists] max_domains)")]
    TooManyDomains { domains: u64, limit: u64 },
    #[error("reading the list: {0}")]
    Read(#[from] DomainsError),
    #[error("no list {0:?}")]
    NoList(String),
    #[error("list {name:?} has no held version {version}")]
    NotHeld { name: String, version: u64 },
    #[error("no stored list with SHA-256 {0}")]
    NoContent(String),
    #[error("offset {offset} is past the end of the list ({total} bytes)")]
    Offset { offset: u64, total: u64 },
    #[error("source: {0}")]
    Source(String),
    #[error("sync of {name:?}: {message}")]
    Sync { name: String, message: String },
    #[error("list storage: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an upload or a sync did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The version made, or the one in force when the content is the same.
    pub version: ListVersion,
    /// False when the content equals the current version (nothing new).
    pub changed: bool,
    /// The version in force afterwards changed (policies follow it).
    pub in_force_changed: bool,
    pub lines: u64,
    pub duplicates: u64,
    pub invalid: u64,
    /// The first invalid lines with their line numbers.
    pub first_invalid: Vec<InvalidLine>,
}

/// A list as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub current: Option<ListVersion>,
    /// Versions waiting for an administrator.
    pub held: Vec<ListVersion>,
    pub source: Option<ListSource>,
}

pub struct Lists {
    dir: PathBuf,
    control: Arc<dyn ControlStore>,
    config: ListsConfig,
    current: RwLock<BTreeMap<String, ListVersion>>,
    /// One change at a time: version numbers are read and written together.
    saving: Mutex<()>,
}

impl Lists {
    pub fn start(
        data_dir: &Path,
        control: Arc<dyn ControlStore>,
        config: ListsConfig,
    ) -> Result<Lists, ListError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir)?;
        let mut current = BTreeMap::new();
        for v in control.list_versions(None, usize::MAX)? {
            if v.state == "current" {
                if !dir.join(blob_name(&v.sha256)).exists() {
                    tracing::error!(list = %v.name, version = v.version, sha256 = %v.sha256, "the content of a list is missing from the data directory; agents that lack it cannot fetch it (upload it again)");
                }
                current.insert(v.name.clone(), v);
            }
        }
        tracing::info!(lists = current.len(), "named lists loaded");
        Ok(Lists {
            dir,
            control,
            config,
            current: RwLock::new(current),
            saving: Mutex::new(()),
        })
    }

    pub fn config(&self) -> &ListsConfig {
        &self.config
    }

    /// The version in force of `name`, as a policy refers to it.
    pub fn reference(&self, name: &str) -> Option<ListRef> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|v| ListRef {
                sha256: v.sha256.clone(),
                domains: v.domains,
                version: v.version,
            })
    }

    pub fn summaries(&self) -> Result<Vec<Summary>, ListError> {
        // Only the versions in force and held: superseded ones can be many
        // (a daily sync) and the dashboard asks every few seconds.
        let versions = self.control.open_list_versions()?;
        let sources = self.control.list_sources()?;
        let mut out: BTreeMap<String, Summary> = BTreeMap::new();
        let entry = |out: &mut BTreeMap<String, Summary>, name: &str| {
            out.entry(name.to_string()).or_insert_with(|| Summary {
                name: name.to_string(),
                current: None,
                held: Vec::new(),
                source: None,
            });
        };
        for v in versions {
            entry(&mut out, &v.name);
            if let Some(s) = out.get_mut(&v.name) {
                match v.state.as_str() {
                    "current" => s.current = Some(v),
                    "held" => s.held.push(v),
                    _ => {}
                }
            }
        }
        for src in sources {
            entry(&mut out, &src.name);
            if let Some(s) = out.get_mut(&src.name) {
                s.source = Some(src);
            }
        }
        Ok(out.into_values().collect())
    }

    pub fn summary(&self, name: &str) -> Result<Summary, ListError> {
        self.summaries()?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ListError::NoList(name.to_string()))
    }

    pub fn versions(&self, name: &str, limit: usize) -> Result<Vec<ListVersion>, ListError> {
        Ok(self.control.list_versions(Some(name), limit)?)
    }

    /// Read `body` (gzip undone when it starts with gzip's magic), make its
    /// canonical form and store it as `name`'s next version: current, or
    /// held when empty or shrunk past `max_shrink_percent` (None: the
    /// configured share). Blocking: call from a blocking thread.
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &self,
        name: &str,
        body: &[u8],
        format: ListFormat,
        origin: &str,
        by: &str,
        comment: &str,
        max_shrink_percent: Option<f64>,
    ) -> Result<Outcome, ListError> {
        if !valid_name(name) {
            return Err(ListError::Name(name.chars().take(80).collect()));
        }
        let inflated;
        let text: &[u8] = if body.starts_with(&[0x1f, 0x8b]) {
            inflated = gunzip(body, self.config.max_bytes)?;
            &inflated
        } else {
            if body.len() as u64 > self.config.max_bytes {
                return Err(ListError::TooLarge {
                    limit: self.config.max_bytes,
                });
            }
            body
        };
        let list = canonicalize(text, format)?;
        if list.domains > self.config.max_domains {
            return Err(ListError::TooManyDomains {
                domains: list.domains,
                limit: self.config.max_domains,
            });
        }
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let previous = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let report = |version: ListVersion, changed: bool, in_force_changed: bool| Outcome {
            version,
            changed,
            in_force_changed,
            lines: list.report.lines,
            duplicates: list.report.duplicates,
            invalid: list.report.invalid,
            first_invalid: list.report.first_invalid.clone(),
        };
        if let Some(p) = previous.as_ref().filter(|p| p.sha256 == list.sha256) {
            // The same content again also restores a stored form that went
            // missing from the data directory (agents could not fetch it).
            self.write_blob(&list.sha256, &list.text)?;
            return Ok(report(p.clone(), false, false));
        }
        let stored_bytes = self.write_blob(&list.sha256, &list.text)?;
        let last = self
            .control
            .list_versions(Some(name), 1)?
            .first()
            .map_or(0, |v| v.version);
        let max_shrink = max_shrink_percent.unwrap_or(self.config.max_shrink_percent);
        let held = hold(
            previous.as_ref().map(|p| p.domains),
            list.domains,
            max_shrink,
        );
        let v = ListVersion {
            name: name.to_string(),
            version: last + 1,
            sha256: list.sha256.clone(),
            domains: list.domains,
            stored_bytes,
            lines: list.report.lines,
            invalid: list.report.invalid,
            state: if held.is_some() { "held" } else { "current" }.into(),
            hold_reason: held.as_ref().map(ToString::to_string),
            origin: origin.to_string(),
            created_ms: crate::state::now_ms(),
            created_by: by.to_string(),
            comment: comment.to_string(),
            decided_ms: None,
            decided_by: None,
        };
        self.control.save_list_version(&v)?;
        metrics::counter!("simpul_list_versions_total", "origin" => origin.to_string(), "state" => v.state.clone()).increment(1);
        if let Some(h) = &held {
            tracing::warn!(list = name, version = v.version, reason = %h, "new list version held for an administrator to confirm");
            return Ok(report(v, true, false));
        }
        tracing::info!(list = name, version = v.version, domains = v.domains, sha256 = %v.sha256, by, "list version in force");
        self.current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), v.clone());
        Ok(report(v, true, true))
    }

    /// Confirm (or discard) a held version. Returns the version in force
    /// afterwards when it changed.
    pub fn decide(
        &self,
        name: &str,
        version: u64,
        confirm: bool,
        by: &str,
    ) -> Result<ListVersion, ListError> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        if !self
            .control
            .decide_list_version(name, version, confirm, by, crate::state::now_ms())?
        {
            return Err(ListError::NotHeld {
                name: name.to_string(),
                version,
            });
        }
        let v = self
            .control
            .list_versions(Some(name), usize::MAX)?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| ListError::NoList(name.to_string()))?;
        if confirm {
            tracing::info!(
                list = name,
                version,
                by,
                "held list version confirmed; in force"
            );
            self.current
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), v.clone());
        } else {
            tracing::info!(list = name, version, by, "held list version discarded");
        }
        Ok(v)
    }

    /// `len` bytes at most of the stored form of `sha256` from `offset`,
    /// and its total size.
    pub fn chunk(
        &self,
        sha256: &str,
        offset: u64,
        len: usize,
    ) -> Result<(u64, Vec<u8>), ListError> {
        if !valid_sha256(sha256) {
            return Err(ListError::NoContent(sha256.chars().take(80).collect()));
        }
        let mut f = std::fs::File::open(self.dir.join(blob_name(sha256)))
            .map_err(|_| ListError::NoContent(sha256.to_string()))?;
        let total = f.metadata()?.len();
        if offset > total {
            return Err(ListError::Offset { offset, total });
        }
        f.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::with_capacity(len.min((total - offset) as usize));
        f.take(len as u64).read_to_end(&mut data)?;
        Ok((total, data))
    }

    /// The stored (gzip) form of a version, for download.
    pub fn content(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<(ListVersion, Vec<u8>), ListError> {
        let v = match version {
            None => self
                .current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .cloned()
                .ok_or_else(|| ListError::NoList(name.to_string()))?,
            Some(n) => self
                .control
                .list_versions(Some(name), usize::MAX)?
                .into_iter()
                .find(|v| v.version == n)
                .ok_or_else(|| ListError::NoList(format!("{name} v{n}")))?,
        };
        let bytes = std::fs::read(self.dir.join(blob_name(&v.sha256)))
            .map_err(|_| ListError::NoContent(v.sha256.clone()))?;
        Ok((v, bytes))
    }

    /// Set where `name` is synced from (None: no sync any more).
    pub fn set_source(
        &self,
        name: &str,
        source: Option<SourceSpec>,
        by: &str,
    ) -> Result<Option<ListSource>, ListError> {
        if !valid_name(name) {
            return Err(ListError::Name(name.chars().take(80).collect()));
        }
        let Some(spec) = source else {
            self.control.remove_list_source(name)?;
            return Ok(None);
        };
        let url =
            reqwest::Url::parse(&spec.url).map_err(|e| ListError::Source(format!("url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ListError::Source(
                "url: http:// or https:// with a host".into(),
            ));
        }
        spec.format
            .parse::<ListFormat>()
            .map_err(|e| ListError::Source(format!("format: {e}")))?;
        if !(60..=30 * 86_400).contains(&spec.interval_secs) {
            return Err(ListError::Source(
                "interval_secs: between 60 and 2592000".into(),
            ));
        }
        if !(0.0..=100.0).contains(&spec.max_shrink_percent) {
            return Err(ListError::Source(
                "max_shrink_percent: between 0 and 100".into(),
            ));
        }
        let old = self.source(name)?;
        let s = ListSource {
            name: name.to_string(),
            url: spec.url,
            format: spec.format,
            interval_secs: spec.interval_secs,
            max_shrink_percent: spec.max_shrink_percent,
            last_attempt_ms: old.as_ref().and_then(|o| o.last_attempt_ms),
            last_ok_ms: old.as_ref().and_then(|o| o.last_ok_ms),
            last_error: old.and_then(|o| o.last_error),
            updated_ms: crate::state::now_ms(),
            updated_by: by.to_string(),
        };
        self.control.set_list_source(&s)?;
        Ok(Some(s))
    }

    pub fn source(&self, name: &str) -> Result<Option<ListSource>, ListError> {
        Ok(self
            .control
            .list_sources()?
            .into_iter()
            .find(|s| s.name == name))
    }

    /// Sources whose interval has passed since their last attempt.
    pub fn due(&self, now_ms: u64) -> Result<Vec<ListSource>, ListError> {
        Ok(self
            .control
            .list_sources()?
            .into_iter()
            .filter(|s| {
                s.last_attempt_ms
                    .is_none_or(|t| now_ms.saturating_sub(t) >= s.interval_secs * 1000)
            })
            .collect())
    }

    /// Download `name`'s source and store it (held when it shrank). The
    /// attempt, success and error are recorded on the source.
    pub async fn sync(self: &Arc<Self>, name: &str, by: &str) -> Result<Outcome, ListError> {
        let Some(mut src) = self.source(name)? else {
            return Err(ListError::Source(format!(
                "list {name:?} has no source URL"
            )));
        };
        let started = crate::state::now_ms();
        src.last_attempt_ms = Some(started);
        let result = self.download(&src).await;
        let result = match result {
            Ok(body) => {
                let me = self.clone();
                let (n, f, u, shrink) = (
                    name.to_string(),
                    src.format.clone(),
                    src.url.clone(),
                    src.max_shrink_percent,
                );
                let by = by.to_string();
                tokio::task::spawn_blocking(move || {
                    let format = f.parse::<ListFormat>().unwrap_or(ListFormat::Auto);
                    me.store(&n, &body, format, "sync", &by, &u, Some(shrink))
                })
                .await
                .map_err(|e| ListError::Sync {
                    name: name.to_string(),
                    message: e.to_string(),
                })
                .and_then(|r| r)
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(o) => {
                src.last_ok_ms = Some(crate::state::now_ms());
                src.last_error = o
                    .version
                    .hold_reason
                    .clone()
                    .filter(|_| o.version.state == "held");
                metrics::counter!("simpul_list_syncs_total", "result" => "ok").increment(1);
            }
            Err(e) => {
                src.last_error = Some(e.to_string());
                metrics::counter!("simpul_list_syncs_total", "result" => "error").increment(1);
                tracing::warn!(list = name, error = %e, "list sync failed; the version in force stays");
            }
        }
        // The source may have been edited meanwhile: keep its settings.
        if let Ok(Some(mut now)) = self.source(name) {
            now.last_attempt_ms = src.last_attempt_ms;
            now.last_ok_ms = src.last_ok_ms;
            now.last_error = src.last_error.clone();
            self.control.set_list_source(&now)?;
        }
        result
    }

    async fn download(&self, src: &ListSource) -> Result<Vec<u8>, ListError> {
        let fail = |message: String| ListError::Sync {
            name: src.name.clone(),
            message,
        };
        let client = crate::notify::http::client(
            "policy.lists",
            self.config.sync_timeout_secs.max(1),
            None,
            None,
        )
        .map_err(|e| fail(e.to_string()))?;
        let mut resp = client
            .get(&src.url)
            .send()
            .await
            .map_err(|e| fail(crate::notify::http::with_causes(e)))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let limit = self.config.max_bytes.max(self.config.max_upload_bytes);
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fail(crate::notify::http::with_causes(e)))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(ListError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Write the gzip of `text` as `<sha256>.gz` unless it is there.
    fn write_blob(&self, sha256: &str, text: &[u8]) -> Result<u64, ListError> {
        let path = self.dir.join(blob_name(sha256));
        if let Ok(m) = std::fs::metadata(&path) {
            return Ok(m.len());
        }
        let tmp = self.dir.join(format!(".{sha256}.tmp"));
        let f = std::fs::File::create(&tmp)?;
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(f),
            flate2::Compression::default(),
        );
        gz.write_all(text)?;
        let f = gz
            .finish()?
            .into_inner()
            .map_err(|e| ListError::Io(e.into_error()))?;
        f.sync_all()?;
        let len = f.metadata()?.len();
        std::fs::rename(&tmp, &path)?;
        Ok(len)
    }
}

/// A source as an administrator sets it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub url: String,
    #[serde(default = "auto")]
    pub format: String,
    #[serde(default = "daily")]
    pub interval_secs: u64,
    #[serde(default = "twenty")]
    pub max_shrink_percent: f64,
}

fn auto() -> String {
    "auto".into()
}
fn daily() -> u64 {
    86_400
}
fn twenty() -> f64 {
    20.0
}

pub fn blob_name(sha256: &str) -> String {
    format!("{sha256}.gz")
}

/// Undo gzip, refusing more than `limit` bytes of output (a gzip bomb).
fn gunzip(body: &[u8], limit: u64) -> Result<Vec<u8>, ListError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| ListError::Gzip(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(ListError::TooLarge { limit });
    }
    Ok(out)
}

/// How often due sources are looked at.
pub const SYNC_CHECK: Duration = Duration::from_secs(30);
