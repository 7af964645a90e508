//! The previous month's reports, made once the month is over (on the 1st,
//! in the NOC's time zone: `notify.utc_offset`), kept in
//! `data_dir/reports/YYYY-MM/` (PDF, CSV and JSON for the province and
//! every agency) and mailed through a `[notify.email.*]` channel: the
//! province's PDF to `recipients`, each agency's to its
//! `agency_recipients`. A collector that was down on the 1st catches up
//! when it starts; a failed delivery is tried again every half hour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use simpul_proto::Problem;

use super::{assemble, file_name, gather, Lang, Month, Report};
use crate::notify::email::{Attachment, Email};
use crate::state::AppState;

/// `[reports]` of collector.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportsConfig {
    /// Make the previous month's reports on the 1st.
    pub enabled: bool,
    /// Who gets the province's report (e-mail addresses).
    pub recipients: Vec<String>,
    /// Who gets an agency's report, by agency code.
    pub agency_recipients: BTreeMap<String, Vec<String>>,
    /// The `[notify.email.NAME]` channel that sends them (its server and
    /// sender); default: the only e-mail channel there is.
    pub email_channel: Option<String>,
    /// `id` or `en`.
    pub language: String,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            enabled: true,
            recipients: Vec::new(),
            agency_recipients: BTreeMap::new(),
            email_channel: None,
            language: "id".into(),
        }
    }
}

impl ReportsConfig {
    fn wants_mail(&self) -> bool {
        !self.recipients.is_empty() || self.agency_recipients.values().any(|v| !v.is_empty())
    }

    /// The e-mail channel's name, if mail is wanted and there is one.
    fn channel<'a>(&'a self, notify: &'a crate::notify::NotifyConfig) -> Option<&'a str> {
        match &self.email_channel {
            Some(c) => Some(c.as_str()),
            None if notify.email.len() == 1 => notify.email.keys().next().map(String::as_str),
            None => None,
        }
    }

    /// Every problem, with its place.
    pub fn problems(&self, notify: &crate::notify::NotifyConfig) -> Vec<Problem> {
        let mut out = Vec::new();
        if Lang::parse(&self.language).is_none() {
            out.push(Problem::new(
                "reports.language",
                format!("{:?} is not id or en", self.language),
            ));
        }
        let addresses = self
            .recipients
            .iter()
            .map(|a| ("reports.recipients".to_string(), a))
            .chain(self.agency_recipients.iter().flat_map(|(code, list)| {
                list.iter()
                    .map(move |a| (format!("reports.agency_recipients.{code}"), a))
            }));
        for (place, a) in addresses {
            if a.parse::<lettre::message::Mailbox>().is_err() {
                out.push(Problem::new(
                    place,
                    format!("{a:?} is not an e-mail address"),
                ));
            }
        }
        for code in self.agency_recipients.keys() {
            if !crate::config::valid_code(code) {
                out.push(Problem::new(
                    "reports.agency_recipients",
                    format!("{code:?} is not an agency code"),
                ));
            }
        }
        if self.wants_mail() {
            match (&self.email_channel, self.channel(notify)) {
                (Some(c), _) if !notify.email.contains_key(c) => out.push(Problem::new(
                    "reports.email_channel",
                    format!("there is no [notify.email.{c}]"),
                )),
                (None, None) => out.push(Problem::new(
                    "reports.email_channel",
                    "recipients are set: name the [notify.email.*] channel that sends the reports",
                )),
                _ => {}
            }
        }
        out
    }
}

/// Where a month's reports are kept.
pub fn month_dir(data_dir: &Path, month: Month) -> PathBuf {
    data_dir.join("reports").join(month.to_string())
}

/// Give agents this long after midnight to deliver the month's last records.
const GRACE_SECS: u64 = 10 * 60;
const RETRY: Duration = Duration::from_secs(30 * 60);

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub month: Option<String>,
    pub generated: usize,
    pub mailed: usize,
}

