//! The enforcement test topology, shared by the `enforce_*` tests:
//!
//! ```text
//!  unit A 10.1.1.2 ─┐                      ┌─ wan0 198.51.100.1 ── internet 198.51.100.10 (+ .20)
//!                   ├─ switch ── lan0 ─ router (agent)
//!  unit B 10.1.2.2 ─┘  (bridge)            └─ intra0 10.99.0.1 ── intranet 10.99.0.10
//! ```
//!
//! The agent applies policies in the router namespace; download is shaped on
//! lan0's egress, upload on wan0's. Traffic stays inside the namespaces.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::agent_bin;
use crate::common::netns::{sh, sh_out, wait_for, Lab};

pub const INTERNET: &str = "198.51.100.10";
/// A second address of the internet host, blocked by CIDR in the tests.
pub const INTERNET_BLOCKED: &str = "198.51.100.20";
pub const INTRANET: &str = "10.99.0.10";
/// An internet address in `[enforce] always_allow` (stands for the collector).
pub const ALWAYS_ALLOWED: &str = "198.51.100.30";
/// The router's address in unit a's subnet (its DNS responder listens here).
pub const ROUTER_LAN: &str = "10.1.1.1";

/// The router's inventory: agency dinkes with units a and b, the intranet
/// 10.0.0.0/8, and node router-test with a 100 Mbit/s uplink each way.
pub const INVENTORY: &str = r#"intranet = ["10.0.0.0/8"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.1.0/24"]
[[agencies.units]]
code = "b"
subnets = ["10.1.2.0/24"]
[[nodes]]
id = "router-test"
agency = "dinkes"
uplink = { down_bps = 100000000, up_bps = 100000000 }
"#;

/// TCP goodput over a link-layer allocation on a 1500-byte MTU: 1448 payload
/// bytes (MSS with timestamps) per 1514-byte Ethernet frame, which is what
/// HTB counts.
pub const GOODPUT_PER_LINK_BIT: f64 = 1448.0 / 1514.0;

pub const MBIT: f64 = 1_000_000.0;

/// Check a measured TCP goodput against a link-layer allocation: within
/// ±3 % of allocation × [`GOODPUT_PER_LINK_BIT`]; the ratio is printed.
pub fn check_goodput(what: &str, measured_bps: f64, allocated_bps: f64) {
    let expected = allocated_bps * GOODPUT_PER_LINK_BIT;
    let ratio = measured_bps / expected;
    eprintln!(
        "{what}: {:.3} Mbit/s goodput, expected {:.3} ({:.1} Mbit/s allocated): ratio {ratio:.4}",
        measured_bps / MBIT,
        expected / MBIT,
        allocated_bps / MBIT
    );
    assert!(
        (0.97..=1.03).contains(&ratio),
        "{what}: measured {:.3} Mbit/s vs expected {:.3} Mbit/s: ratio {ratio:.4} outside ±3%",
        measured_bps / MBIT,
        expected / MBIT
    );
}

