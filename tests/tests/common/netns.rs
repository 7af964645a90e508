//! Throwaway network namespaces for tests; everything is removed on drop.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

pub fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "command failed: {cmd}");
}

pub fn sh_out(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        o.status.success(),
        "command failed: {cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A set of namespaces and the processes started in them.
pub struct Lab {
    pub prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    /// `tag` keeps concurrent tests apart; the pid keeps concurrent runs apart.
    pub fn new(tag: &str) -> Lab {
        Lab {
            prefix: format!("s{}{}", tag, std::process::id() % 100_000),
            namespaces: Vec::new(),
            children: Vec::new(),
        }
    }

    pub fn ns(&mut self, name: &str) -> String {
        let full = format!("{}-{name}", self.prefix);
        let _ = Command::new("ip").args(["netns", "del", &full]).status();
        sh(&format!("ip netns add {full}"));
        sh(&format!("ip -n {full} link set lo up"));
        // No IPv6 autoconf chatter (router solicitations, MLD) unless a test adds addresses.
        sh(&format!("ip netns exec {full} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"));
        self.namespaces.push(full.clone());
        full
    }

    /// A veth pair between two namespaces with IPv4 addresses (CIDR notation).
    pub fn link(&mut self, a: &str, a_if: &str, a_addr: &str, b: &str, b_if: &str, b_addr: &str) {
        sh(&format!(
            "ip link add {a_if} netns {a} type veth peer name {b_if} netns {b}"
        ));
        sh(&format!("ip -n {a} addr add {a_addr} dev {a_if}"));
        sh(&format!("ip -n {b} addr add {b_addr} dev {b_if}"));
        sh(&format!("ip -n {a} link set {a_if} up"));
        sh(&format!("ip -n {b} link set {b_if} up"));
    }

    /// Start a process inside a namespace; it is killed on drop.
    pub fn spawn(&mut self, ns: &str, args: &[&str], quiet: bool) -> usize {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null());
        if quiet {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn spawn_piped(&mut self, ns: &str, args: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn child(&mut self, idx: usize) -> &mut Child {
        &mut self.children[idx]
    }

    /// Send a signal and wait for the process to exit.
    pub fn signal_and_wait(&mut self, idx: usize, signal: &str) -> std::process::ExitStatus {
        let pid = self.children[idx].id();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status();
        self.children[idx].wait().expect("wait")
    }

    pub fn exec(&self, ns: &str, cmd: &str) -> String {
        sh_out(&format!("ip netns exec {ns} {cmd}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| {
                    for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                });
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Wait until `probe` returns true, up to `secs` seconds (setup only, never a
/// timed assertion on the product).
pub fn wait_for(secs: u64, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if probe() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