/// Check once a minute whether last month's reports are due.
pub async fn run(state: AppState) {
    if !state.config.reports.enabled {
        return;
    }
    // The first look a minute after the start: a collector started for a
    // moment (tests, a check) makes nothing.
    let mut interval = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        Duration::from_secs(60),
    );
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = state.shutdown.subscribe();
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.wait() => return,
        }
        if retry_at.is_some_and(|t| tokio::time::Instant::now() < t) {
            continue;
        }
        match run_once(&state, crate::state::now_secs()).await {
            Ok(p) if p.generated > 0 || p.mailed > 0 => {
                tracing::info!(month = ?p.month, generated = p.generated, mailed = p.mailed, "monthly reports");
                retry_at = None;
            }
            Ok(_) => retry_at = None,
            Err(e) => {
                tracing::warn!(error = %e, "monthly reports: will try again in 30 minutes");
                retry_at = Some(tokio::time::Instant::now() + RETRY);
            }
        }
    }
}

/// Several collectors on one control store each make the reports (their
/// dashboards serve them) but only one mails them: the one holding the
/// month's claim in the shared store. The claim lapses after
/// `MAIL_CLAIM` unless renewed (each pass of its holder renews it, and a
/// failed pass is retried within `RETRY`), so a collector that dies before
/// it has mailed leaves the month to another; once mailed, the claim is
/// kept for good (`MAILED_CLAIM`). One collector alone always mails.
async fn mails_here(state: &AppState, month: &str, ttl: Duration) -> anyhow::Result<bool> {
    let Some(holder) = state.outage.collector_id().map(str::to_owned) else {
        return Ok(true);
    };
    let control = state.control.clone();
    let name = mail_claim_name(month);
    let mine =
        tokio::task::spawn_blocking(move || control.try_lease(&name, &holder, ttl)).await??;
    if !mine {
        tracing::info!(month, "monthly reports are mailed by another collector");
    }
    Ok(mine)
}

/// The name of a month's mailing claim in the control store's leases.
fn mail_claim_name(month: &str) -> String {
    format!("{MAIL_CLAIM_PREFIX}{month}")
}

/// The month (`YYYY-MM`) a lease of that name claims, if it is a mailing claim.
pub fn mail_claim_month(lease: &str) -> Option<&str> {
    lease.strip_prefix(MAIL_CLAIM_PREFIX)
}

const MAIL_CLAIM_PREFIX: &str = "reports-mailed-";

/// How long a claim to mail a month's reports lasts unless its holder
/// renews it: longer than a failed pass's retry and a slow mailing.
const MAIL_CLAIM: Duration = Duration::from_secs(2 * 3600);
/// The claim once the month is mailed: nobody mails it again.
const MAILED_CLAIM: Duration = Duration::from_secs(400 * 86_400);

