//! Argon2id password hashes. Hashing is deliberately slow and memory-hungry (tens of
//! milliseconds, 19 MiB), so it runs on tokio's blocking pool, never on the async executor.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::domain::user::Password;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("hashing task failed: {0}")]
    Task(String),
}

/// A hash of a password nobody has, verified against when the email is unknown so that an
/// unknown email takes as long as a wrong password (no account probing by timing).
static DECOY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"decoy password that no account has")
        .ok()
        .map(|h| h.to_string())
});

/// The PHC string (`$argon2id$v=19$…`) of a password, with a fresh random salt.
pub async fn hash(password: Password) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError::Task(e.to_string()))?
}

/// Whether `password` matches `stored`; with no stored hash (unknown user) the same work is
/// done against a decoy and the answer is `false`.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let Some(hash) = stored.or_else(|| DECOY_HASH.clone()) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        known && ok
    })
    .await
    .unwrap_or(false)
}

/// Compute the decoy hash now rather than during the first login.
pub fn warm_up() {
    let _ = DECOY_HASH.as_ref();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash(Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(h.clone())).await);
        assert!(!verify("wrong horse!".into(), Some(h)).await);
        assert!(!verify("correct horse".into(), None).await);
    }
}
