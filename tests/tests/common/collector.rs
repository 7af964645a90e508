//! A collector process for the end-to-end tests, and agent configs for it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::binary;
use super::netns::wait_for;
use simpul_proto::FlowRecord;

pub fn collector_bin() -> PathBuf {
    binary("simpul-collector", "simpul-collector")
}

/// A port free now, below the kernel's ephemeral range (32768-60999): a port
/// the kernel hands out (":0") can be taken again by any outgoing connection
/// of a test running beside this one before the collector binds it.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new();
    (0u32..1000)
        .map(|i| 20_000 + (seed.hash_one((std::process::id(), i)) % 12_000) as u16)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port in 20000-31999")
}

pub struct Collector {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The inventory file beside collector.toml (`[inventory] file`).
    pub inventory: PathBuf,
    pub http: u16,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// Run inside this network namespace (None: the test's own).
    pub netns: Option<String>,
    /// Where the HTTP API listens (as written in the config).
    pub http_host: String,
    /// An admin API token (made at the first start) for the API calls.
    pub token: Option<String>,
}

/// The units of the fixtures' address plan (tests/fixtures/inventory.toml).
/// A subnet belongs to one agency only, so only the first agency of a
/// collector gets them; the others' nodes attribute those addresses to
/// "unknown" and the collector counts them under the node's agency.
const FIXTURE_UNITS: &str = r#"[[agencies.units]]
code = "sekretariat"
subnets = ["10.10.1.0/24", "fd00:10:10:1::/64", "10.110.0.0/24"]
[[agencies.units]]
code = "bidang-it"
subnets = ["10.10.2.0/24", "10.120.0.0/24"]
"#;

