//! Operator passwords: argon2id with the OWASP-recommended parameters
//! (19 MiB, 2 passes, 1 lane: ~30 ms on this machine's core), stored in
//! PHC form so parameters can rise later without a migration.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password: at least {MIN_LEN} characters")]
    TooShort,
    #[error("password: at most {MAX_LEN} characters")]
    TooLong,
    #[error("password: must not be the username")]
    IsUsername,
    #[error("password: control characters are not allowed")]
    Control,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 256;

/// What an operator may choose as a password.
pub fn check_rules(username: &str, password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(PasswordError::TooShort);
    }
    if n > MAX_LEN {
        return Err(PasswordError::TooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::Control);
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(PasswordError::IsUsername);
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// False for a wrong password and for a stored hash that cannot be read.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spend what a real check costs, so an unknown username answers no faster
/// than a wrong password (usernames cannot be enumerated by timing).
pub fn verify_nothing(password: &str) {
    use std::sync::OnceLock;
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("not a password of anyone").unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("kata-sandi-panjang").unwrap();
        let b = hash("kata-sandi-panjang").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("kata-sandi-panjang", &a));
        assert!(!verify("kata-sandi-panjanG", &a));
        assert!(!verify("kata-sandi-panjang", "not a hash"));
    }

    #[test]
    fn rules() {
        assert_eq!(check_rules("budi", "pendek"), Err(PasswordError::TooShort));
        assert_eq!(
            check_rules("budi.santoso", "Budi.Santoso"),
            Err(PasswordError::IsUsername)
        );
        assert_eq!(
            check_rules("budi", "kata\u{7}sandi-x"),
            Err(PasswordError::Control)
        );
        assert_eq!(
            check_rules("budi", &"x".repeat(MAX_LEN + 1)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(check_rules("budi", "cukup-panjang-1"), Ok(()));
    }
}
