//! One suite, two backends: each control/access check runs on a real
//! SQLite file and on a private PostgreSQL (server.rs). PostgreSQL missing
//! is a failure with the reason, never a skip.

use std::sync::Arc;
use std::time::Duration;

use simpul_proto::wire::PolicyOutcome;

use super::server::TempPostgres;
use super::{ControlBackend, PgStore, PostgresConfig};
use crate::auth::Role;
use crate::store::access::{AuditCheck, AuditFilter, NewApiToken, NewAudit, NewSession, User};
use crate::store::traits::{
    AccessStore, ControlStore, DefaultPolicyVersion, ListSource, ListVersion, NodePolicyState,
    PolicyVersion,
};
use crate::store::{
    AuthError, IncidentFilter, Maintenance, NewIncident, NodeSpan, NodeStatus, Store, StoreConfig,
    StoreError,
};

trait Both: ControlStore + AccessStore {}
impl<T: ControlStore + AccessStore> Both for T {}

fn inventory(extra_unit: bool) -> simpul_proto::Inventory {
    let mut text = String::from(
        "[[agencies]]\ncode = \"dinkes\"\nname = \"Dinas Kesehatan\"\n\
         [[agencies.units]]\ncode = \"sekretariat\"\nname = \"Sekretariat\"\n",
    );
    if extra_unit {
        text.push_str("[[agencies.units]]\ncode = \"p2p\"\nname = \"Bidang P2P\"\n");
    }
    text.push_str("[[agencies]]\ncode = \"diskominfo\"\nname = \"Diskominfo\"\n");
    simpul_proto::Inventory::parse(&text).unwrap()
}

fn postgres() -> TempPostgres {
    TempPostgres::start()
        .unwrap_or_else(|e| panic!("the PostgreSQL control store tests need PostgreSQL: {e}"))
}

fn pg_store(server: &TempPostgres, db: &str) -> PgStore {
    let url = server.database(db).unwrap_or_else(|e| panic!("{e}"));
    open_pg(&url)
}

fn open_pg(url: &str) -> PgStore {
    PgStore::open(&PostgresConfig {
        backend: ControlBackend::Postgres,
        url: url.to_string(),
        ..PostgresConfig::default()
    })
    .unwrap()
}

/// Run `check` on a fresh SQLite store and a fresh PostgreSQL store.
fn on_both(check: impl Fn(&dyn Both)) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), StoreConfig::default()).unwrap();
    check(&sqlite);
    let server = postgres();
    check(&pg_store(&server, "suite"));
}

#[test]
fn enrollment_and_authentication_on_both_backends() {
    on_both(|s| {
        let saved = s.save_inventory(&inventory(false), 1).unwrap();
        assert_eq!(saved.version, 1);
        let hour = Duration::from_secs(3600);
        let token = s
            .create_enrollment_token("dinkes", "dinkes-01", hour)
            .unwrap();
        assert!(matches!(
            s.enroll("dinkes-02", &token),
            Err(AuthError::TokenForOtherNode)
        ));
        let (credential, agency) = s.enroll("dinkes-01", &token).unwrap();
        assert_eq!(agency, "dinkes");
        assert!(matches!(
            s.enroll("dinkes-01", &token),
            Err(AuthError::TokenUsed)
        ));
        assert!(matches!(
            s.enroll("dinkes-01", &"00".repeat(32)),
            Err(AuthError::UnknownToken)
        ));
        let expired = s
            .create_enrollment_token("dinkes", "dinkes-03", Duration::ZERO)
            .unwrap();
        assert!(matches!(
            s.enroll("dinkes-03", &expired),
            Err(AuthError::TokenExpired)
        ));
        assert_eq!(s.authenticate("dinkes-01", &credential).unwrap(), "dinkes");
        assert!(matches!(
            s.authenticate("dinkes-01", &token),
            Err(AuthError::BadCredential(_))
        ));
        assert!(matches!(
            s.authenticate("dinkes-09", &credential),
            Err(AuthError::UnknownNode(_))
        ));

        let nodes = s.nodes(std::time::SystemTime::now(), hour).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].status, NodeStatus::Never);
        let seen = std::time::SystemTime::now();
        s.node_seen("dinkes-01", "10.0.0.5:4000", "0.1.0", "pc-01", None, seen)
            .unwrap();
        // last_seen never moves backwards.
        s.node_seen(
            "dinkes-01",
            "10.0.0.5:4000",
            "0.1.0",
            "pc-01",
            None,
            seen - hour,
        )
        .unwrap();
        let nodes = s.nodes(seen, Duration::from_secs(30)).unwrap();
        assert_eq!(nodes[0].status, NodeStatus::Up);
        assert_eq!(nodes[0].hostname.as_deref(), Some("pc-01"));
        let later = s.nodes(seen + hour, Duration::from_secs(30)).unwrap();
        assert_eq!(later[0].status, NodeStatus::Down);
        assert!(matches!(
            s.node_seen("ghost", "", "", "", None, seen),
            Err(StoreError::UnknownNode(_))
        ));

        let pending = s
            .create_enrollment_token("dinkes", "dinkes-01", hour)
            .unwrap();
        s.revoke_node("dinkes-01").unwrap();
        assert!(matches!(
            s.authenticate("dinkes-01", &credential),
            Err(AuthError::Revoked(_))
        ));
        assert!(matches!(
            s.enroll("dinkes-01", &pending),
            Err(AuthError::UnknownToken)
        ));
        let token = s
            .create_enrollment_token("dinkes", "dinkes-01", hour)
            .unwrap();
        let (second, _) = s.enroll("dinkes-01", &token).unwrap();
        assert!(s.authenticate("dinkes-01", &credential).is_err());
        assert_eq!(s.authenticate("dinkes-01", &second).unwrap(), "dinkes");
        assert!(matches!(
            s.create_enrollment_token("nope", "x-01", hour),
            Err(StoreError::UnknownAgency(_))
        ));
        assert!(matches!(
            s.create_enrollment_token("dinkes", "bad id/..", hour),
            Err(StoreError::Invalid { .. })
        ));
        assert!(matches!(
            s.revoke_node("ghost"),
            Err(StoreError::UnknownNode(_))
        ));
    });
}

