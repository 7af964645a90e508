//! A policy as the collector signed it: the exact JSON bytes and an Ed25519
//! signature over them. Signing bytes, not a re-serialized structure, means
//! no canonical form is needed: the agent verifies what it received, then
//! parses it. Verification and signing live in `simpul_core::signing`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPolicy {
    /// `Policy` as JSON.
    pub policy_json: String,
    /// Ed25519 signature of `policy_json`'s bytes (64 bytes).
    pub signature: Vec<u8>,
    /// Which key signed (hex of the first 8 bytes of the public key's
    /// SHA-256), so a rotated key is told apart from a forged signature.
    pub key_id: String,
}