/// Make and mail last month's reports if they are due and not done yet.
pub async fn run_once(state: &AppState, now_s: u64) -> anyhow::Result<Pass> {
    let cfg = &state.config;
    let off = cfg.utc_offset().seconds();
    let month = Month::containing(now_s, off).previous();
    if now_s < month.end(off) + GRACE_SECS {
        return Ok(Pass::default());
    }
    let dir = month_dir(&cfg.storage.data_dir, month);
    let lang = Lang::parse(&cfg.reports.language).unwrap_or_default();
    let mut pass = Pass {
        month: Some(month.to_string()),
        ..Pass::default()
    };
    if !dir.join("generated").exists() {
        let s = state.clone();
        let d = dir.clone();
        pass.generated =
            tokio::task::spawn_blocking(move || generate(&s, month, now_s, &d, lang)).await??;
    }
    if !cfg.reports.wants_mail() || dir.join("mailed").exists() {
        return Ok(pass);
    }
    if !mails_here(state, &month.to_string(), MAIL_CLAIM).await? {
        return Ok(pass);
    }
    let Some(channel) = cfg.reports.channel(&cfg.notify) else {
        anyhow::bail!("no e-mail channel for the reports");
    };
    let email_cfg = cfg
        .notify
        .email
        .get(channel)
        .ok_or_else(|| anyhow::anyhow!("there is no [notify.email.{channel}]"))?;
    let email = Email::new(channel, email_cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = super::text::month_name(lang, month.year, month.month);
    let title = super::text::t(lang, "title");
    let mut sends: Vec<(Vec<String>, Option<String>)> = Vec::new();
    if !cfg.reports.recipients.is_empty() {
        sends.push((cfg.reports.recipients.clone(), None));
    }
    for (code, to) in &cfg.reports.agency_recipients {
        if !to.is_empty() {
            sends.push((to.clone(), Some(code.clone())));
        }
    }
    // Which deliveries are done survives a failure half-way.
    let done_file = dir.join("mailed.partial");
    let done: Vec<String> = std::fs::read_to_string(&done_file)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    for (to, agency) in sends {
        let key = agency.clone().unwrap_or_else(|| "province".into());
        if done.contains(&key) {
            continue;
        }
        let file = match &agency {
            Some(a) => format!(
                "simpul-{}-{month}-{a}.pdf",
                super::text::t(lang, "report_file")
            ),
            None => format!(
                "simpul-{}-{month}-{}.pdf",
                super::text::t(lang, "report_file"),
                super::text::t(lang, "province_file")
            ),
        };
        let bytes = match std::fs::read(dir.join(&file)) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file, error = %e, "monthly report missing: not mailed");
                continue;
            }
        };
        let scope = agency
            .clone()
            .unwrap_or_else(|| super::text::t(lang, "province").to_string());
        let subject = format!("{title} {name} - {scope}");
        let body = match lang {
            Lang::Id => format!(
                "Terlampir {title} {name} ({scope}) dari NOC.\nDibuat otomatis oleh Simpul; juga tersedia di dasbor (Laporan).\n"
            ),
            Lang::En => format!(
                "Attached: the {title} for {name} ({scope}) from the NOC.\nMade by Simpul; also on the dashboard (Reports).\n"
            ),
        };
        email
            .send_files(
                &to,
                &subject,
                &body,
                vec![Attachment {
                    name: file,
                    content_type: "application/pdf",
                    bytes,
                }],
            )
            .await
            .map_err(|e| anyhow::anyhow!("mailing the {key} report: {e}"))?;
        pass.mailed += 1;
        let mut all = std::fs::read_to_string(&done_file).unwrap_or_default();
        all.push_str(&key);
        all.push('\n');
        std::fs::write(&done_file, all)?;
    }
    // Mailed: the claim is kept for good before this collector stops
    // asking (the marker below); should keeping it fail, the next pass
    // mails nothing again (`mailed.partial`) and keeps it then.
    if !mails_here(state, &month.to_string(), MAILED_CLAIM).await? {
        tracing::warn!(%month, "monthly reports mailed here while another collector held the claim");
    }
    std::fs::write(dir.join("mailed"), crate::state::now_ms().to_string())?;
    Ok(pass)
}

/// Write the province's and every agency's report of `month` into `dir`.
fn generate(
    s: &AppState,
    month: Month,
    now_s: u64,
    dir: &Path,
    lang: Lang,
) -> anyhow::Result<usize> {
    crate::store::private_dir(dir)?;
    let inv = s.inventory.current();
    let mut scopes: Vec<Option<String>> = vec![None];
    scopes.extend(inv.agencies.iter().map(|a| Some(a.code.clone())));
    let mut n = 0;
    for scope in scopes {
        let report = assemble(&gather(s, month, scope.as_deref(), now_s)?);
        write_all(dir, &report, lang)?;
        n += 1;
    }
    std::fs::write(dir.join("generated"), crate::state::now_ms().to_string())?;
    Ok(n)
}

fn write_all(dir: &Path, r: &Report, lang: Lang) -> anyhow::Result<()> {
    std::fs::write(
        dir.join(file_name(r, lang, "pdf")),
        super::pdf::write(r, lang),
    )?;
    std::fs::write(dir.join(file_name(r, lang, "csv")), super::csv::write(r))?;
    std::fs::write(
        dir.join(file_name(r, lang, "json")),
        serde_json::to_vec_pretty(r)?,
    )?;
    Ok(())
}
