//! Entry points of the wire fuzz targets (`fuzz/`), shared with the stable
//! test below, so the fuzzed code is exactly the product's.

use crate::wire::{self, v2, AgentMessage, CollectorMessage, PROTOCOL_VERSION};

/// Bytes from an agent, as the collector reads them: a binary frame of any
/// version it serves, a JSON text frame; and as a spooled batch (the agent's
/// spool of this and the previous release).
pub fn wire_agent(data: &[u8]) {
    if let Ok((_, m)) = wire::decode_agent(data) {
        agent_reencodes(&m);
    }
    if let Ok(b) = wire::decode_spooled_batch(data) {
        // A spooled batch is sent again in a current frame after a restart.
        agent_reencodes(&AgentMessage::Batch(b));
    }
    let _ = v2::decode_batch(data);
    let _ = wire::decode::<AgentMessage>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = wire::decode_json::<AgentMessage>(text) {
            agent_reencodes(&m);
        }
    }
}

/// Bytes from a collector, as the agent reads them (current and version-2
/// frames, JSON text frames), and as an agent of the previous release does.
pub fn wire_collector(data: &[u8]) {
    if let Ok(m) = wire::decode_collector(data) {
        collector_reencodes(&m);
    }
    let _ = v2::decode_collector(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = wire::decode_json::<CollectorMessage>(text) {
            collector_reencodes(&m);
        }
    }
}

/// Whatever decoded must encode to a frame that decodes again, to the same
/// bytes (a message the collector accepted but cannot store or forward, or
/// that changes on the way, is a protocol bug).
fn agent_reencodes(m: &AgentMessage) {
    let frame = wire::encode(m);
    match wire::decode_agent(&frame) {
        Ok((v, again)) => {
            assert_eq!(v, PROTOCOL_VERSION);
            // Bytes, not values: a NaN `cpu_percent` is unequal to itself.
            assert_eq!(wire::encode(&again), frame, "re-encoding changed");
        }
        Err(e) => panic!("a decoded agent message does not decode again: {e}"),
    }
}

