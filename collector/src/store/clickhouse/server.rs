//! A private ClickHouse for tests and benchmarks: Debian's
//! `clickhouse-server` on a temporary directory and free ports, with a
//! config written there (no system service, no shared state), stopped and
//! removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Client;

/// Where Debian installs it.
const CANDIDATES: [&str; 3] = [
    "/usr/sbin/clickhouse-server",
    "/usr/bin/clickhouse-server",
    "/usr/bin/clickhouse",
];

#[derive(Debug)]
pub struct TempClickHouse {
    child: Child,
    dir: PathBuf,
    pub url: String,
    /// The native protocol's port (what a cluster's `remote_servers` name).
    pub tcp_port: u16,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The server binary, or why there is none.
pub fn binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SIMPUL_CLICKHOUSE_SERVER") {
        return Ok(PathBuf::from(p));
    }
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            "clickhouse-server is not installed: run scripts/setup.sh (Debian package \
             clickhouse-server, 18.16 or later) or set SIMPUL_CLICKHOUSE_SERVER"
                .to_string()
        })
}

impl TempClickHouse {
    /// Start a server and wait until its HTTP interface answers.
    pub fn start() -> Result<TempClickHouse, String> {
        let e = |x: std::io::Error| format!("no free port: {x}");
        Self::start_with(free_port().map_err(e)?, free_port().map_err(e)?, "")
    }

    /// `shards` servers, each knowing all of them as the cluster `name`
    /// (one replica per shard, the same database names everywhere):
    /// Distributed tables over them work from any one.
    pub fn start_cluster(name: &str, shards: usize) -> Result<Vec<TempClickHouse>, String> {
        let e = |x: std::io::Error| format!("no free port: {x}");
        let mut ports = Vec::new();
        for _ in 0..shards {
            ports.push((free_port().map_err(e)?, free_port().map_err(e)?));
        }
        let mut xml = format!("<remote_servers><{name}>");
        for (_, tcp) in &ports {
            xml.push_str(&format!(
                "<shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>"
            ));
        }
        xml.push_str(&format!("</{name}></remote_servers>"));
        ports
            .into_iter()
            .map(|(http, tcp)| Self::start_with(http, tcp, &xml))
            .collect()
    }

    fn start_with(http: u16, tcp: u16, extra: &str) -> Result<TempClickHouse, String> {
        let bin = binary()?;
        let dir = std::env::temp_dir().join(format!(
            "simpul-clickhouse-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let e = |what: &str, err: std::io::Error| format!("{what} {}: {err}", dir.display());
        std::fs::create_dir_all(dir.join("data")).map_err(|x| e("cannot create", x))?;
        let d = dir.display();
        let config = format!(
            "<yandex>\n\
             <logger><level>warning</level><log>{d}/server.log</log>\
             <errorlog>{d}/error.log</errorlog><console>0</console></logger>\n\
             <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>\n\
             <listen_host>127.0.0.1</listen_host>\n\
             <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path>\n\
             <user_files_path>{d}/user_files/</user_files_path>\n\
             <format_schema_path>{d}/format_schemas/</format_schema_path>\n\
             <users_config>{d}/users.xml</users_config>\n\
             <default_profile>default</default_profile><default_database>default</default_database>\n\
             <mark_cache_size>268435456</mark_cache_size>\n{extra}\n\
             </yandex>\n"
        );
        let users = "<yandex><profiles><default></default></profiles>\
             <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\
             <profile>default</profile><quota>default</quota></default></users>\
             <quotas><default></default></quotas></yandex>\n";
        std::fs::write(dir.join("config.xml"), config).map_err(|x| e("cannot write", x))?;
        std::fs::write(dir.join("users.xml"), users).map_err(|x| e("cannot write", x))?;
        let mut cmd = Command::new(&bin);
        if bin.ends_with("clickhouse") {
            cmd.arg("server");
        }
        // The server dies with the thread that started it, should a test
        // panic past the Drop or the process be killed.
        // SAFETY: prctl only, between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .arg(format!("--config-file={d}/config.xml"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|x| format!("cannot start {}: {x}", bin.display()))?;
        let mut server = TempClickHouse {
            child,
            url: format!("http://127.0.0.1:{http}"),
            tcp_port: tcp,
            dir,
        };
        let client = Client::new(&server.url, Duration::from_secs(5)).map_err(|x| x.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if client.exec("SELECT 1").is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(server.dir.join("error.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(format!("clickhouse-server exited ({status}): {tail}"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "clickhouse-server did not answer on {} within 90 s",
                    server.url
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Bytes under the data directory (the database files).
    pub fn data_bytes(&self, database: &str) -> u64 {
        fn walk(p: &std::path::Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir.join("data").join("data").join(database))
    }
}

impl Drop for TempClickHouse {
    fn drop(&mut self) {
        // SIGTERM first: a clean shutdown is quick and leaves no stray
        // threads writing into the directory being removed.
        // SAFETY: kill(2) on our own child pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