impl Collector {
    /// A collector for `agencies`: (code, allocation in bit/s each way).
    /// The allocation becomes the agency's policy (rate = ceil), which the
    /// collector signs and pushes to the agency's nodes; 0 writes no policy.
    /// Nodes are added to the inventory by [`Collector::add_node`] or
    /// [`Collector::token`].
    pub fn new(
        dir: &Path,
        agencies: &[(&str, u64)],
        tls_bind: &str,
        tls_names: &[&str],
    ) -> Collector {
        let http = free_port();
        let tls = free_port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\nlisten_tls = \"{tls_bind}:{tls}\"\ntls_names = {names:?}\n[storage]\ndata_dir = \"{}\"\n[nodes]\nheartbeat_interval_ms = 500\ndown_after_secs = 3\n[inventory]\nfile = \"inventory.toml\"\n[policy]\ndir = \"policies\"\n",
            dir.join("data").display(),
            names = tls_names,
        );
        let config = dir.join("collector.toml");
        std::fs::write(&config, text).expect("write collector.toml");
        let mut inventory = String::from(
            "intranet = [\"10.99.0.0/16\"]\nuplink = { down_bps = 1000000000, up_bps = 1000000000 }\n",
        );
        let policies = dir.join("policies");
        std::fs::create_dir_all(&policies).expect("create the policy dir");
        for (i, (code, alloc)) in agencies.iter().enumerate() {
            inventory.push_str(&format!(
                "[[agencies]]\ncode = \"{code}\"\nname = \"{code}\"\n"
            ));
            if i == 0 {
                inventory.push_str(FIXTURE_UNITS);
            }
            if *alloc > 0 {
                let r = format!("{{ rate_bps = {alloc}, ceil_bps = {alloc} }}");
                std::fs::write(
                    policies.join(format!("{code}.toml")),
                    format!("agency = \"{code}\"\n[allocation]\ndownload = {r}\nupload = {r}\n"),
                )
                .expect("write a policy");
            }
        }
        let inventory_path = dir.join("inventory.toml");
        std::fs::write(&inventory_path, inventory).expect("write inventory.toml");
        let mut c = Collector {
            dir: dir.to_owned(),
            config,
            inventory: inventory_path,
            http,
            child: None,
            log: dir.join("collector.log"),
            netns: None,
            http_host: "127.0.0.1".into(),
            token: None,
        };
        c.tls_port_store(tls);
        c
    }

    /// Add `node` of `agency` to the inventory; `extra` holds more keys of
    /// its entry (`parent`, `criticality`, `uplink`), one per line. A
    /// running collector reads the change within about 2 s.
    pub fn add_node(&self, agency: &str, node: &str, extra: &str) {
        let mut text = std::fs::read_to_string(&self.inventory).expect("read inventory.toml");
        text.push_str(&format!(
            "[[nodes]]\nid = \"{node}\"\nagency = \"{agency}\"\n{extra}"
        ));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        // Whole file at once: the collector must never read half an entry.
        let tmp = self.inventory.with_extension("toml.tmp");
        std::fs::write(&tmp, text).expect("write inventory.toml");
        std::fs::rename(&tmp, &self.inventory).expect("replace inventory.toml");
    }

    pub fn has_node(&self, node: &str) -> bool {
        std::fs::read_to_string(&self.inventory)
            .expect("read inventory.toml")
            .contains(&format!("[[nodes]]\nid = \"{node}\"\n"))
    }

    pub fn tls_port_store(&mut self, port: u16) {
        std::fs::write(self.dir.join("tls.port"), port.to_string()).expect("write tls.port");
    }

    pub fn tls_port(&self) -> u16 {
        std::fs::read_to_string(self.dir.join("tls.port"))
            .expect("read tls.port")
            .parse()
            .expect("tls.port holds a port")
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the collector log");
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
            wait_for(30, || self.curl_in(&host, port, "/healthz", None).is_some()),
            "collector did not become healthy: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        if self.token.is_none() {
            self.token = Some(self.api_token("e2e-admin", "admin"));
        }
    }

    /// `simpul-collector api-token create`: a token of `role` for the API.
    pub fn api_token(&self, name: &str, role: &str) -> String {
        let o = Command::new(collector_bin())
            .args(["api-token", "create", "--config"])
            .arg(&self.config)
            .args(["--name", name, "--role", role])
            .output()
            .expect("run simpul-collector api-token create");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout)
            .expect("token is UTF-8")
            .trim()
            .to_string()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// An enrollment token for `node`, added to the inventory in `agency`
    /// first if it is not there (the token command refuses other nodes).
    pub fn token(&self, agency: &str, node: &str) -> String {
        if !self.has_node(node) {
            self.add_node(agency, node, "");
        }
        let o = self.token_command(agency, node);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout)
            .expect("token is UTF-8")
            .trim()
            .to_string()
    }

    /// `simpul-collector token --agency AGENCY --node NODE`, whatever it says.
    pub fn token_command(&self, agency: &str, node: &str) -> std::process::Output {
        Command::new(collector_bin())
            .args(["token", "--config"])
            .arg(&self.config)
            .args(["--agency", agency, "--node", node])
            .output()
            .expect("run simpul-collector token")
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("data/tls/ca.pem")
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let body = self
            .curl_in(&self.http_host, self.http, path, self.token.as_deref())
            .unwrap_or_else(|| panic!("GET {path} failed"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// `method` (PUT, POST, …) `path` with a JSON body, as the admin:
    /// (HTTP status, the JSON answer; Null when it is not JSON).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send_raw(
            method,
            path,
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// As [`Collector::send`] with a body of any type (a list upload).
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        use std::io::Write;
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "curl"]);
                c
            }
            None => Command::new("curl"),
        };
        cmd.args(["-s", "--max-time", "10", "-X", method])
            .args(["-H", &format!("Content-Type: {content_type}")])
            .args(["--data-binary", "@-", "-w", "\n%{http_code}"]);
        if let Some(t) = &self.token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let mut child = cmd
            .arg(format!("http://{}:{}{path}", self.http_host, self.http))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run curl");
        child
            .stdin
            .take()
            .expect("curl's stdin")
            .write_all(body)
            .expect("send the body to curl");
        let out = child.wait_with_output().expect("wait for curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (answer, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        let status = status
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{method} {path}: no HTTP status from curl: {text}"));
        (
            status,
            serde_json::from_str(answer).unwrap_or(serde_json::Value::Null),
        )
    }

    /// curl from the collector's namespace (its plain listener is on
    /// loopback there) or from the test's.
    fn curl_in(&self, host: &str, port: u16, path: &str, token: Option<&str>) -> Option<String> {
        match &self.netns {
            Some(ns) => curl_cmd(Some(ns), host, port, path, token),
            None => curl_at(host, port, path, token),
        }
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

pub fn curl(port: u16, path: &str, token: Option<&str>) -> Option<String> {
    curl_at("127.0.0.1", port, path, token)
}

/// GET with `curl -sf` (None on any failure), with a bearer token if given.
pub fn curl_at(host: &str, port: u16, path: &str, token: Option<&str>) -> Option<String> {
    curl_cmd(None, host, port, path, token)
}

fn curl_cmd(
    netns: Option<&str>,
    host: &str,
    port: u16,
    path: &str,
    token: Option<&str>,
) -> Option<String> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => Command::new("curl"),
    };
    cmd.args(["-sf", "--max-time", "10"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let o = cmd
        .arg(format!("http://{host}:{port}{path}"))
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// agent.toml of a node streaming to the collector at `url`: its agency,
/// units and the intranet come from the collector's inventory.
pub fn agent_config(dir: &Path, node: &str, url: &str, ca: &Path, token: &str) -> PathBuf {
    let state = dir.join(format!("agent-{node}"));
    std::fs::create_dir_all(&state).expect("create the agent state dir");
    let cfg = format!(
        r#"[agent]
id = "{node}"
state_dir = "{state}"
[flows]
active_timeout_secs = 2
[collector]
url = "{url}"
ca_cert = "{ca}"
enroll_token = "{token}"
batch_interval_ms = 500
heartbeat_interval_ms = 500
"#,
        ca = ca.display(),
        state = state.display(),
    );
    let p = dir.join(format!("agent-{node}.toml"));
    std::fs::write(&p, cfg).expect("write agent.toml");
    p
}

/// What identifies one record and what it counted.
pub type RecordKey = (String, u64, String, String, String, String, String);
pub type Counted = (u64, u64, u64, u64);

pub fn key(r: &FlowRecord) -> (RecordKey, Counted) {
    (
        (
            format!("{:?}", r.kind),
            r.flow_id,
            r.proto.clone(),
            r.src_ip.to_string(),
            format!("{:?}", r.src_port),
            r.dst_ip.to_string(),
            format!("{:?}", r.dst_port),
        ),
        (r.packets_up, r.bytes_up, r.packets_down, r.bytes_down),
    )
}

/// Records as a multiset: how often each (identity, counts) occurs.
pub fn multiset<'a>(
    records: impl Iterator<Item = &'a FlowRecord>,
) -> BTreeMap<(RecordKey, Counted), u32> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(key(r)).or_insert(0) += 1;
    }
    m
}
