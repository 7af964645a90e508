//! Which channels hear a notification: every route that matches adds its
//! channels. Pure, evaluated at enqueue time against a given clock.

use std::collections::BTreeSet;

use super::config::{Invalid, NotifyConfig, StateName, WindowConfig};
use super::{Notification, NotifyState, Severity};

/// The compiled routes.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    channels: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Route {
    min_severity: Severity,
    agencies: BTreeSet<String>,
    kinds: BTreeSet<String>,
    states: BTreeSet<StateName>,
    escalation_levels: BTreeSet<u32>,
    window: Option<Window>,
    channels: Vec<String>,
}

/// A local time window, parsed: proto's weekly window at an offset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Window {
    window: simpul_proto::time_window::Window,
    offset: simpul_proto::time_window::UtcOffset,
}

impl Window {
    pub(crate) fn parse(w: &WindowConfig, default_offset: &str) -> Result<Window, String> {
        use simpul_proto::time_window::{TimeOfDay, UtcOffset};
        let offset = w.utc_offset.as_deref().unwrap_or(default_offset);
        Ok(Window {
            window: simpul_proto::time_window::Window {
                days: w.days.clone(),
                from: TimeOfDay::parse(&w.from)?,
                to: TimeOfDay::parse(&w.to)?,
            },
            offset: UtcOffset::parse(offset)?,
        })
    }

    pub(crate) fn contains(&self, now_ms: u64) -> bool {
        self.window
            .contains_at(self.offset, i64::try_from(now_ms).unwrap_or(i64::MAX))
    }
}

impl Router {
    /// Compile `cfg`'s routes (validation happens in `NotifyConfig::check`;
    /// this repeats only what parsing needs).
    pub fn new(cfg: &NotifyConfig) -> Result<Router, Invalid> {
        let mut routes = Vec::new();
        for (i, r) in cfg.routes.iter().enumerate() {
            let window = match &r.window {
                Some(w) => Some(
                    Window::parse(w, &cfg.utc_offset)
                        .map_err(|m| (format!("notify.routes[{i}].window"), m))?,
                ),
                None => None,
            };
            routes.push(Route {
                min_severity: r.min_severity,
                agencies: r.agencies.iter().cloned().collect(),
                kinds: r.kinds.iter().cloned().collect(),
                states: r.states.iter().copied().collect(),
                escalation_levels: r.escalation_levels.iter().copied().collect(),
                window,
                channels: r.channels.clone(),
            });
        }
        Ok(Router {
            routes,
            channels: cfg
                .channel_names()
                .into_iter()
                .map(|(n, _)| n.to_string())
                .collect(),
        })
    }

    pub fn has_channel(&self, name: &str) -> bool {
        self.channels.contains(name)
    }

    /// The channels `n` goes to by the routes, at `now_ms` (for windows).
    pub fn channels_for(&self, n: &Notification, now_ms: u64) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for r in &self.routes {
            if r.matches(n, now_ms) {
                out.extend(r.channels.iter().cloned());
            }
        }
        out
    }
}

