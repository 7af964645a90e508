//! A collector process for the end-to-end tests, and agent configs for it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::binary;
use super::netns::wait_for;

pub fn collector_bin() -> PathBuf {
    binary("simpul-collector", "simpul-collector")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct Collector {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub http: u16,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// Run inside this network namespace (None: the test's own).
    pub netns: Option<String>,
    /// Where the HTTP API listens (as written in the config).
    pub http_host: String,
}

impl Collector {
    pub fn new(
        dir: &Path,
        agencies: &[(&str, u64)],
        tls_bind: &str,
        tls_names: &[&str],
    ) -> Collector {
        let http = free_port();
        let tls = free_port();
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\nlisten_tls = \"{tls_bind}:{tls}\"\ntls_names = {names:?}\n[storage]\ndata_dir = \"{}\"\n[nodes]\nheartbeat_interval_ms = 500\ndown_after_secs = 3\n[uplink]\ncapacity_down_bps = 1000000000\ncapacity_up_bps = 1000000000\n",
            dir.join("data").display(),
            names = tls_names,
        );
        for (code, alloc) in agencies {
            text.push_str(&format!(
                "[[agencies]]\ncode = \"{code}\"\nname = \"{code}\"\nalloc_down_bps = {alloc}\nalloc_up_bps = {alloc}\n"
            ));
        }
        let config = dir.join("collector.toml");
        std::fs::write(&config, text).unwrap();
        let mut c = Collector {
            dir: dir.to_owned(),
            config,
            http,
            child: None,
            log: dir.join("collector.log"),
            netns: None,
            http_host: "127.0.0.1".into(),
        };
        c.tls_port_store(tls);
        c
    }

    pub fn tls_port_store(&mut self, port: u16) {
        std::fs::write(self.dir.join("tls.port"), port.to_string()).unwrap();
    }

    pub fn tls_port(&self) -> u16 {
        std::fs::read_to_string(self.dir.join("tls.port"))
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(collector_bin());
                c
            }
            None => Command::new(collector_bin()),
        };
        let child = cmd
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start collector");
        self.child = Some(child);
        let (host, port) = (self.http_host.clone(), self.http);
        assert!(
            wait_for(30, || curl_at(&host, port, "/healthz").is_some()),
            "collector did not become healthy: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    pub fn token(&self, agency: &str, node: &str) -> String {
        let o = Command::new(collector_bin())
            .args(["token", "--config"])
            .arg(&self.config)
            .args(["--agency", agency, "--node", node])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("data/tls/ca.pem")
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let body = curl_at(&self.http_host, self.http, path)
            .unwrap_or_else(|| panic!("GET {path} failed"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn curl(port: u16, path: &str) -> Option<String> {
    curl_at("127.0.0.1", port, path)
}

pub fn curl_at(host: &str, port: u16, path: &str) -> Option<String> {
    let o = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "10",
            &format!("http://{host}:{port}{path}"),
        ])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

pub fn agent_config(
    dir: &Path,
    agency: &str,
    node: &str,
    url: &str,
    ca: &Path,
    token: &str,
) -> PathBuf {
    let state = dir.join(format!("agent-{node}"));
    std::fs::create_dir_all(&state).unwrap();
    let cfg = format!(
        r#"[agent]
id = "{node}"
[flows]
active_timeout_secs = 2
[network]
intranet = ["10.99.0.0/16"]
[collector]
url = "{url}"
ca_cert = "{ca}"
state_dir = "{state}"
enroll_token = "{token}"
batch_interval_ms = 500
heartbeat_interval_ms = 500
[[agencies]]
code = "{agency}"
[[agencies.units]]
code = "sekretariat"
subnets = ["10.10.1.0/24", "fd00:10:10:1::/64", "10.110.0.0/24"]
[[agencies.units]]
code = "bidang-it"
subnets = ["10.10.2.0/24", "10.120.0.0/24"]
"#,
        ca = ca.display(),
        state = state.display(),
    );
    let p = dir.join(format!("agent-{node}.toml"));
    std::fs::write(&p, cfg).unwrap();
    p
}
