//! The operator commands of `simpul-collector` (user, api-token, audit):
//! the same checks as the API, the same audit chain, run by someone with
//! a shell on the collector (`actor` is `cli:$USER`).

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::password;
use crate::inventory::Inventories;
use crate::state::now_ms;
use crate::store::{AccessStore, AuditCheck, NewApiToken, NewAudit};

/// Who ran the command, for the audit log.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{}", user.chars().take(32).collect::<String>())
}

pub fn audit_cli(store: &dyn AccessStore, action: &str, target: &str, detail: serde_json::Value) {
    let e = NewAudit {
        actor: cli_actor(),
        address: "cli".into(),
        action: action.into(),
        target: target.into(),
        detail: detail.to_string(),
        outcome: "ok".into(),
    };
    if let Err(err) = store.append_audit(&e, now_ms()) {
        eprintln!("warning: cannot append to the audit log: {err}");
    }
}

/// One line from stdin, without its line end (the password).
pub fn read_password(mut input: impl BufRead) -> Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        bail!("no password on stdin: give it as one line (e.g. `printf '%s\\n' \"$PW\" | simpul-collector user add …`)");
    }
    Ok(pw)
}

#[allow(clippy::too_many_arguments)]
pub fn user_add(
    store: &dyn AccessStore,
    inv: &Inventories,
    name: &str,
    display: Option<&str>,
    role: &str,
    agency: Option<&str>,
    pw: &str,
) -> Result<()> {
    let user = super::api::new_user(inv, name, display, role, agency, pw, now_ms())
        .map_err(anyhow::Error::msg)?;
    let hash = password::hash(pw)?;
    store.add_user(&user, &hash)?;
    audit_cli(
        store,
        "user.add",
        name,
        json!({"role": user.role.to_string()}),
    );
    println!("user {name} added ({})", user.role);
    Ok(())
}

pub fn user_passwd(store: &dyn AccessStore, name: &str, pw: &str) -> Result<()> {
    password::check_rules(name, pw)?;
    let hash = password::hash(pw)?;
    if !store.set_password(name, &hash, now_ms())? {
        bail!("no user {name:?}");
    }
    audit_cli(store, "user.password", name, json!({}));
    println!("password of {name} changed; its sessions ended");
    Ok(())
}

pub fn user_disable(store: &dyn AccessStore, name: &str, disabled: bool) -> Result<()> {
    if !store.set_disabled(name, disabled, now_ms())? {
        bail!("no user {name:?}");
    }
    audit_cli(
        store,
        if disabled {
            "user.disable"
        } else {
            "user.enable"
        },
        name,
        json!({}),
    );
    println!(
        "user {name} {}",
        if disabled {
            "disabled; its sessions ended"
        } else {
            "enabled"
        }
    );
    Ok(())
}

pub fn user_list(store: &dyn AccessStore) -> Result<()> {
    println!(
        "{:<24} {:<20} {:<9} DISPLAY NAME",
        "USERNAME", "ROLE", "STATE"
    );
    for u in store.users()? {
        println!(
            "{:<24} {:<20} {:<9} {}",
            u.username,
            u.role.to_string(),
            if u.disabled { "disabled" } else { "active" },
            u.display_name
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn token_create(
    store: &dyn AccessStore,
    inv: &Inventories,
    name: &str,
    role: &str,
    agency: Option<&str>,
    expires_days: Option<u64>,
    kiosk: bool,
) -> Result<String> {
    let role = super::api::check_token(inv, name, role, agency, kiosk, expires_days)
        .map_err(anyhow::Error::msg)?;
    let now = now_ms();
    let expires = expires_days.map(|d| now + d * 86_400_000);
    let by = cli_actor();
    let (token, info) = store.create_api_token(&NewApiToken {
        name: name.trim(),
        role: &role,
        kiosk,
        created_by: &by,
        now_ms: now,
        expires_ms: expires,
    })?;
    audit_cli(
        store,
        "token.create",
        &info.id,
        json!({"name": info.name, "role": role.to_string(), "kiosk": kiosk, "expires_ms": expires}),
    );
    Ok(token)
}

pub fn token_list(store: &dyn AccessStore) -> Result<()> {
    println!(
        "{:<14} {:<24} {:<20} {:<6} STATE",
        "ID", "NAME", "ROLE", "KIOSK"
    );
    let now = now_ms();
    for t in store.api_tokens()? {
        let state = super::token_problem(&t, now).map_or("active", |_| "ended");
        println!(
            "{:<14} {:<24} {:<20} {:<6} {state}",
            t.id,
            t.name,
            t.role.to_string(),
            if t.kiosk { "yes" } else { "no" }
        );
    }
    Ok(())
}

pub fn token_revoke(store: &dyn AccessStore, id: &str) -> Result<()> {
    if !store.revoke_api_token(id, now_ms())? {
        bail!("no active token {id:?}");
    }
    audit_cli(store, "token.revoke", id, json!({}));
    println!("token {id} revoked");
    Ok(())
}

/// Exit status 0 on an intact chain; an error naming the first broken row.
pub fn audit_verify(store: &dyn AccessStore) -> Result<()> {
    match store.verify_audit()? {
        AuditCheck::Intact { rows, last_hash } => {
            println!("audit log intact: {rows} rows, last hash {last_hash}");
            Ok(())
        }
        AuditCheck::Broken { seq, reason } => {
            bail!("audit log broken at row {seq}: {reason}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_one_line() {
        assert_eq!(
            read_password(&b"rahasia-sekali\n"[..]).unwrap(),
            "rahasia-sekali"
        );
        assert_eq!(
            read_password(&b"dengan spasi \r\nnext"[..]).unwrap(),
            "dengan spasi "
        );
        assert!(read_password(&b"\n"[..]).is_err());
        assert!(read_password(&b""[..]).is_err());
    }
}
