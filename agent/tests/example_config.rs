//! The shipped example configuration must stay valid.

#[test]
fn configs_agent_toml_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/agent.toml");
    let cfg = simpul_agent::config::AgentConfig::load(&path).expect("configs/agent.toml parses");
    assert_eq!(cfg.agencies.len(), 1);
    assert_eq!(cfg.flows.max_flows, 500_000);
}