#[test]
fn inventory_versions_on_both_backends() {
    on_both(|s| {
        assert!(s.latest_inventory().unwrap().is_none());
        assert_eq!(s.save_inventory(&inventory(false), 1).unwrap().version, 1);
        // Same content: no new version.
        assert_eq!(s.save_inventory(&inventory(false), 2).unwrap().version, 1);
        let v2 = s.save_inventory(&inventory(true), 3).unwrap();
        assert_eq!(v2.version, 2);
        let latest = s.latest_inventory().unwrap().unwrap();
        assert_eq!(latest, v2);
        assert_eq!(latest.agencies[0].units.len(), 2);
    });
}

fn policy(agency: &str, version: u64, default_version: u64) -> PolicyVersion {
    PolicyVersion {
        agency: agency.into(),
        version,
        policy_json: format!("{{\"agency\":\"{agency}\",\"version\":{version}}}"),
        signature: vec![version as u8; 64],
        key_id: "k1".into(),
        created_ms: 1000 + version,
        created_by: "admin".into(),
        comment: format!("v{version}"),
        document: Some("{}".into()),
        default_version,
    }
}

#[test]
fn policies_on_both_backends() {
    on_both(|s| {
        let default = DefaultPolicyVersion {
            version: 1,
            document: "{\"dns\":true}".into(),
            created_ms: 5,
            created_by: "admin".into(),
            comment: "first".into(),
        };
        s.save_policies(
            Some(&default),
            &[policy("dinkes", 1, 1), policy("diskominfo", 1, 1)],
        )
        .unwrap();
        s.save_policy(&policy("dinkes", 2, 1)).unwrap();
        s.save_policy(&policy("dinkes", 3, 1)).unwrap();
        // A taken version fails the whole save: the new default is not kept.
        let default2 = DefaultPolicyVersion {
            version: 2,
            ..default.clone()
        };
        assert!(s
            .save_policies(
                Some(&default2),
                &[policy("diskominfo", 2, 2), policy("dinkes", 3, 2)]
            )
            .is_err());
        assert_eq!(s.default_policies(10).unwrap(), vec![default.clone()]);
        let latest = s.latest_policies().unwrap();
        assert_eq!(
            latest,
            vec![policy("dinkes", 3, 1), policy("diskominfo", 1, 1)]
        );
        let versions = s.policy_versions("dinkes", 2).unwrap();
        assert_eq!(
            versions,
            vec![policy("dinkes", 3, 1), policy("dinkes", 2, 1)]
        );
        assert_eq!(
            s.policy_version("dinkes", 2).unwrap(),
            Some(policy("dinkes", 2, 1))
        );
        assert_eq!(s.policy_version("dinkes", 9).unwrap(), None);

        let state = NodePolicyState {
            node_id: "dinkes-01".into(),
            version: 3,
            state: PolicyOutcome::Rejected,
            problems: vec![],
            error: Some("signature".into()),
            at_ms: 77,
        };
        s.set_node_policy_state(&state).unwrap();
        let applied = NodePolicyState {
            state: PolicyOutcome::Applied,
            error: None,
            ..state.clone()
        };
        s.set_node_policy_state(&applied).unwrap();
        assert_eq!(s.node_policy_states().unwrap(), vec![applied]);
    });
}

fn list(version: u64, state: &str) -> ListVersion {
    ListVersion {
        name: "judi".into(),
        version,
        sha256: format!("{version:064x}"),
        domains: 100 * version,
        stored_bytes: 10,
        lines: 100 * version,
        invalid: 1,
        state: state.into(),
        hold_reason: (state == "held").then(|| "shrunk".into()),
        origin: "upload".into(),
        created_ms: version,
        created_by: "admin".into(),
        comment: String::new(),
        decided_ms: None,
        decided_by: None,
    }
}

