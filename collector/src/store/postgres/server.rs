//! A private PostgreSQL for tests and benchmarks: Debian's server binaries
//! on a temporary directory, its own port and unix-socket directory (no
//! system cluster, no shared state), stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root. Run as root (CI, the setup machine),
//! the server is started as the `postgres` system account the Debian
//! package creates (or `SIMPUL_POSTGRES_USER`), with the directory handed
//! to it; run as anyone else, as that user.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian installs versioned binaries; newest first.
const VERSIONS: [&str; 5] = ["17", "16", "15", "14", "13"];

#[derive(Debug)]
pub struct TempPostgres {
    child: Child,
    dir: PathBuf,
    port: u16,
    /// `postgresql://simpul@127.0.0.1:PORT/postgres`: a superuser, no password.
    pub url: String,
}

/// The directory holding `initdb` and `postgres`, or why there is none.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SIMPUL_POSTGRES_BIN") {
        return Ok(PathBuf::from(p));
    }
    VERSIONS
        .iter()
        .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")))
        .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .ok_or_else(|| {
            "PostgreSQL is not installed: run scripts/setup.sh (Debian package postgresql, \
             13 or later) or set SIMPUL_POSTGRES_BIN to the directory of initdb and postgres"
                .to_string()
        })
}

/// The account to run the server as when we are root: (uid, gid).
fn run_as() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::env::var("SIMPUL_POSTGRES_USER").unwrap_or_else(|_| "postgres".into());
    let c = CString::new(name.clone()).map_err(|_| format!("bad user name {name:?}"))?;
    // SAFETY: getpwnam reads a NUL-terminated name; the result is copied
    // out at once (tests start servers one per thread, nothing else here
    // calls getpwnam concurrently in a way that matters for two integers).
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!(
            "PostgreSQL refuses to run as root and there is no {name:?} account: run \
             scripts/setup.sh (the postgresql package creates it) or set SIMPUL_POSTGRES_USER"
        ));
    }
    // SAFETY: non-null pointer returned by getpwnam.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

fn command(bin: &Path, who: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin);
    // SAFETY: only async-signal-safe calls between fork and exec. The
    // death signal is set after the identity change, which clears it.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = who {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl TempPostgres {
    /// initdb, start, and wait until it accepts connections.
    pub fn start() -> Result<TempPostgres, String> {
        let bin = bin_dir()?;
        let who = run_as()?;
        let dir = std::env::temp_dir().join(format!(
            "simpul-postgres-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let e = |what: &str, err: std::io::Error| format!("{what} {}: {err}", dir.display());
        std::fs::create_dir_all(dir.join("sock")).map_err(|x| e("cannot create", x))?;
        if let Some((uid, gid)) = who {
            for p in [dir.clone(), dir.join("sock")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .map_err(|x| e("cannot hand to the postgres account", x))?;
            }
        }
        let data = dir.join("data");
        let out = command(&bin.join("initdb"), who)
            .args(["-D"])
            .arg(&data)
            .args(["-U", "simpul", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale", "C"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|x| format!("cannot run {}/initdb: {x}", bin.display()))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let port = free_port().map_err(|x| e("no free port for", x))?;
        let log =
            std::fs::File::create(dir.join("server.log")).map_err(|x| e("cannot write", x))?;
        if let Some((uid, gid)) = who {
            std::os::unix::fs::chown(dir.join("server.log"), Some(uid), Some(gid))
                .map_err(|x| e("cannot hand to the postgres account", x))?;
        }
        let child = command(&bin.join("postgres"), who)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=50", "-c", "shared_buffers=16MB"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|x| format!("cannot start {}/postgres: {x}", bin.display()))?;
        let mut server = TempPostgres {
            child,
            url: format!("postgresql://simpul@127.0.0.1:{port}/postgres"),
            dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if postgres::Client::connect(&server.url, postgres::NoTls).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log =
                    std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(format!("postgres exited ({status}): {tail}"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres did not answer on {} within 60 s",
                    server.url
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fresh, empty database on this server, and its URL.
    pub fn database(&self, name: &str) -> Result<String, String> {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls)
            .map_err(|e| format!("{}: {e}", self.url))?;
        c.batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        Ok(self.url_of(name))
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgresql://simpul@127.0.0.1:{}/{name}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kill the server at once (a collector's database host dying).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: clients are cut off and the
        // server exits at once, leaving nothing writing into the directory.
        // SAFETY: kill(2) on our own child pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
