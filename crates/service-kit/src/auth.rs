//! JWT verification with task-api's public key (SPEC section 6). Only task-api holds the private
//! key and signs; every other service verifies with the public key only.
//!
//! Tokens are EdDSA (Ed25519), issuer `task-api`, audience `todo-platform`, subject the user id.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, required};

pub const ISSUER: &str = "task-api";
pub const AUDIENCE: &str = "todo-platform";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Token id, unique per issued token.
    pub jti: String,
    /// `admin` for operators who may read every user's data; absent for users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

/// Verifies tokens.
///
/// A client sends the same token with every request until it expires, and an Ed25519
/// verification was a tenth of task-api's CPU under a create load (perf). So tokens that
/// verified are remembered with their claims, keyed by the whole token (its signature
/// included: only the very bytes that verified hit), and used until their `exp`; after that
/// they are verified again (and refused). Nothing revokes a token before its `exp` in this
/// system, so the cache changes no answer. Clones share it.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    verified: Arc<quick_cache::sync::Cache<String, Claims>>,
}

/// Tokens remembered as verified (a few hundred bytes each).
const VERIFIED_TOKENS: usize = 10_000;

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVerifier")
    }
}

/// A PEM given inline (`-----BEGIN ...`) or as the path of a file holding it.
pub fn read_pem(name: &'static str, value: &str) -> Result<String, ConfigError> {
    if value.trim_start().starts_with("-----BEGIN") {
        // Environment files often carry the newlines escaped.
        Ok(value.replace("\\n", "\n"))
    } else {
        std::fs::read_to_string(value)
            .map_err(|e| ConfigError::new(name, format!("neither a PEM nor a readable file ({e})")))
    }
}

impl TokenVerifier {
    /// From an Ed25519 public key in PEM.
    pub fn from_pem(pem: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = DecodingKey::from_ed_pem(pem.as_bytes())?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            key,
            validation,
            verified: Arc::new(quick_cache::sync::Cache::new(VERIFIED_TOKENS)),
        })
    }

    /// From `JWT_PUBLIC_KEY` (PEM or path).
    pub fn from_env() -> Result<Self, ConfigError> {
        let pem = read_pem("JWT_PUBLIC_KEY", &required("JWT_PUBLIC_KEY")?)?;
        Self::from_pem(&pem).map_err(|e| {
            ConfigError::new(
                "JWT_PUBLIC_KEY",
                format!("not an Ed25519 public key PEM: {e}"),
            )
        })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if let Some(claims) = self.verified.get(token)
            && claims.exp > chrono::Utc::now().timestamp()
        {
            return Ok(claims);
        }
        let claims = decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// Verify the token of an `Authorization: Bearer <token>` header value.
    pub fn verify_bearer(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?;
        self.verify(token.trim())
    }
}

/// Issues tokens: task-api's side, holding the private key.
#[derive(Clone)]
pub struct TokenSigner {
    key: jsonwebtoken::EncodingKey,
    ttl_seconds: i64,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner")
    }
}

impl TokenSigner {
    /// From an Ed25519 private key in PKCS#8 PEM.
    pub fn from_pem(pem: &str, ttl_seconds: i64) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            key: jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes())?,
            ttl_seconds,
        })
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    /// A signed token for `user_id`.
    pub fn issue(&self, user_id: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        self.issue_at(user_id, now, now + self.ttl_seconds)
    }

    /// A token with the admin role: reads every user's data where a service allows it.
    pub fn issue_admin(&self, user_id: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        self.sign(user_id, now, now + self.ttl_seconds, Some("admin"))
    }

    /// A token with explicit times (tests use it for expired tokens).
    pub fn issue_at(
        &self,
        user_id: &str,
        iat: i64,
        exp: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign(user_id, iat, exp, None)
    }

    fn sign(
        &self,
        user_id: &str,
        iat: i64,
        exp: i64,
        role: Option<&str>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: user_id.to_owned(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
            role: role.map(str::to_owned),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::EdDSA),
            &claims,
            &self.key,
        )
    }
}

/// A fresh Ed25519 key pair as (private PKCS#8 PEM, public SPKI PEM), from the OS's random
/// source. For tests and local development; production keys come from the environment.
pub fn generate_keypair() -> Result<(String, String), String> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| e.to_string())?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok((private.to_string(), public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_with_the_public_key_only() {
        let (private, public) = generate_keypair().unwrap();
        let signer = TokenSigner::from_pem(&private, 3600).unwrap();
        let verifier = TokenVerifier::from_pem(&public).unwrap();
        let token = signer.issue("u-1").unwrap();
        assert_eq!(verifier.verify(&token).unwrap().sub, "u-1");
        assert_eq!(
            verifier
                .verify_bearer(Some(&format!("Bearer {token}")))
                .unwrap()
                .sub,
            "u-1"
        );
    }

    #[test]
    fn a_remembered_token_does_not_let_a_tampered_copy_or_an_expired_token_through() {
        let (private, public) = generate_keypair().unwrap();
        let signer = TokenSigner::from_pem(&private, 3600).unwrap();
        let verifier = TokenVerifier::from_pem(&public).unwrap();
        let token = signer.issue("u-1").unwrap();
        assert_eq!(verifier.verify(&token).unwrap().sub, "u-1");
        // Same claims, another signature: only the very bytes that verified are remembered.
        let (head, signature) = token.rsplit_once('.').unwrap();
        let forged = format!("{head}.{}", signature.chars().rev().collect::<String>());
        assert_eq!(verifier.clone().verify(&forged), Err(AuthError::Invalid));
        assert_eq!(verifier.clone().verify(&token).unwrap().sub, "u-1");
        // A token past its exp is verified again, not answered from memory.
        let now = chrono::Utc::now().timestamp();
        let stale = signer.issue_at("u-1", now - 7200, now - 3600).unwrap();
        let remembered = Claims {
            exp: now - 3600,
            ..verifier.verify(&token).unwrap()
        };
        verifier.verified.insert(stale.clone(), remembered);
        assert_eq!(verifier.verify(&stale), Err(AuthError::Expired));
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let (private, public) = generate_keypair().unwrap();
        let signer = TokenSigner::from_pem(&private, 3600).unwrap();
        let verifier = TokenVerifier::from_pem(&public).unwrap();
        let now = chrono::Utc::now().timestamp();
        let expired = signer.issue_at("u-1", now - 7200, now - 3600).unwrap();
        assert_eq!(verifier.verify(&expired), Err(AuthError::Expired));
        let mut tampered = signer.issue("u-1").unwrap();
        tampered.insert(tampered.len() / 2, 'x');
        assert_eq!(verifier.verify(&tampered), Err(AuthError::Invalid));
        let (other_private, _) = generate_keypair().unwrap();
        let foreign = TokenSigner::from_pem(&other_private, 3600)
            .unwrap()
            .issue("u-1")
            .unwrap();
        assert_eq!(verifier.verify(&foreign), Err(AuthError::Invalid));
        assert_eq!(verifier.verify_bearer(None), Err(AuthError::Missing));
    }
}
