//! The control thread against the messages a collector sends: the pinned
//! key, signature checks, replays, validation against the inventory, and
//! what is kept across a restart. Nothing touches the kernel here (no
//! enforcer); the kernel side is tested in namespaces (tests/tests/).

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use simpul_agent::control::{Control, ControlSettings, Source};
use simpul_agent::link::{FromCollector, HealthState, LinkControl};
use simpul_core::signing::Signer;
use simpul_proto::policy::Policy;
use simpul_proto::wire::PolicyOutcome;
use simpul_proto::Inventory;

const INVENTORY: &str = r#"
version = 4
intranet = ["10.99.0.0/16"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.1.0/24"]
[[nodes]]
id = "dinkes-01"
agency = "dinkes"
uplink = { down_bps = 50000000, up_bps = 50000000 }
"#;

fn policy(version: u64, extra: &str) -> Policy {
    let mut p = Policy::parse(&format!(
        "agency = \"dinkes\"\n[allocation]\ndownload = {{ rate_bps = 10000000, ceil_bps = 20000000 }}\nupload = {{ rate_bps = 10000000, ceil_bps = 20000000 }}\n{extra}[blocking]\ndomains = [\"judi.example\"]\n"
    ))
    .unwrap();
    p.version = version;
    p
}

struct Harness {
    control: Option<Control>,
    inbox: crossbeam_channel::Sender<FromCollector>,
    link: Arc<LinkControl>,
    health: Arc<HealthState>,
}

fn start(state: &std::path::Path) -> Harness {
    let (tx, rx) = crossbeam_channel::bounded(16);
    let link = Arc::new(LinkControl::default());
    let health = Arc::new(HealthState::new());
    let control = Control::start(
        ControlSettings {
            node_id: "dinkes-01".into(),
            state_dir: state.to_owned(),
            enforcer: None,
            always_allow: vec![],
            health: health.clone(),
            link: Some(link.clone()),
        },
        Source::Collector { inbox: rx },
    )
    .unwrap();
    Harness {
        control: Some(control),
        inbox: tx,
        link,
        health,
    }
}

impl Harness {
    fn send(&self, m: FromCollector) {
        self.inbox.send(m).unwrap();
    }

    /// The next policy state reported to the collector.
    fn report(&self) -> simpul_proto::wire::PolicyState {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let mut v = self.link.take_states();
            if !v.is_empty() {
                return v.remove(0);
            }
            assert!(Instant::now() < end, "no policy state reported");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_policy_version(&self, v: u64) {
        let end = Instant::now() + Duration::from_secs(5);
        while self
            .health
            .policy_version
            .load(std::sync::atomic::Ordering::Relaxed)
            != v
        {
            assert!(Instant::now() < end, "policy {v} not in force");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(mut self) {
        if let Some(c) = self.control.take() {
            c.stop();
        }
    }
}

#[test]
fn signed_policies_are_verified_replays_refused_and_the_last_good_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Signer::from_pkcs8(&Signer::generate_pkcs8().unwrap()).unwrap();
    let h = start(tmp.path());
    let in_force = h.control.as_ref().unwrap().in_force();
    assert!(in_force.current().node.is_none(), "no inventory yet");

    // A policy before the key is pinned cannot be trusted.
    h.send(FromCollector::Policy(signer.sign(&policy(1, ""))));
    let r = h.report();
    assert_eq!(r.state, PolicyOutcome::Rejected);
    assert!(r.error.unwrap().contains("no collector policy key"));

    h.send(FromCollector::PolicyKey(signer.public_key()));
    h.send(FromCollector::Inventory(
        Inventory::parse(INVENTORY).unwrap(),
    ));
    h.send(FromCollector::Policy(signer.sign(&policy(2, ""))));
    let r = h.report();
    assert_eq!((r.version, r.state), (2, PolicyOutcome::Applied), "{r:?}");
    h.wait_policy_version(2);
    let snap = in_force.current();
    assert_eq!(snap.node.as_ref().unwrap().inventory_version, 4);
    let matcher = snap.matcher.expect("rules in force");
    assert!(matcher
        .check_name("www.judi.example", simpul_proto::BlockMethod::Sni)
        .is_some());
    assert_eq!(h.link.versions(), (4, 2));

    // Signed by another key: refused, the version in force stays.
    let other = Signer::from_pkcs8(&Signer::generate_pkcs8().unwrap()).unwrap();
    h.send(FromCollector::Policy(other.sign(&policy(3, ""))));
    let r = h.report();
    assert_eq!((r.version, r.state), (3, PolicyOutcome::Rejected));
    assert!(
        r.error.as_deref().unwrap_or("").contains("signed by key"),
        "{r:?}"
    );
    // A forged body under the right key id.
    let mut forged = signer.sign(&policy(3, ""));
    forged.policy_json = forged.policy_json.replace("judi.example", "other.example");
    h.send(FromCollector::Policy(forged));
    assert_eq!(h.report().state, PolicyOutcome::Rejected);
    // An older version (a replay) is refused; the same one again is applied.
    h.send(FromCollector::Policy(signer.sign(&policy(1, ""))));
    let r = h.report();
    assert_eq!((r.version, r.state), (1, PolicyOutcome::Rejected));
    assert!(r.error.unwrap().contains("replay"));
    h.send(FromCollector::Policy(signer.sign(&policy(2, ""))));
    assert_eq!(h.report().state, PolicyOutcome::Applied);
    // A valid signature on a policy the inventory does not allow: every
    // problem reported, nothing changes.
    let bad = policy(
        3,
        "[allocation.units.zz]\ndownload = { rate_bps = 1, ceil_bps = 1 }\nupload = { rate_bps = 1, ceil_bps = 1 }\n",
    );
    h.send(FromCollector::Policy(signer.sign(&bad)));
    let r = h.report();
    assert_eq!((r.version, r.state), (3, PolicyOutcome::Rejected));
    assert_eq!(r.problems[0].place, "allocation.units.zz");
    h.wait_policy_version(2);
    h.stop();

    // A restart enforces what was kept, before any collector is reachable.
    let h = start(tmp.path());
    let snap = h.control.as_ref().unwrap().in_force().current();
    assert_eq!(snap.node.as_ref().unwrap().inventory_version, 4);
    assert_eq!(snap.matcher.as_ref().map(|m| m.version), Some(2));
    assert_eq!(h.link.versions(), (4, 2));
    // The kept policy is checked again: a tampered file is not trusted.
    h.stop();
    let kept = tmp.path().join(simpul_agent::control::SIGNED_POLICY_FILE);
    let text = std::fs::read_to_string(&kept).unwrap();
    std::fs::write(&kept, text.replace("judi.example", "x.example")).unwrap();
    let h = start(tmp.path());
    let snap = h.control.as_ref().unwrap().in_force().current();
    assert!(snap.matcher.is_none(), "a tampered kept policy is refused");
    h.stop();
}
