//! Web Push subscriptions on the wire between task-api and notification-service.
//!
//! task-api owns a user's push subscriptions and sends them to notification-service on
//! user.updated. A subscription's `auth` secret (RFC 8291) lets anyone who also knows the
//! endpoint send that browser messages it will show, and the contract puts no secret on a topic
//! in clear: task-api seals it with AES-256-GCM under a key both services derive (HKDF-SHA256)
//! from the server key they already share, `WEBHOOK_SIGNING_KEY`, and notification-service
//! opens it just before sending. A second shared setting would add a second key to rotate with
//! nothing gained: HKDF's distinct `info` label keeps this key independent of the webhook
//! secrets. The user id and the endpoint are the associated data, so a sealed secret moved to
//! another user's or another endpoint's subscription does not open.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::webhook::WebhookKey;

/// base64url, written without padding (as browsers give the keys), read with or without.
pub const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const NONCE_BYTES: usize = 12;
/// The length of a subscription's auth secret (RFC 8291 §3.2).
pub const AUTH_BYTES: usize = 16;

/// The key that seals subscriptions' auth secrets on user.updated.
#[derive(Clone)]
pub struct PushSealKey(Aes256Gcm);

impl std::fmt::Debug for PushSealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushSealKey(***)")
    }
}

/// Why a sealed auth secret did not open.
#[derive(Debug, thiserror::Error)]
#[error("the push subscription's sealed auth secret does not open: {0}")]
pub struct SealError(&'static str);

impl PushSealKey {
    pub fn derive(server_key: &WebhookKey) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"todo-platform"), server_key.bytes());
        let mut key = [0u8; 32];
        hk.expand(b"push-subscription-auth/v1", &mut key)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
        Self(Aes256Gcm::new(&key.into()))
    }

    /// `auth` sealed for the user's subscription at `endpoint`: base64url(nonce ‖ ciphertext).
    pub fn seal(&self, user_id: &str, endpoint: &str, auth: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(user_id, endpoint);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: auth,
                    aad: &aad,
                },
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM seals any message this short"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        BASE64URL.encode(out)
    }

    /// The auth secret sealed by [`PushSealKey::seal`] for this user and endpoint.
    pub fn open(&self, user_id: &str, endpoint: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = BASE64URL
            .decode(sealed)
            .map_err(|_| SealError("not base64url"))?;
        if bytes.len() <= NONCE_BYTES {
            return Err(SealError("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce
            .try_into()
            .unwrap_or_else(|_| unreachable!("split at NONCE_BYTES"));
        let aad = associated_data(user_id, endpoint);
        self.0
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError("wrong key, user or endpoint"))
    }
}

/// A VAPID key pair's private half (RFC 8292): base64url of the 32-byte P-256 scalar, the form
/// `web-push generate-vapid-keys` and most tools print.
pub fn parse_vapid_private_key(
    name: &'static str,
    text: &str,
) -> Result<p256::SecretKey, crate::config::ConfigError> {
    let bytes = BASE64URL.decode(text.trim()).map_err(|_| {
        crate::config::ConfigError::new(name, "must be base64url (the 32-byte P-256 private key)")
    })?;
    p256::SecretKey::from_slice(&bytes).map_err(|_| {
        crate::config::ConfigError::new(name, "is not a P-256 private key (32 bytes, base64url)")
    })
}

/// A VAPID public key: base64url of the 65-byte uncompressed P-256 point, as the page hands it
/// to `pushManager.subscribe` (`applicationServerKey`).
pub fn parse_vapid_public_key(
    name: &'static str,
    text: &str,
) -> Result<p256::PublicKey, crate::config::ConfigError> {
    let bytes = BASE64URL.decode(text.trim()).map_err(|_| {
        crate::config::ConfigError::new(name, "must be base64url (the 65-byte P-256 public key)")
    })?;
    if bytes.len() != 65 {
        return Err(crate::config::ConfigError::new(
            name,
            "must be the uncompressed P-256 public key (65 bytes, base64url)",
        ));
    }
    p256::PublicKey::from_sec1_bytes(&bytes)
        .map_err(|_| crate::config::ConfigError::new(name, "is not a P-256 public key"))
}

/// The uncompressed public key of a VAPID private key, base64url (what the page needs).
pub fn vapid_public_key_text(key: &p256::SecretKey) -> String {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    BASE64URL.encode(key.public_key().to_encoded_point(false).as_bytes())
}

fn associated_data(user_id: &str, endpoint: &str) -> Vec<u8> {
    // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    let mut aad = (user_id.len() as u64).to_be_bytes().to_vec();
    aad.extend_from_slice(user_id.as_bytes());
    aad.extend_from_slice(endpoint.as_bytes());
    aad
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(k: &str) -> PushSealKey {
        PushSealKey::derive(&WebhookKey::new(k))
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_endpoint_under_the_same_key() {
        let k = key("a-shared-server-key-of-32-characters!");
        let sealed = k.seal("u1", "https://push.example/abc", b"0123456789abcdef");
        assert!(!sealed.contains("0123456789abcdef"));
        assert_eq!(
            k.open("u1", "https://push.example/abc", &sealed).unwrap(),
            b"0123456789abcdef"
        );
        assert!(k.open("u2", "https://push.example/abc", &sealed).is_err());
        assert!(k.open("u1", "https://push.example/abd", &sealed).is_err());
        let other = key("another-server-key-of-32-characters!!");
        assert!(
            other
                .open("u1", "https://push.example/abc", &sealed)
                .is_err()
        );
        assert!(k.open("u1", "https://push.example/abc", "x").is_err());
    }

    #[test]
    fn vapid_keys_are_read_as_base64url_and_bad_ones_name_the_setting() {
        let private = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let text = BASE64URL.encode(private.to_bytes());
        let parsed = parse_vapid_private_key("VAPID_PRIVATE_KEY", &text).unwrap();
        let public = vapid_public_key_text(&parsed);
        assert_eq!(
            parse_vapid_public_key("VAPID_PUBLIC_KEY", &public).unwrap(),
            private.public_key()
        );
        for bad in ["", "!!", "AAAA"] {
            let e = parse_vapid_private_key("VAPID_PRIVATE_KEY", bad).unwrap_err();
            assert!(e.to_string().contains("VAPID_PRIVATE_KEY"), "{e}");
            let e = parse_vapid_public_key("VAPID_PUBLIC_KEY", bad).unwrap_err();
            assert!(e.to_string().contains("VAPID_PUBLIC_KEY"), "{e}");
        }
    }
}