pub struct Topo {
    pub lab: Lab,
    pub router: String,
    pub a: String,
    pub b: String,
    pub inet: String,
    pub intra: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Topo {
    pub fn new(tag: &str) -> Topo {
        let mut lab = Lab::new(tag);
        let router = lab.ns("r");
        let sw = lab.ns("sw");
        let a = lab.ns("a");
        let b = lab.ns("b");
        let inet = lab.ns("inet");
        let intra = lab.ns("intra");
        sh(&format!("ip -n {sw} link add br0 type bridge"));
        sh(&format!("ip -n {sw} link set br0 up"));
        for (ns, ifname, port) in [
            (&router, "lan0", "p0"),
            (&a, "eth0", "pa"),
            (&b, "eth0", "pb"),
        ] {
            sh(&format!(
                "ip link add {ifname} netns {ns} type veth peer name {port} netns {sw}"
            ));
            sh(&format!("ip -n {sw} link set {port} master br0"));
            sh(&format!("ip -n {sw} link set {port} up"));
            sh(&format!("ip -n {ns} link set {ifname} up"));
        }
        sh(&format!("ip -n {router} addr add 10.1.1.1/24 dev lan0"));
        sh(&format!("ip -n {router} addr add 10.1.2.1/24 dev lan0"));
        sh(&format!("ip -n {a} addr add 10.1.1.2/24 dev eth0"));
        sh(&format!("ip -n {a} route add default via 10.1.1.1"));
        sh(&format!("ip -n {b} addr add 10.1.2.2/24 dev eth0"));
        sh(&format!("ip -n {b} route add default via 10.1.2.1"));
        lab.link(
            &router,
            "wan0",
            "198.51.100.1/24",
            &inet,
            "eth0",
            &format!("{INTERNET}/24"),
        );
        for extra in [INTERNET_BLOCKED, ALWAYS_ALLOWED] {
            sh(&format!("ip -n {inet} addr add {extra}/24 dev eth0"));
        }
        sh(&format!(
            "ip -n {inet} route add 10.0.0.0/8 via 198.51.100.1"
        ));
        lab.link(
            &router,
            "intra0",
            "10.99.0.1/24",
            &intra,
            "eth0",
            &format!("{INTRANET}/24"),
        );
        sh(&format!("ip -n {intra} route add default via 10.99.0.1"));
        sh(&format!(
            "ip netns exec {router} sysctl -qw net.ipv4.ip_forward=1"
        ));

        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("agent.toml");
        let t = Topo {
            lab,
            router,
            a,
            b,
            inet,
            intra,
            dir,
            config,
        };
        t.write_config(None);
        t
    }

    /// agent.toml for the router (a router without a collector), optionally
    /// with `[standalone] policy_file`, and its inventory beside it:
    /// agency dinkes with units a and b, the intranet 10.0.0.0/8, and a
    /// 100 Mbit/s uplink each way. `[enforce]` comes last, so tests can
    /// append keys to it.
    pub fn write_config(&self, policy_file: Option<&Path>) {
        let policy_line = policy_file
            .map(|p| format!("policy_file = {:?}\n", p.display().to_string()))
            .unwrap_or_default();
        std::fs::write(self.dir.path().join("inventory.toml"), INVENTORY)
            .expect("write inventory.toml");
        self.write_agent_toml(
            "router-test",
            &format!("[standalone]\ninventory_file = \"inventory.toml\"\n{policy_line}"),
        );
    }

    /// agent.toml for the router as node `node` of a collector at `url`
    /// (`wss://…`, its CA in `ca`): the inventory (use [`INVENTORY`]'s
    /// agency, units and uplink at the collector) and the signed policies
    /// come over the link. `[enforce]` comes last, as in
    /// [`Topo::write_config`].
    pub fn write_collector_config(&self, node: &str, url: &str, ca: &Path, enroll_token: &str) {
        self.write_agent_toml(
            node,
            &format!(
                "[collector]\nurl = \"{url}\"\nca_cert = {:?}\nenroll_token = \"{enroll_token}\"\nbatch_interval_ms = 500\nheartbeat_interval_ms = 500\n",
                ca.display().to_string()
            ),
        );
    }

    /// `source`: the `[standalone]` or `[collector]` section.
    fn write_agent_toml(&self, id: &str, source: &str) {
        let state = self.dir.path().join("state");
        let flows = self.dir.path().join("flows.jsonl");
        std::fs::write(
            &self.config,
            format!(
                r#"[agent]
id = "{id}"
state_dir = {state:?}
[capture]
interfaces = ["lan0"]
[output]
flows_jsonl = {flows:?}
{source}[enforce]
lan_interface = "lan0"
wan_interface = "wan0"
always_allow = ["{ALWAYS_ALLOWED}/32"]
"#,
                flows = flows.display().to_string(),
                state = state.display().to_string(),
            ),
        )
        .expect("write agent.toml");
    }

    /// The agent's DNS responder on the LAN (`ROUTER_LAN:53`, hard-coded
    /// resolvers redirected to it, upstream the internet's dnsmasq of
    /// [`Topo::start_sites`]), blocked attempts written at once to the
    /// file returned. Call after writing the config.
    pub fn enable_dns(&self) -> PathBuf {
        let events = self.dir.path().join("blocked.jsonl");
        let text = std::fs::read_to_string(&self.config).expect("config");
        let text = text.replace(
            "[output]\n",
            &format!("[output]\nblocked_jsonl = {:?}\n", events.display().to_string()),
        ) + &format!(
            "attempt_fold_secs = 1\nname_block_secs = 120\n[enforce.dns]\nlisten = \"{ROUTER_LAN}:53\"\nupstream = \"{INTERNET}:53\"\n"
        );
        std::fs::write(&self.config, text).expect("write config");
        events
    }

    /// The internet's services: dnsmasq answering every `*.example` and
    /// `*.example.go.id` name with [`INTERNET`], and `sites.py` (HTTP on
    /// 80, HTTPS on 443 and 853 for any of those names, a UDP echo on 443).
    pub fn start_sites(&mut self) {
        let inet = self.inet.clone();
        let dir = self.dir.path().to_path_buf();
        self.lab.spawn(
            &inet,
            &[
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &format!("--listen-address={INTERNET}"),
                &format!("--address=/example/{INTERNET}"),
                &format!("--address=/example.go.id/{INTERNET}"),
                "--log-facility=-",
            ],
            true,
        );
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sites.example -addext subjectAltName=DNS:*.example,DNS:*.blocked.example,DNS:allowed.example -keyout {} -out {} 2>/dev/null",
            key.display(),
            cert.display()
        ));
        let ready = dir.join("sites.ready");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/enforce_lab/sites.py");
        self.lab.spawn(
            &inet,
            &[
                "python3",
                script.to_str().expect("utf-8"),
                cert.to_str().expect("utf-8"),
                key.to_str().expect("utf-8"),
                ready.to_str().expect("utf-8"),
            ],
            false,
        );
        assert!(
            wait_for(15, || ready.exists()),
            "site servers did not start"
        );
    }

    pub fn write_policy(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write policy");
        p
    }

    /// `simpul-agent policy apply FILE` in the router namespace.
    pub fn apply(&self, policy: &Path) -> Output {
        self.apply_with_path(policy, None)
    }

    /// `policy apply` with a directory put first in PATH (fake tools).
    pub fn apply_with_path(&self, policy: &Path, first_in_path: Option<&Path>) -> Output {
        self.apply_args(policy, first_in_path, &[])
    }

    fn apply_args(&self, policy: &Path, first_in_path: Option<&Path>, extra: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        if let Some(dir) = first_in_path {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", dir.display()));
        }
        cmd.args(["netns", "exec", &self.router])
            .arg(agent_bin())
            .args(["policy", "apply"])
            .arg(policy)
            .arg("--config")
            .arg(&self.config)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run simpul-agent")
    }

    pub fn apply_ok(&self, policy: &Path) {
        self.apply_ok_at(policy, &[]);
    }

    /// `policy apply` with extra arguments (e.g. `--at TIME`); must succeed.
    pub fn apply_ok_at(&self, policy: &Path, extra: &[&str]) {
        self.apply_stdout(policy, extra);
    }

    /// `policy apply` with extra arguments; must succeed. Its stdout (`policy
    /// N applied in … (schedule …; how the trees were changed)`).
    pub fn apply_stdout(&self, policy: &Path, extra: &[&str]) -> String {
        let out = self.apply_args(policy, None, extra);
        assert!(
            out.status.success(),
            "policy apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The configuration part of the kernel state (no counters).
    pub fn kernel_config(&self) -> String {
        let r = &self.router;
        sh_out(&format!(
            "ip netns exec {r} sh -c 'nft -s list table inet simpul; for d in lan0 wan0; do tc qdisc show dev $d; tc class show dev $d; done'"
        ))
    }

    /// The agent's kernel state in the router: nft table, qdiscs, classes.
    pub fn kernel_state(&self) -> String {
        let r = &self.router;
        sh_out(&format!(
            "ip netns exec {r} sh -c 'nft list table inet simpul; for d in lan0 wan0; do tc qdisc show dev $d; tc -s class show dev $d; done'"
        ))
    }

    /// `nft list table inet simpul` in the router.
    pub fn nft_table(&self) -> String {
        sh_out(&format!(
            "ip netns exec {} nft list table inet simpul",
            self.router
        ))
    }

    pub fn has_table(&self) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.router,
                "nft",
                "list",
                "table",
                "inet",
                "simpul",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Start `iperf3 -s` on `port` in `ns` and wait until it listens.
    pub fn iperf_server(&mut self, ns: &str, port: u16) {
        let ns = ns.to_string();
        let p = port.to_string();
        self.lab.spawn(&ns, &["iperf3", "-s", "-p", &p], true);
        let listening = wait_for(10, || {
            sh_out(&format!("ip netns exec {ns} ss -Hltn sport = :{port}"))
                .contains(&format!(":{port}"))
        });
        assert!(
            listening,
            "iperf3 server on port {port} in {ns} did not start"
        );
    }

    /// Whether a TCP connection (an iperf3 test of 1 KiB) from `ns` to
    /// `ip:port` succeeds.
    pub fn can_connect(&self, ns: &str, ip: &str, port: u16) -> bool {
        Command::new("ip")
            .args(["netns", "exec", ns, "iperf3", "-c", ip, "-p"])
            .arg(port.to_string())
            .args(["-n", "1K", "--connect-timeout", "3000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

/// One iperf3 TCP test from a client namespace; `download` uses `-R` (the
/// server sends). Runs `secs` seconds after omitting the first one.
pub struct Iperf {
    pub ns: String,
    pub server: String,
    pub port: u16,
    pub download: bool,
    pub secs: u32,
}

impl Iperf {
    pub fn command(&self) -> Command {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.ns,
            "iperf3",
            "-c",
            &self.server,
            "-p",
        ])
        .arg(self.port.to_string())
        .args(["-t", &self.secs.to_string(), "-O", "1", "-J"])
        .stdin(Stdio::null());
        if self.download {
            c.arg("-R");
        }
        c
    }

    /// Receiver's average throughput in bit/s.
    pub fn result(out: &Output) -> f64 {
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("iperf3 JSON: {e}: {text}"));
        assert!(
            out.status.success(),
            "iperf3 failed: {}",
            v["error"].as_str().unwrap_or(&text)
        );
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or_else(|| panic!("no sum_received in {text}"))
    }

    pub fn run(&self) -> f64 {
        Self::result(&self.command().output().expect("run iperf3"))
    }
}

/// Run several iperf3 tests at the same time; results in order.
pub fn concurrently(tests: &[Iperf]) -> Vec<f64> {
    let children: Vec<_> = tests
        .iter()
        .map(|t| {
            t.command()
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn iperf3")
        })
        .collect();
    children
        .into_iter()
        .map(|c| Iperf::result(&c.wait_with_output().expect("wait iperf3")))
        .collect()
}

/// `dig NAME A` from `ns` at `server`: (status, answers); status "NO ANSWER"
/// when nothing came back.
pub fn dig(ns: &str, server: &str, name: &str) -> (String, Vec<String>) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "dig", &format!("@{server}"), name, "A"])
        .args(["+time=2", "+tries=2", "+noall", "+comments", "+answer"])
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
        .to_string();
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    (status, answers)
}

/// `curl` from `ns` (certificates not checked, 6 s at most); Ok(body) or
/// Err(curl's complaint).
pub fn curl(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "-k", "--max-time", "6"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// HTTPS GET of `path` on `name` at `server` (the name in SNI and Host,
/// no DNS).
pub fn https(ns: &str, name: &str, server: &str, path: &str) -> Result<String, String> {
    curl(
        ns,
        &[
            "--resolve",
            &format!("{name}:443:{server}"),
            &format!("https://{name}{path}"),
        ],
    )
}

/// The client's first QUIC Initial from the recorded fixture (SNI
/// quic.example.go.id), as hex: the agent decrypts it from the payload alone.
pub fn quic_initial_hex() -> String {
    let text = crate::common::tshark(&[
        "-r",
        &crate::common::fixtures_dir()
            .join("quic.pcapng")
            .display()
            .to_string(),
        "-n",
        "-Y",
        "udp.dstport == 443 && tls.handshake.extensions_server_name == \"quic.example.go.id\"",
        "-T",
        "fields",
        "-e",
        "udp.payload",
    ]);
    let hex = text.lines().next().unwrap_or("").replace(':', "");
    assert!(hex.len() >= 2400, "no QUIC Initial in the fixture: {text}");
    hex
}