#[test]
fn lists_on_both_backends() {
    on_both(|s| {
        s.save_list_version(&list(1, "current")).unwrap();
        s.save_list_version(&list(2, "current")).unwrap();
        s.save_list_version(&list(3, "held")).unwrap();
        s.save_list_version(&list(4, "held")).unwrap();
        let states = |s: &dyn Both| -> Vec<String> {
            s.list_versions(Some("judi"), 10)
                .unwrap()
                .into_iter()
                .map(|v| v.state)
                .collect()
        };
        assert_eq!(states(s), ["held", "held", "current", "superseded"]);
        assert!(s.decide_list_version("judi", 3, true, "boss", 50).unwrap());
        assert!(!s.decide_list_version("judi", 3, false, "boss", 51).unwrap());
        assert!(s.decide_list_version("judi", 4, false, "boss", 52).unwrap());
        assert_eq!(
            states(s),
            ["discarded", "current", "superseded", "superseded"]
        );
        let open = s.open_list_versions().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].version, 3);
        assert_eq!(open[0].decided_by.as_deref(), Some("boss"));
        assert_eq!(s.list_versions(None, 2).unwrap().len(), 2);

        let mut src = ListSource {
            name: "judi".into(),
            url: "https://example.invalid/judi.txt".into(),
            format: "plain".into(),
            interval_secs: 3600,
            max_shrink_percent: 20.5,
            last_attempt_ms: None,
            last_ok_ms: None,
            last_error: None,
            updated_ms: 1,
            updated_by: "admin".into(),
        };
        s.set_list_source(&src).unwrap();
        src.last_error = Some("timeout".into());
        src.last_attempt_ms = Some(9);
        s.set_list_source(&src).unwrap();
        assert_eq!(s.list_sources().unwrap(), vec![src]);
        assert!(s.remove_list_source("judi").unwrap());
        assert!(!s.remove_list_source("judi").unwrap());
    });
}

fn user(name: &str, role: Role) -> User {
    User {
        username: name.into(),
        display_name: name.to_uppercase(),
        role,
        disabled: false,
        created_ms: 1,
        password_changed_ms: 1,
    }
}

fn session<'a>(username: &'a str, now_ms: u64, idle: Option<u64>) -> NewSession<'a> {
    NewSession {
        username,
        address: "10.0.0.1",
        user_agent: "test",
        now_ms,
        expires_ms: now_ms + 3_600_000,
        idle_ms: idle,
        token_id: None,
    }
}

#[test]
fn users_sessions_and_tokens_on_both_backends() {
    on_both(|s| {
        s.add_user(&user("ani", Role::Admin), "hash1").unwrap();
        s.add_user(&user("budi", Role::Agency("dinkes".into())), "hash2")
            .unwrap();
        assert!(matches!(
            s.add_user(&user("ani", Role::Viewer), "x"),
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(
            s.user("budi").unwrap().unwrap().0.role,
            Role::Agency("dinkes".into())
        );
        assert_eq!(s.users().unwrap().len(), 2);

        let (secret, sess) = s
            .create_session(&session("ani", 1000, Some(60_000)))
            .unwrap();
        let (found, account) = s.session(&secret).unwrap().unwrap();
        assert_eq!(found, sess);
        assert_eq!(account.unwrap().username, "ani");
        assert!(s.session("nope").unwrap().is_none());
        s.touch_session(&sess.id, 50_000).unwrap();
        s.touch_session(&sess.id, 2_000).unwrap();
        assert_eq!(s.session(&secret).unwrap().unwrap().0.last_seen_ms, 50_000);
        assert_eq!(s.sessions(Some("ani"), 100_000).unwrap().len(), 1);
        // Idle past idle_ms: no longer listed.
        assert!(s.sessions(Some("ani"), 200_000).unwrap().is_empty());

        let (_, b1) = s.create_session(&session("budi", 1000, None)).unwrap();
        assert!(s.set_password("budi", "hash3", 2000).unwrap());
        assert_eq!(s.user("budi").unwrap().unwrap().1, "hash3");
        assert!(s.sessions(Some("budi"), 3000).unwrap().is_empty());
        assert!(!s.set_password("ghost", "h", 1).unwrap());
        let (_, b2) = s.create_session(&session("budi", 4000, None)).unwrap();
        assert!(s.set_role("budi", &Role::Operator, 5000).unwrap());
        assert_eq!(s.user("budi").unwrap().unwrap().0.role, Role::Operator);
        assert!(s.sessions(Some("budi"), 6000).unwrap().is_empty());
        assert!(s.set_disabled("budi", true, 7000).unwrap());
        assert!(s.user("budi").unwrap().unwrap().0.disabled);
        assert_ne!(b1.id, b2.id);
        let (_, a2) = s.create_session(&session("ani", 8000, None)).unwrap();
        assert!(s.revoke_session(&a2.id, 9000).unwrap());
        assert!(!s.revoke_session(&a2.id, 9001).unwrap());
        // Ended over a day ago: pruned.
        assert!(s.prune_sessions(9000 + 90_000_000).unwrap() >= 3);

        let role = Role::Viewer;
        let (bearer, tok) = s
            .create_api_token(&NewApiToken {
                name: "wall",
                role: &role,
                kiosk: true,
                created_by: "ani",
                now_ms: 10,
                expires_ms: Some(99),
            })
            .unwrap();
        assert!(bearer.starts_with(&format!("spl_{}_", tok.id)));
        assert_eq!(s.api_token(&bearer).unwrap(), Some(tok.clone()));
        s.touch_api_token(&tok.id, 20).unwrap();
        assert_eq!(s.api_tokens().unwrap()[0].last_used_ms, Some(20));
        assert!(s.revoke_api_token(&tok.id, 30).unwrap());
        assert!(!s.revoke_api_token(&tok.id, 31).unwrap());
        assert_eq!(s.api_token(&bearer).unwrap().unwrap().revoked_ms, Some(30));
    });
}

fn event(n: usize) -> NewAudit {
    NewAudit {
        actor: format!("user{}", n % 3),
        address: "10.0.0.1".into(),
        action: if n.is_multiple_of(2) {
            "auth.login"
        } else {
            "node.revoke"
        }
        .into(),
        target: format!("t{n}"),
        detail: "{}".into(),
        outcome: "ok".into(),
    }
}

#[test]
fn audit_chain_on_both_backends() {
    on_both(|s| {
        for n in 0..5 {
            let e = s.append_audit(&event(n), 100 + n as u64).unwrap();
            assert_eq!(e.seq, n as u64 + 1);
        }
        let AuditCheck::Intact { rows, .. } = s.verify_audit().unwrap() else {
            panic!("chain broken");
        };
        assert_eq!(rows, 5);
        let logins = s
            .audit(&AuditFilter {
                from_ms: 0,
                to_ms: u64::MAX / 2,
                actor: None,
                action: Some("auth.".into()),
                limit: 10,
            })
            .unwrap();
        assert_eq!(logins.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 3, 1]);
        let one = s
            .audit(&AuditFilter {
                from_ms: 101,
                to_ms: 103,
                actor: Some("user1".into()),
                action: None,
                limit: 10,
            })
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].seq, 2);
    });
}

