//! Ed25519 signatures on policies (Pergub Kalteng 24/2022 Pasal 20:
//! authenticity and non-repudiation). The collector signs the exact JSON
//! bytes it sends; the agent verifies them against the key it pinned at
//! enrollment before it parses anything.

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use simpul_proto::policy::Policy;
use simpul_proto::signed::SignedPolicy;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signing key is not a valid Ed25519 key (PKCS#8)")]
    BadKey,
    #[error("cannot generate a signing key")]
    Generate,
    #[error("signed by key {got}, but this node trusts key {want} (a rotated key needs the agent re-enrolled or the new key installed)")]
    OtherKey { got: String, want: String },
    #[error("the signature does not match the policy (forged or damaged)")]
    Forged,
    #[error("the signed policy does not parse: {0}")]
    Unparsable(String),
}

/// Hex of the first 8 bytes of the public key's SHA-256.
pub fn key_id(public_key: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, public_key);
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The collector's signing key.
pub struct Signer {
    pair: Ed25519KeyPair,
}

impl Signer {
    /// A new key as PKCS#8 bytes (to store, 0600).
    pub fn generate_pkcs8() -> Result<Vec<u8>, SignatureError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| SignatureError::Generate)
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Signer, SignatureError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(|pair| Signer { pair })
            .map_err(|_| SignatureError::BadKey)
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    pub fn sign(&self, policy: &Policy) -> SignedPolicy {
        let policy_json = policy.to_json();
        SignedPolicy {
            signature: self.pair.sign(policy_json.as_bytes()).as_ref().to_vec(),
            key_id: key_id(self.pair.public_key().as_ref()),
            policy_json,
        }
    }
}

/// Check the signature with the pinned key, then parse.
pub fn verify(signed: &SignedPolicy, public_key: &[u8]) -> Result<Policy, SignatureError> {
    let want = key_id(public_key);
    if signed.key_id != want {
        return Err(SignatureError::OtherKey {
            got: signed.key_id.chars().take(16).collect(),
            want,
        });
    }
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(signed.policy_json.as_bytes(), &signed.signature)
        .map_err(|_| SignatureError::Forged)?;
    Policy::from_json(&signed.policy_json).map_err(|e| SignatureError::Unparsable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::parse(
            "version = 3\nagency = \"a\"\n[allocation]\ndownload = { rate_bps = 1, ceil_bps = 1 }\nupload = { rate_bps = 1, ceil_bps = 1 }\n",
        )
        .unwrap()
    }

    #[test]
    fn signed_policies_verify_and_forgeries_do_not() {
        let signer = Signer::from_pkcs8(&Signer::generate_pkcs8().unwrap()).unwrap();
        let pk = signer.public_key();
        let signed = signer.sign(&policy());
        assert_eq!(verify(&signed, &pk).unwrap(), policy());

        let mut tampered = signed.clone();
        tampered.policy_json = tampered
            .policy_json
            .replace("\"version\":3", "\"version\":4");
        assert_eq!(verify(&tampered, &pk), Err(SignatureError::Forged));

        let other = Signer::from_pkcs8(&Signer::generate_pkcs8().unwrap()).unwrap();
        let foreign = other.sign(&policy());
        assert!(matches!(
            verify(&foreign, &pk),
            Err(SignatureError::OtherKey { .. })
        ));
        // Claiming the trusted key id does not help a foreign signature.
        let mut claimed = foreign;
        claimed.key_id = key_id(&pk);
        assert_eq!(verify(&claimed, &pk), Err(SignatureError::Forged));
        assert!(Signer::from_pkcs8(b"nope").is_err());
    }
}
