//! The demo's operators: one account per role with a random password, a
//! kiosk token for the wall, all written to `credentials.txt` (0600) in the
//! data directory and printed at start. A restart reuses them (the
//! database keeps only hashes, so the file is where the passwords live).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::Rng;
use simpul_collector::auth::{password, Role};
use simpul_collector::store::{AccessStore, NewApiToken, User};

/// (role, username, display name); the agency officer's agency is given.
fn accounts(agency: &str) -> Vec<(Role, String, String)> {
    vec![
        (Role::Admin, "admin".into(), "Admin Diskominfo".into()),
        (Role::Operator, "operator".into(), "Operator NOC".into()),
        (
            Role::Agency(agency.to_string()),
            format!("petugas-{agency}"),
            format!("Petugas TI {agency}"),
        ),
        (Role::Viewer, "layar".into(), "Layar dinding NOC".into()),
    ]
}

fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials.txt")
}

/// What the demo prints: each account, and the wall's kiosk URL.
pub struct Credentials {
    pub lines: Vec<String>,
    pub kiosk_token: String,
}

/// Make the accounts and the kiosk token unless the file says they exist.
pub fn ensure(store: &dyn AccessStore, data_dir: &Path, agency: &str) -> Result<Credentials> {
    let path = credentials_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        let kiosk = lines
            .iter()
            .find_map(|l| l.strip_prefix("kiosk-token "))
            .map(str::to_string);
        let all_known = lines
            .iter()
            .filter(|l| !l.starts_with("kiosk-token "))
            .all(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|u| store.user(u).ok().flatten().is_some())
            });
        if let (Some(kiosk_token), true) = (kiosk, all_known) {
            return Ok(Credentials {
                lines: lines
                    .into_iter()
                    .filter(|l| !l.starts_with("kiosk-token "))
                    .collect(),
                kiosk_token,
            });
        }
    }
    let now = simpul_collector::state::now_ms();
    let mut lines = Vec::new();
    for (role, username, display) in accounts(agency) {
        let pw = random_password();
        let hash = password::hash(&pw)?;
        let user = User {
            username: username.clone(),
            display_name: display,
            role: role.clone(),
            disabled: false,
            created_ms: now,
            password_changed_ms: now,
        };
        match store.user(&username)? {
            Some(_) => {
                store.set_password(&username, &hash, now)?;
            }
            None => store.add_user(&user, &hash)?,
        }
        lines.push(format!("{role} {username} {pw}"));
    }
    let (kiosk_token, _) = store.create_api_token(&NewApiToken {
        name: "layar-dinding",
        role: &Role::Viewer,
        kiosk: true,
        created_by: "simpul-demo",
        now_ms: now,
        expires_ms: None,
    })?;
    let mut text = String::from(
        "# simpul-demo accounts: ROLE USERNAME PASSWORD (agency:CODE for an agency officer)\n",
    );
    for l in &lines {
        let _ = writeln!(text, "{l}");
    }
    let _ = writeln!(text, "kiosk-token {kiosk_token}");
    write_private(&path, &text)?;
    Ok(Credentials { lines, kiosk_token })
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