#[test]
fn postgres_audit_refuses_changes_and_the_chain_finds_them() {
    let server = postgres();
    let s = pg_store(&server, "tamper");
    for n in 0..4 {
        s.append_audit(&event(n), n as u64).unwrap();
    }
    let url = server.url_of("tamper");
    let mut raw = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let refused = raw
        .execute("UPDATE audit SET target = 'x' WHERE seq = 2", &[])
        .unwrap_err();
    assert!(
        refused.to_string().contains("append-only")
            || format!("{refused:?}").contains("append-only")
    );
    // Someone with the database's owner rights can drop the trigger; the
    // chain still tells.
    raw.batch_execute(
        "ALTER TABLE audit DISABLE TRIGGER USER; UPDATE audit SET target = 'x' WHERE seq = 2",
    )
    .unwrap();
    assert!(matches!(
        s.verify_audit().unwrap(),
        AuditCheck::Broken { seq: 2, .. }
    ));
}

/// Two collectors (two stores on one database), four threads each,
/// appending at once: one unbroken chain of every row.
#[test]
fn postgres_audit_chain_does_not_fork_between_collectors() {
    let server = postgres();
    let a = Arc::new(pg_store(&server, "shared"));
    let url = server.url_of("shared");
    let b = Arc::new(open_pg(&url));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = if t % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                for n in 0..25 {
                    s.append_audit(&event(t * 100 + n), 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(matches!(
        a.verify_audit().unwrap(),
        AuditCheck::Intact { rows: 200, .. }
    ));
}

/// The same token presented to two collectors at once enrolls once.
#[test]
fn postgres_token_enrolls_once_across_collectors() {
    let server = postgres();
    let a = Arc::new(pg_store(&server, "shared"));
    let url = server.url_of("shared");
    let b = Arc::new(open_pg(&url));
    a.save_inventory(&inventory(false), 1).unwrap();
    for round in 0..10 {
        let node = format!("dinkes-{round:02}");
        let token = a
            .create_enrollment_token("dinkes", &node, Duration::from_secs(60))
            .unwrap();
        let handles: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .map(|s| {
                let (node, token) = (node.clone(), token.clone());
                std::thread::spawn(move || s.enroll(&node, &token).is_ok())
            })
            .collect();
        let won = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(won, 1, "round {round}");
    }
}

/// Two holders: one wins, the other is refused until the lease expires or
/// is released, then takes over; never both.
fn lease_rules(s: &dyn Both) {
    let long = Duration::from_secs(600);
    assert!(s.try_lease("outage", "a", long).unwrap());
    assert!(!s.try_lease("outage", "b", long).unwrap());
    // Renewing one's own lease works; others still refused.
    assert!(s.try_lease("outage", "a", long).unwrap());
    assert!(!s.try_lease("outage", "b", long).unwrap());
    // Another name is another lease.
    assert!(s.try_lease("other", "b", long).unwrap());
    // A short renewal, then silence: b takes over once it has run out.
    assert!(s
        .try_lease("outage", "a", Duration::from_millis(200))
        .unwrap());
    std::thread::sleep(Duration::from_millis(400));
    assert!(s.try_lease("outage", "b", long).unwrap());
    assert!(!s.try_lease("outage", "a", long).unwrap());
    // Releasing hands it over at once; only the holder can release.
    assert!(!s.release_lease("outage", "a").unwrap());
    assert!(s.release_lease("outage", "b").unwrap());
    assert!(s.try_lease("outage", "a", long).unwrap());
}

#[test]
fn leases_on_both_backends() {
    on_both(lease_rules);
}

/// What the NOC is shown of the leases: holder and expiry as stored, an
/// expired lease listed as expired (nobody holds it), not left out.
fn lease_list(s: &dyn Both) {
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    assert!(s.leases(10).unwrap().is_empty());
    let long = Duration::from_secs(600);
    let outage = "noc-a#00000000000000aa";
    let before = now_ms();
    assert!(s.try_lease("outage-detector", outage, long).unwrap());
    assert!(s
        .try_lease(
            "reports-mailed-2026-11",
            "noc-b",
            Duration::from_millis(100)
        )
        .unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let l = s.leases(10).unwrap();
    let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["outage-detector", "reports-mailed-2026-11"]);
    assert_eq!((l[0].holder.as_str(), l[0].live), (outage, true));
    // The database's clock is this machine's: a few seconds' slack.
    let expires = l[0].expires_ms;
    assert!(
        expires + 5_000 >= before + 600_000 && expires <= now_ms() + 605_000,
        "{expires}"
    );
    assert_eq!((l[1].holder.as_str(), l[1].live), ("noc-b", false));
    assert!(l[1].expires_ms < now_ms(), "{:?}", l[1]);
    assert_eq!(s.leases(1).unwrap().len(), 1);
    // Taken over once expired: live again, under its new holder.
    assert!(s
        .try_lease("reports-mailed-2026-11", "noc-a", long)
        .unwrap());
    let l = s.leases(10).unwrap();
    assert_eq!((l[1].holder.as_str(), l[1].live), ("noc-a", true));
    assert!(s.release_lease("outage-detector", outage).unwrap());
    assert_eq!(s.leases(10).unwrap().len(), 1);
}

#[test]
fn lease_list_on_both_backends() {
    on_both(lease_list);
}

/// Many contenders at once, on two collectors: exactly one holds it.
#[test]
fn postgres_lease_has_one_holder_among_rivals() {
    let server = postgres();
    let a = Arc::new(pg_store(&server, "shared"));
    let url = server.url_of("shared");
    let b = Arc::new(open_pg(&url));
    for round in 0..10 {
        let name = format!("lease-{round}");
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let s = if t % 2 == 0 { a.clone() } else { b.clone() };
                let name = name.clone();
                std::thread::spawn(move || {
                    s.try_lease(&name, &format!("holder-{t}"), Duration::from_secs(600))
                        .unwrap()
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count();
        assert_eq!(winners, 1, "round {round}");
    }
}

#[test]
fn postgres_config_problems_are_named() {
    let bad = PostgresConfig {
        backend: ControlBackend::Postgres,
        url: "mysql://nope".into(),
        connections: 0,
        timeout_secs: 0,
        lease_secs: 0,
        collector_id: "a\nb".into(),
    };
    let keys: Vec<_> = bad.problems().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "storage.control.url",
            "storage.control.connections",
            "storage.control.timeout_secs",
            "storage.control.lease_secs",
            "storage.control.collector_id"
        ]
    );
    assert!(PostgresConfig::default().problems().is_empty());
    assert!(PostgresConfig {
        backend: ControlBackend::Postgres,
        url: "postgresql://simpul@db.example:5432/simpul".into(),
        ..Default::default()
    }
    .problems()
    .is_empty());
    // A database that does not answer fails the open with its reason.
    let err = PgStore::open(&PostgresConfig {
        url: "postgresql://simpul@127.0.0.1:1/simpul".into(),
        timeout_secs: 2,
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::Postgres(_)), "{err}");
}

/// The collector takes the PostgreSQL control store with its URL, and names
/// what is missing or out of range.
#[test]
fn collector_config_takes_postgres_control_and_names_its_problems() {
    let parse = |text: &str| {
        crate::config::CollectorConfig::parse(text, std::path::Path::new("collector.toml"))
    };
    let base = "[server]\nlisten = \"127.0.0.1:9000\"\n";
    let cfg = parse(base).unwrap();
    assert_eq!(cfg.storage.control.backend, ControlBackend::Sqlite);
    let cfg = parse(&format!(
        "{base}[storage.control]\nbackend = \"postgres\"\n\
         url = \"postgresql://simpul@db:5432/simpul\"\ncollector_id = \"noc-a\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.storage.control.backend, ControlBackend::Postgres);
    assert_eq!(cfg.storage.control.collector_id, "noc-a");
    assert_eq!(cfg.storage.control.lease_secs, 6);
    let err = parse(&format!(
        "{base}[storage.control]\nbackend = \"postgres\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("storage.control.url"), "{err}");
    // A lease longer than the heartbeat window could leave an outage
    // unrecorded for longer than it takes to call a node down.
    let err = parse(&format!(
        "{base}[nodes]\ndown_after_secs = 10\n[storage.control]\nbackend = \"postgres\"\n\
         url = \"postgresql://simpul@db:5432/simpul\"\nlease_secs = 30\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("storage.control.lease_secs"), "{err}");
    assert!(parse(&format!("{base}[storage.control]\nbackend = \"mysql\"\n")).is_err());
}

fn new_incident<'a>(node: &'a str, kind: &'a str, start: u64) -> NewIncident<'a> {
    NewIncident {
        node_id: node,
        agency: "dinkes",
        kind,
        severity: "major",
        root_cause: None,
        children: &[],
        started_ms: start,
        detected_ms: start + 10_000,
        maintenance: false,
    }
}

#[test]
fn incidents_open_resolve_and_list_on_both_backends() {
    on_both(|s| {
        let mut inc = s.incidents().unwrap();
        let children = vec!["dinkes-sd".to_string()];
        let (a, fresh) = inc
            .open(&NewIncident {
                children: &children,
                ..new_incident("n1", "group_down", 1_000)
            })
            .unwrap();
        assert!(fresh);
        assert_eq!(a.children, children);
        // One open outage per node, whatever its kind; a condition beside it.
        let (again, fresh) = inc.open(&new_incident("n1", "down", 5_000)).unwrap();
        assert!(!fresh);
        assert_eq!(again.id, a.id);
        let (skew, fresh) = inc.open(&new_incident("n1", "clock_skew", 6_000)).unwrap();
        assert!(fresh && skew.id != a.id);
        assert_eq!(inc.open_for("n1").unwrap().map(|i| i.id), Some(a.id));
        assert_eq!(
            inc.open_for_kind("n1", "clock_skew").unwrap().map(|i| i.id),
            Some(skew.id)
        );
        inc.set_kind(a.id, "down").unwrap();
        inc.mark_notified(a.id, 20_000).unwrap();
        inc.mark_notified(a.id, 30_000).unwrap();
        inc.set_escalation(a.id, 2).unwrap();
        inc.set_escalation(a.id, 1).unwrap();
        let got = inc.get(a.id).unwrap().unwrap();
        assert_eq!(
            (got.kind.as_str(), got.notified_ms, got.escalation),
            ("down", Some(20_000), 2)
        );
        assert_eq!(
            inc.unacknowledged()
                .unwrap()
                .iter()
                .map(|i| i.id)
                .collect::<Vec<_>>(),
            [a.id]
        );
        let acked = inc.ack(a.id, "budi", 40_000).unwrap().unwrap();
        assert_eq!(acked.acked_by.as_deref(), Some("budi"));
        let twice = inc.ack(a.id, "sari", 50_000).unwrap().unwrap();
        assert_eq!(
            (twice.acked_by.as_deref(), twice.acked_ms),
            (Some("budi"), Some(40_000))
        );
        assert!(inc.ack(9_999, "x", 1).unwrap().is_none());
        assert!(inc.unacknowledged().unwrap().is_empty());
        inc.resolve(a.id, 60_000).unwrap();
        inc.resolve(a.id, 70_000).unwrap();
        assert_eq!(inc.get(a.id).unwrap().unwrap().resolved_ms, Some(60_000));
        assert!(inc.open_for("n1").unwrap().is_none());
        let (b, fresh) = inc.open(&new_incident("n1", "down", 80_000)).unwrap();
        assert!(fresh && b.id != a.id);
        let (c, _) = inc.open(&new_incident("n2", "down", 500)).unwrap();
        let all = inc
            .list(&IncidentFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        // Unacknowledged open ones first (newest first), then the rest.
        let ids: Vec<i64> = all.iter().map(|i| i.id).collect();
        assert_eq!(ids, [b.id, skew.id, c.id, a.id]);
        let mine = inc
            .list(&IncidentFilter {
                node_id: Some("n2".into()),
                open_only: true,
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(mine.iter().map(|i| i.id).collect::<Vec<_>>(), [c.id]);
        let ranged = inc
            .list(&IncidentFilter {
                agency: Some("dinkes".into()),
                from_ms: Some(65_000),
                to_ms: Some(90_000),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        // a ended before the range; c, skew and b are open through it.
        assert_eq!(ranged.len(), 3, "{ranged:?}");
    });
}

#[test]
fn maintenance_windows_and_availability_on_both_backends() {
    on_both(|s| {
        let mut inc = s.incidents().unwrap();
        const H: u64 = 3_600_000;
        let (a, _) = inc.open(&new_incident("n1", "down", 2 * H)).unwrap();
        inc.resolve(a.id, 3 * H).unwrap();
        let w = Maintenance {
            id: 0,
            node_id: Some("n1".into()),
            agency: None,
            starts_ms: 2 * H + H / 2,
            ends_ms: 4 * H,
            reason: "ganti router".into(),
            created_by: "noc".into(),
            created_ms: 1,
        };
        let stored = inc.add_maintenance(&w).unwrap();
        assert!(stored.id > 0);
        assert_eq!(
            inc.maintenance_window(stored.id).unwrap(),
            Some(stored.clone())
        );
        assert!(matches!(
            inc.add_maintenance(&Maintenance {
                ends_ms: w.starts_ms,
                ..w.clone()
            }),
            Err(StoreError::Invalid { .. })
        ));
        let later = inc
            .add_maintenance(&Maintenance {
                node_id: None,
                agency: Some("dinkes".into()),
                starts_ms: 30 * H,
                ends_ms: 31 * H,
                ..w.clone()
            })
            .unwrap();
        assert_eq!(inc.open_maintenance_count(3 * H).unwrap(), 2);
        assert_eq!(inc.open_maintenance_count(5 * H).unwrap(), 1);
        let since: Vec<i64> = inc
            .maintenance_since(0)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(since, [stored.id, later.id]);
        let av = inc
            .availability(
                &[NodeSpan {
                    node_id: "n1".into(),
                    agency: "dinkes".into(),
                    enrolled_ms: 0,
                    seen: true,
                }],
                0,
                24 * H,
                30 * H,
            )
            .unwrap();
        assert_eq!((av[0].down_ms, av[0].maintenance_ms), (H / 2, H / 2));
        assert!(inc
            .update_maintenance(&Maintenance {
                reason: "ganti switch".into(),
                ends_ms: 5 * H,
                ..stored.clone()
            })
            .unwrap());
        let changed = inc.maintenance_window(stored.id).unwrap().unwrap();
        assert_eq!(
            (changed.reason.as_str(), changed.ends_ms),
            ("ganti switch", 5 * H)
        );
        assert!(!inc
            .update_maintenance(&Maintenance {
                id: 9_999,
                ..stored.clone()
            })
            .unwrap());
        assert_eq!(inc.prune_maintenance(10 * H).unwrap(), 1);
        assert!(inc.maintenance_window(stored.id).unwrap().is_none());
        assert!(inc.delete_maintenance(later.id).unwrap());
        assert!(!inc.delete_maintenance(later.id).unwrap());
        assert!(inc.maintenance_since(0).unwrap().is_empty());
    });
}

fn notification(incident: i64, state: crate::notify::NotifyState) -> crate::notify::Notification {
    let a = crate::outage::monitor::Alert {
        incident_id: incident,
        state: match state {
            crate::notify::NotifyState::Resolved => crate::outage::monitor::AlertState::Resolved,
            _ => crate::outage::monitor::AlertState::Firing,
        },
        severity: "major".into(),
        agency: "dinkes".into(),
        node: "n1".into(),
        kind: "down".into(),
        title: "PADAM: n1 (dinkes)".into(),
        body: "Node n1 tidak mengirim heartbeat.".into(),
        starts_at_ms: 1_000,
        ends_at_ms: None,
        labels: Default::default(),
    };
    crate::notify::Notification::from(&a)
}

#[test]
fn notification_log_on_both_backends() {
    use crate::notify::{NotifyState, Status};
    use std::collections::BTreeSet;
    on_both(|s| {
        let mut log = s.notification_log().unwrap();
        let other = s.notification_log().unwrap();
        let both: BTreeSet<String> = ["telegram".to_string(), "webhook".to_string()].into();
        let yes = |_: &str| true;
        let firing = notification(7, NotifyState::Firing);
        assert_eq!(log.enqueue(&firing, &both, &yes, 1_000, true).unwrap(), 2);
        // The same (channel, incident, state) again is nothing new.
        assert_eq!(log.enqueue(&firing, &both, &yes, 2_000, true).unwrap(), 0);
        assert_eq!(other.count_pending().unwrap(), 2);
        let pending = other.pending(10).unwrap();
        assert_eq!(pending.len(), 2);
        assert!(pending[0].id < pending[1].id);
        let (t, w) = (&pending[0], &pending[1]);
        assert_eq!((t.channel.as_str(), t.attempts), ("telegram", 0));
        // Two dispatchers read the same row: one claim wins.
        assert!(log.claim(t.id, 0, 3_000, 60_000).unwrap());
        if s.backend() == "postgres" {
            assert!(!other.claim(t.id, 0, 3_000, 60_000).unwrap());
        }
        log.mark_sent(t.id, 4_000, 1).unwrap();
        assert!(
            !log.claim(t.id, 1, 5_000, 60_000).unwrap(),
            "sent is not pending"
        );
        log.mark_retry(w.id, 9_000, "HTTP 502", 0).unwrap();
        // Resolved: the webhook row never attempted is moot and suppressed;
        // the recovery goes only where the outage went.
        let resolved = notification(7, NotifyState::Resolved);
        let none = BTreeSet::new();
        assert_eq!(
            log.enqueue(&resolved, &none, &yes, 10_000, true).unwrap(),
            1
        );
        let rows = other.recent(usize::MAX, Some(7)).unwrap();
        let view: Vec<(&str, &str, Status)> = rows
            .iter()
            .map(|r| (r.channel.as_str(), r.state.as_str(), r.status))
            .collect();
        assert_eq!(
            view,
            [
                ("telegram", "firing", Status::Sent),
                ("webhook", "firing", Status::Suppressed),
                ("telegram", "resolved", Status::Pending),
            ]
        );
        assert_eq!(rows[0].node.as_deref(), Some("n1"));
        assert_eq!(rows[0].sent_ms, Some(4_000));
        assert_eq!(rows[0].attempts, 1);
        let newest = other.recent(1, None).unwrap();
        assert_eq!(newest[0].id, rows[2].id);
        let counts = other.counts().unwrap();
        assert_eq!(
            [Status::Sent, Status::Suppressed, Status::Pending].map(|k| counts.get(&k).copied()),
            [Some(1), Some(1), Some(1)]
        );
        log.mark_failed(rows[2].id, "gave up", 0).unwrap();
        assert_eq!(log.prune(1_000_000).unwrap(), 3);
        assert!(other.recent(10, None).unwrap().is_empty());
    });
}

/// Two collectors opening the same outage at the same moment (a lease
/// handed over mid-detection) get one incident between them.
#[test]
fn postgres_outage_opens_once_across_collectors() {
    let server = postgres();
    let url = server
        .database("open_once")
        .unwrap_or_else(|e| panic!("{e}"));
    let stores: Vec<PgStore> = (0..4).map(|_| open_pg(&url)).collect();
    for round in 0..10u64 {
        let barrier = Arc::new(std::sync::Barrier::new(stores.len()));
        let results: Vec<(i64, bool)> = std::thread::scope(|scope| {
            let handles: Vec<_> = stores
                .iter()
                .map(|s| {
                    let barrier = barrier.clone();
                    scope.spawn(move || {
                        let mut inc = s.incidents().unwrap();
                        barrier.wait();
                        let (i, fresh) = inc.open(&new_incident("n1", "down", round)).unwrap();
                        (i.id, fresh)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|(_, fresh)| *fresh).count(),
            1,
            "{results:?}"
        );
        assert!(
            results.iter().all(|(id, _)| *id == results[0].0),
            "{results:?}"
        );
        stores[0]
            .incidents()
            .unwrap()
            .resolve(results[0].0, round + 1)
            .unwrap();
    }
}

/// Drops are counted per boot beside the flows: the SQLite registry reads
/// them from its own file; with the registry on PostgreSQL the nodes list
/// takes the same figure from the flow store (service::nodes).
#[test]
fn dropped_records_per_boot_come_from_the_flow_store() {
    use crate::store::traits::FlowStore;
    use crate::store::NodeBatches;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let server = postgres();
    let pg = pg_store(&server, "dropped");
    let hour = Duration::from_secs(3600);
    for s in [&sqlite as &dyn Both, &pg] {
        s.save_inventory(&inventory(false), 1).unwrap();
        let token = s
            .create_enrollment_token("dinkes", "dinkes-01", hour)
            .unwrap();
        s.enroll("dinkes-01", &token).unwrap();
    }
    let batch = |boot: u64, seq: u64, dropped: u64| simpul_proto::wire::Batch {
        boot_epoch: boot,
        seq,
        sealed_ms: 0,
        flows: Vec::new(),
        counters: Vec::new(),
        blocked: Vec::new(),
        dropped_records: dropped,
        dropped_batches: 0,
    };
    let batches = [batch(1, 1, 5), batch(1, 2, 2), batch(2, 1, 7)];
    let mut w = FlowStore::writer(&sqlite).unwrap();
    w.ingest_many(&[NodeBatches {
        node_id: "dinkes-01",
        agency: "dinkes",
        strict_seq: true,
        batches: &batches,
    }])
    .unwrap();
    let from_flows = FlowStore::reader(&sqlite)
        .unwrap()
        .dropped_records()
        .unwrap();
    assert_eq!(from_flows.get("dinkes-01"), Some(&14));
    let now = std::time::SystemTime::now();
    assert_eq!(sqlite.nodes(now, hour).unwrap()[0].dropped_records, 14);
    // PostgreSQL's registry does not know them; the flow store does.
    assert_eq!(pg.nodes(now, hour).unwrap()[0].dropped_records, 0);
}
