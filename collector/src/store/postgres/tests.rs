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
use crate::store::{AuthError, NodeStatus, Store, StoreConfig, StoreError};

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
    };
    let keys: Vec<_> = bad.problems().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "storage.control.url",
            "storage.control.connections",
            "storage.control.timeout_secs"
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

/// Until incidents and the notification log move, a collector refuses the
/// PostgreSQL control store by name instead of splitting its state.
#[test]
fn collector_config_refuses_postgres_control_with_the_missing_pieces() {
    let parse = |text: &str| {
        crate::config::CollectorConfig::parse(text, std::path::Path::new("collector.toml"))
    };
    let base = "[server]\nlisten = \"127.0.0.1:9000\"\n";
    let cfg = parse(base).unwrap();
    assert_eq!(cfg.storage.control.backend, ControlBackend::Sqlite);
    let err = parse(&format!(
        "{base}[storage.control]\nbackend = \"postgres\"\n\
         url = \"postgresql://simpul@db:5432/simpul\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("storage.control.backend"), "{err}");
    assert!(err.contains("notification log"), "{err}");
    let err = parse(&format!(
        "{base}[storage.control]\nbackend = \"postgres\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("storage.control.url"), "{err}");
    assert!(parse(&format!("{base}[storage.control]\nbackend = \"mysql\"\n")).is_err());
}
