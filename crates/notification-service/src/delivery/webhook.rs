//! Webhooks: a signed JSON POST to the user's URL, over http or https (rustls with the ring
//! provider and the Mozilla roots), bounded by a timeout. 2xx is delivered; 408, 429, 5xx and
//! network trouble may work later; any other answer is final. Redirects are not followed (a
//! signed body must go where the user said).

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use service_kit::webhook::{
    SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookKey, error_chain, signature,
};

use super::AttemptError;

pub const NOTIFICATION_ID_HEADER: &str = "X-Todo-Notification-Id";
const AGENT: &str = concat!(
    "todo-platform-notification-service/",
    env!("CARGO_PKG_VERSION")
);
/// Most of a response body read (to reuse the connection); the rest is dropped.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

pub struct WebhookSender {
    client: super::HttpsClient,
    key: WebhookKey,
    timeout: Duration,
}

/// A webhook URL the service may call: http or https, with a host.
pub fn checked_url(url: &str) -> Result<hyper::Uri, AttemptError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| AttemptError::Permanent(format!("the webhook URL is not valid: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(AttemptError::Permanent(
            "the webhook URL must be http:// or https:// with a host".to_owned(),
        ));
    }
    parsed
        .as_str()
        .parse()
        .map_err(|e| AttemptError::Permanent(format!("the webhook URL is not valid: {e}")))
}

impl WebhookSender {
    pub fn new(key: WebhookKey, timeout: Duration) -> Result<Self, String> {
        let client = super::https_client()?;
        Ok(Self {
            client,
            key,
            timeout,
        })
    }

    /// POST `body` to `url`, signed with the user's secret.
    pub async fn send(
        &self,
        url: &str,
        user_id: &str,
        body: &serde_json::Value,
        notification_id: &str,
    ) -> Result<(), AttemptError> {
        let uri = checked_url(url)?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| AttemptError::Permanent(format!("cannot encode the body: {e}")))?;
        let timestamp = chrono::Utc::now().timestamp();
        let sig = signature(&self.key.user_secret(user_id), timestamp, &bytes);
        let header = |v: &str| {
            HeaderValue::from_str(v)
                .map_err(|e| AttemptError::Permanent(format!("bad header value: {e}")))
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static(AGENT))
            .header(TIMESTAMP_HEADER, header(&timestamp.to_string())?)
            .header(SIGNATURE_HEADER, header(&sig)?)
            .header(NOTIFICATION_ID_HEADER, header(notification_id)?)
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| AttemptError::Permanent(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                AttemptError::Transient(format!("webhook request failed: {}", error_chain(&e)))
            })?;
            let status = response.status();
            // Read (a bounded part of) the body so the connection can be reused.
            let _ = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await;
            Ok::<StatusCode, AttemptError>(status)
        };
        let status = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                AttemptError::Transient(format!(
                    "webhook timed out after {} ms",
                    self.timeout.as_millis()
                ))
            })??;
        classify(status)
    }
}

fn classify(status: StatusCode) -> Result<(), AttemptError> {
    if status.is_success() {
        Ok(())
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Err(AttemptError::Transient(format!(
            "webhook answered HTTP {status}"
        )))
    } else {
        Err(AttemptError::Permanent(format!(
            "webhook answered HTTP {status}"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_are_called() {
        assert!(checked_url("https://hooks.example.com/todo?x=1").is_ok());
        assert!(checked_url("http://127.0.0.1:9000/hook").is_ok());
        for bad in [
            "ftp://example.com/x",
            "file:///etc/passwd",
            "not a url",
            "http://",
        ] {
            assert!(
                matches!(checked_url(bad), Err(AttemptError::Permanent(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn answers_are_classified() {
        assert!(classify(StatusCode::NO_CONTENT).is_ok());
        for transient in [500, 502, 503, 408, 429] {
            let s = StatusCode::from_u16(transient).unwrap();
            assert!(
                matches!(classify(s), Err(AttemptError::Transient(_))),
                "{s}"
            );
        }
        for permanent in [301, 400, 401, 404, 410] {
            let s = StatusCode::from_u16(permanent).unwrap();
            assert!(
                matches!(classify(s), Err(AttemptError::Permanent(_))),
                "{s}"
            );
        }
    }
}