fn collector_reencodes(m: &CollectorMessage) {
    for version in [PROTOCOL_VERSION, 2] {
        // Inventory and Policy have no version-2 form: an error, not a frame.
        let Ok(frame) = wire::encode_collector(version, m) else {
            continue;
        };
        let again = if version == 2 {
            v2::decode_collector(&frame).map(|_| ())
        } else {
            wire::decode_collector(&frame).map(|again| {
                assert_eq!(&again, m, "re-encoding changed");
            })
        };
        if let Err(e) = again {
            panic!("a collector message does not decode in version {version}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use crate::signed::SignedPolicy;
    use crate::wire::{Batch, Enroll, Health, Heartbeat, Hello, InterfaceHealth};
    use crate::wire::{PolicyOutcome, PolicyState};

    /// Valid frames of every message kind (also `fuzz/seeds/`).
    pub(crate) fn agent_seeds() -> Vec<Vec<u8>> {
        let batch = Batch {
            boot_epoch: 7,
            seq: 42,
            sealed_ms: 1_764_236_141_000,
            flows: vec![crate::wire::tests::sample_record(); 2],
            counters: vec![],
            blocked: vec![],
            dropped_records: 3,
            dropped_batches: 0,
        };
        let msgs = [
            AgentMessage::Enroll(Enroll {
                node_id: "dinkes-01".into(),
                token: "t0k3n".into(),
                agent_version: "0.1.0".into(),
                hostname: "r1".into(),
            }),
            AgentMessage::Hello(Hello {
                node_id: "dinkes-01".into(),
                credential: "c".into(),
                agent_version: "0.1.0".into(),
                hostname: "r1".into(),
                boot_epoch: 5,
                protocols: vec![2, 3],
                features: vec!["inventory".into(), "policy".into()],
                inventory_version: 7,
                policy_version: 9,
            }),
            AgentMessage::Batch(batch.clone()),
            AgentMessage::Heartbeat(Heartbeat {
                sent_ms: 1_764_236_141_000,
                health: Health {
                    agent_version: "0.1.0".into(),
                    cpu_percent: 1.5,
                    interfaces: vec![InterfaceHealth {
                        name: "eth0".into(),
                        frames: 10,
                        kernel_drops: 0,
                        queue_drops: 1,
                    }],
                    ..Health::default()
                },
            }),
            AgentMessage::PolicyState(PolicyState {
                version: 3,
                state: PolicyOutcome::Rejected,
                problems: vec![crate::Problem::new("agency", "bad")],
                error: Some("x".into()),
                at_ms: 1,
            }),
            AgentMessage::ListFetch {
                sha256: "ab".repeat(32),
                offset: 1 << 20,
            },
        ];
        let mut out: Vec<Vec<u8>> = msgs.iter().map(wire::encode).collect();
        out.push(wire::encode_batch(&batch));
        out.push(v2::encode(&v2::AgentMessage::Hello(v2::Hello {
            node_id: "n".into(),
            credential: "c".into(),
            agent_version: "0.0.9".into(),
            hostname: "h".into(),
            boot_epoch: 1,
        })));
        out.push(v2::encode(&v2::AgentMessage::Batch(batch.into())));
        // JSON text frames.
        out.extend(msgs.iter().map(|m| serde_json::to_vec(m).unwrap()));
        out
    }

    pub(crate) fn collector_seeds() -> Vec<Vec<u8>> {
        let inv = Inventory::parse(
            "intranet = [\"10.0.0.0/8\"]\n[[agencies]]\ncode = \"a\"\n[[agencies.units]]\ncode = \"u\"\nsubnets = [\"10.1.0.0/24\"]\n[[nodes]]\nid = \"n\"\nagency = \"a\"\nuplink = { down_bps = 10, up_bps = 5 }\n",
        )
        .unwrap();
        let msgs = [
            CollectorMessage::Enrolled {
                node_id: "n".into(),
                credential: "c".into(),
                agency: "a".into(),
                policy_key: vec![7; 32],
            },
            CollectorMessage::Welcome {
                node_id: "n".into(),
                agency: "a".into(),
                heartbeat_interval_ms: 10_000,
                protocol: 3,
                features: vec!["inventory".into()],
                policy_key: vec![7; 32],
            },
            CollectorMessage::Ack {
                boot_epoch: 1,
                seq: 2,
            },
            CollectorMessage::Refused {
                reason: "no".into(),
            },
            CollectorMessage::Inventory(inv),
            CollectorMessage::Policy(SignedPolicy {
                policy_json: "{\"agency\":\"a\"}".into(),
                signature: vec![1; 64],
                key_id: "k".into(),
            }),
            CollectorMessage::ListChunk {
                sha256: "ab".repeat(32),
                offset: 0,
                total: 40,
                data: vec![0x1f, 0x8b, 8, 0, 1, 2, 3],
            },
            CollectorMessage::ListUnavailable {
                sha256: "ab".repeat(32),
                reason: "gone".into(),
            },
        ];
        let mut out: Vec<Vec<u8>> = msgs.iter().map(wire::encode).collect();
        for m in &msgs {
            if let Ok(f) = wire::encode_collector(2, m) {
                out.push(f);
            }
            out.push(serde_json::to_vec(m).unwrap());
        }
        out
    }

    /// Every seed, its truncations and some byte flips.
    fn run(seeds: &[Vec<u8>], f: fn(&[u8])) {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for s in seeds {
            f(s);
            for n in 0..s.len() {
                f(&s[..n]);
            }
            for _ in 0..50 {
                let mut m = s.clone();
                for _ in 0..3 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x as usize) % m.len().max(1);
                    if let Some(b) = m.get_mut(i) {
                        *b ^= (x >> 32) as u8 | 1;
                    }
                }
                f(&m);
            }
        }
    }

    #[test]
    fn wire_agent_seeds_never_panic() {
        let seeds = agent_seeds();
        for s in &seeds[..8] {
            assert!(wire::decode_agent(s).is_ok() || wire::decode_spooled_batch(s).is_ok());
        }
        run(&seeds, wire_agent);
    }

    #[test]
    fn wire_collector_seeds_never_panic() {
        let seeds = collector_seeds();
        assert!(seeds[..6].iter().all(|s| wire::decode_collector(s).is_ok()));
        run(&seeds, wire_collector);
    }

    /// `FUZZ_SEEDS_OUT=dir cargo test -p simpul-proto write_seeds -- --ignored`
    /// writes the seeds as files (what `fuzz/seeds/wire_*` hold).
    #[test]
    #[ignore]
    fn write_seeds() {
        let Ok(dir) = std::env::var("FUZZ_SEEDS_OUT") else {
            return;
        };
        for (name, seeds) in [
            ("wire_agent", agent_seeds()),
            ("wire_collector", collector_seeds()),
        ] {
            let d = std::path::Path::new(&dir).join(name);
            std::fs::create_dir_all(&d).unwrap();
            for (i, s) in seeds.iter().enumerate() {
                std::fs::write(d.join(format!("seed-{i:02}")), s).unwrap();
            }
        }
    }
}
