//! A browser's Web Push subscription as the page posts it (`PushSubscription.toJSON()`),
//! parsed into a valid one.

use base64::Engine as _;
use serde::Deserialize;
use service_kit::push::{AUTH_BYTES, BASE64URL};
use utoipa::ToSchema;

use super::Invalid;
use super::user::MAX_URL_LEN;

/// `POST /api/me/push-subscriptions`: what `PushSubscription.toJSON()` gives.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSubscriptionRequest {
    /// The push service URL (RFC 8030) the browser was given.
    pub endpoint: String,
    /// Ignored: push services say when a subscription is gone (404/410).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub expiration_time: Option<serde_json::Value>,
    pub keys: PushKeys,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PushKeys {
    /// The browser's P-256 public key, base64url (65 bytes uncompressed).
    pub p256dh: String,
    /// The 16-byte auth secret, base64url.
    pub auth: String,
}

/// A subscription that can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPushSubscription {
    pub endpoint: String,
    /// base64url without padding.
    pub p256dh: String,
    pub auth: Vec<u8>,
}

impl PushSubscriptionRequest {
    pub fn parse(&self) -> Result<NewPushSubscription, Invalid> {
        let mut invalid = Invalid::new();
        let endpoint = invalid.check("endpoint", parse_endpoint(&self.endpoint));
        let p256dh = invalid.check("keys.p256dh", parse_p256dh(&self.keys.p256dh));
        let auth = invalid.check("keys.auth", parse_auth(&self.keys.auth));
        invalid.finish(|| {
            Some(NewPushSubscription {
                endpoint: endpoint?,
                p256dh: p256dh?,
                auth: auth?,
            })
        })
    }
}

/// Kept byte for byte as the browser gave it (the push service's URL is opaque): only checked
/// to be an http(s) URL with a host, like a webhook URL.
fn parse_endpoint(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.len() > MAX_URL_LEN {
        return Err(format!("must have at most {MAX_URL_LEN} characters"));
    }
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.to_owned())
        }
        _ => Err("must be the https:// URL the browser's push service gave".to_owned()),
    }
}

fn parse_p256dh(value: &str) -> Result<String, String> {
    let bytes = BASE64URL
        .decode(value.trim())
        .map_err(|_| "must be base64url".to_owned())?;
    if bytes.len() != 65 {
        return Err("must be an uncompressed P-256 public key (65 bytes)".to_owned());
    }
    p256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| "is not a P-256 public key".to_owned())?;
    Ok(BASE64URL.encode(bytes))
}

fn parse_auth(value: &str) -> Result<Vec<u8>, String> {
    let bytes = BASE64URL
        .decode(value.trim())
        .map_err(|_| "must be base64url".to_owned())?;
    if bytes.len() != AUTH_BYTES {
        return Err(format!("must be {AUTH_BYTES} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(endpoint: &str, p256dh: &str, auth: &str) -> PushSubscriptionRequest {
        PushSubscriptionRequest {
            endpoint: endpoint.into(),
            expiration_time: None,
            keys: PushKeys {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
        }
    }

    #[test]
    fn a_browser_subscription_parses_and_bad_keys_name_their_field() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let key = p256::SecretKey::from_slice(&[3u8; 32]).unwrap();
        let public = BASE64URL.encode(key.public_key().to_encoded_point(false).as_bytes());
        let auth = BASE64URL.encode([9u8; 16]);
        let ok = request("https://push.example.com/send/x?y=1", &public, &auth)
            .parse()
            .unwrap();
        assert_eq!(ok.endpoint, "https://push.example.com/send/x?y=1");
        assert_eq!(ok.p256dh, public);
        assert_eq!(ok.auth, vec![9u8; 16]);

        let bad = request("ftp://x", "AAAA", "short").parse().unwrap_err();
        let fields: Vec<&str> = bad.fields().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["endpoint", "keys.p256dh", "keys.auth"]);
    }
}
