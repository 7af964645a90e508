//! The shipped example configuration must stay valid.

#[test]
fn configs_agent_toml_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/agent.toml");
    let cfg = simpul_agent::config::AgentConfig::load(&path).expect("configs/agent.toml parses");
    assert_eq!(cfg.agencies.len(), 1);
    assert_eq!(cfg.flows.max_flows, 500_000);
}

/// The commented `[collector]` example, uncommented, must parse too.
#[test]
fn commented_collector_example_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/agent.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("# [collector]")
        .expect("configs/agent.toml documents [collector]");
    let example: Vec<&str> = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter(|l| !l.starts_with("# #") && *l != "#")
        .map(|l| l.trim_start_matches("# "))
        .collect();
    let toml = format!("[agent]\nid = \"x\"\n{}\n", example.join("\n"));
    let cfg = simpul_agent::config::AgentConfig::parse(&toml, &path).expect(&toml);
    let c = cfg.collector.expect("section parsed");
    assert_eq!(c.spool_quota_bytes, 512 << 20);
    assert!(c.ca_cert.is_some());
}
