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

/// TCP goodput over a link-layer allocation on a 1500-byte MTU: 1448 payload
/// bytes (MSS with timestamps) per 1514-byte Ethernet frame, which is what
/// HTB counts.
pub const GOODPUT_PER_LINK_BIT: f64 = 1448.0 / 1514.0;

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
        let state = self.dir.path().join("state");
        let flows = self.dir.path().join("flows.jsonl");
        let policy_line = policy_file
            .map(|p| format!("policy_file = {:?}\n", p.display().to_string()))
            .unwrap_or_default();
        std::fs::write(
            self.dir.path().join("inventory.toml"),
            r#"intranet = ["10.0.0.0/8"]
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
"#,
        )
        .expect("write inventory.toml");
        std::fs::write(
            &self.config,
            format!(
                r#"[agent]
id = "router-test"
state_dir = {state:?}
[capture]
interfaces = ["lan0"]
[output]
flows_jsonl = {flows:?}
[standalone]
inventory_file = "inventory.toml"
{policy_line}[enforce]
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
        let out = self.apply_args(policy, None, extra);
        assert!(
            out.status.success(),
            "policy apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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