impl Route {
    fn matches(&self, n: &Notification, now_ms: u64) -> bool {
        if n.severity < self.min_severity {
            return false;
        }
        if !self.agencies.is_empty() && !self.agencies.contains(&n.agency) {
            return false;
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&n.kind) {
            return false;
        }
        if !self.states.contains(&n.state.name()) {
            return false;
        }
        if let NotifyState::Escalated { level } = n.state {
            if !self.escalation_levels.is_empty() && !self.escalation_levels.contains(&level) {
                return false;
            }
        }
        self.window.as_ref().is_none_or(|w| w.contains(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-05-06 was a Monday; 00:00 WIB that day, in ms.
    const MON_0000_WIB: u64 = (1_714_953_600 - 7 * 3600) * 1000;

    fn at(day: u64, h: u64, m: u64) -> u64 {
        MON_0000_WIB + ((day * 24 + h) * 60 + m) * 60_000
    }

    fn n(sev: Severity, agency: &str, state: NotifyState) -> Notification {
        Notification {
            incident_id: 1,
            state,
            severity: sev,
            agency: agency.into(),
            node: Some("n1".into()),
            kind: "node_down".into(),
            title: "t".into(),
            body: String::new(),
            labels: Default::default(),
            starts_at_ms: 0,
            ends_at_ms: None,
        }
    }

    fn router(toml_routes: &str) -> Router {
        let text = format!(
            r#"
[notify.webhook.noc]
url = "http://h/noc"
[notify.webhook.dinkes]
url = "http://h/dinkes"
[notify.webhook.malam]
url = "http://h/malam"
[notify.webhook.kabid]
url = "http://h/kabid"
[notify.webhook.kadis]
url = "http://h/kadis"
{toml_routes}"#
        );
        #[derive(serde::Deserialize)]
        struct F {
            notify: NotifyConfig,
        }
        let f: F = toml::from_str(&text).unwrap();
        f.notify.check().unwrap();
        Router::new(&f.notify).unwrap()
    }

    fn names(s: BTreeSet<String>) -> Vec<String> {
        s.into_iter().collect()
    }

    #[test]
    fn notify_route_by_severity_and_agency() {
        let r = router(
            r#"
[[notify.routes]]
min_severity = "major"
channels = ["noc"]
[[notify.routes]]
agencies = ["dinkes"]
channels = ["dinkes"]
"#,
        );
        let now = at(0, 10, 0);
        let f = NotifyState::Firing;
        assert_eq!(
            names(r.channels_for(&n(Severity::Critical, "dinkes", f), now)),
            ["dinkes", "noc"]
        );
        assert_eq!(
            names(r.channels_for(&n(Severity::Major, "bappeda", f), now)),
            ["noc"]
        );
        assert_eq!(
            names(r.channels_for(&n(Severity::Minor, "dinkes", f), now)),
            ["dinkes"]
        );
        assert!(r
            .channels_for(&n(Severity::Info, "bappeda", f), now)
            .is_empty());
        // Escalations only go to routes listing "escalated".
        assert!(r
            .channels_for(
                &n(
                    Severity::Critical,
                    "bappeda",
                    NotifyState::Escalated { level: 1 }
                ),
                now
            )
            .is_empty());
    }

    #[test]
    fn notify_route_by_time_window() {
        let r = router(
            r#"
[[notify.routes]]
channels = ["noc"]
window = { days = ["mon", "tue", "wed", "thu", "fri"], from = "07:30", to = "16:00" }
[[notify.routes]]
channels = ["malam"]
window = { days = ["fri"], from = "22:00", to = "06:00", utc_offset = "+07:00" }
[[notify.routes]]
channels = ["dinkes"]
window = { from = "12:00", to = "13:00", utc_offset = "+08:00" }
"#,
        );
        let x = n(Severity::Major, "a", NotifyState::Firing);
        let ch = |t| names(r.channels_for(&x, t));
        assert_eq!(ch(at(0, 7, 29)), Vec::<String>::new());
        assert_eq!(ch(at(0, 7, 30)), ["noc"]);
        assert_eq!(ch(at(0, 15, 59)), ["noc"]);
        assert_eq!(ch(at(0, 16, 0)), Vec::<String>::new());
        // Saturday daytime: no office route.
        assert_eq!(ch(at(5, 10, 0)), Vec::<String>::new());
        // Friday 23:00 and Saturday 05:59 are the Friday night shift;
        // Friday 05:00 is Thursday's night, which is not listed.
        assert_eq!(ch(at(4, 23, 0)), ["malam"]);
        assert_eq!(ch(at(5, 5, 59)), ["malam"]);
        assert_eq!(ch(at(5, 6, 0)), Vec::<String>::new());
        assert_eq!(ch(at(4, 5, 0)), Vec::<String>::new());
        // 12:00–13:00 WITA is 11:00–12:00 WIB, every day.
        assert_eq!(ch(at(2, 10, 59)), ["noc"]);
        assert_eq!(ch(at(2, 11, 0)), ["dinkes", "noc"]);
        assert_eq!(ch(at(5, 11, 59)), ["dinkes"]);
        assert_eq!(ch(at(5, 12, 0)), Vec::<String>::new());
    }

    #[test]
    fn notify_route_escalation_levels() {
        let r = router(
            r#"
[[notify.routes]]
channels = ["noc"]
[[notify.routes]]
states = ["escalated"]
escalation_levels = [1]
channels = ["kabid"]
[[notify.routes]]
states = ["escalated"]
escalation_levels = [2]
channels = ["kadis", "kabid"]
[[notify.routes]]
kinds = ["flapping"]
states = ["firing"]
channels = ["malam"]
"#,
        );
        let now = at(0, 3, 0);
        let esc = |l| n(Severity::Critical, "a", NotifyState::Escalated { level: l });
        assert_eq!(names(r.channels_for(&esc(1), now)), ["kabid"]);
        assert_eq!(names(r.channels_for(&esc(2), now)), ["kabid", "kadis"]);
        assert!(r.channels_for(&esc(3), now).is_empty());
        let fire = n(Severity::Info, "a", NotifyState::Firing);
        assert_eq!(names(r.channels_for(&fire, now)), ["noc"]);
        let flap = Notification {
            kind: "flapping".into(),
            ..fire.clone()
        };
        assert_eq!(names(r.channels_for(&flap, now)), ["malam", "noc"]);
        let resolved = Notification {
            state: NotifyState::Resolved,
            ..flap
        };
        assert_eq!(names(r.channels_for(&resolved, now)), ["noc"]);
    }

    #[test]
    fn notify_severity_order() {
        assert!(Severity::Critical > Severity::Major);
        assert!(Severity::Major > Severity::Minor);
        assert!(Severity::Minor > Severity::Info);
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            "\"critical\""
        );
    }
}
