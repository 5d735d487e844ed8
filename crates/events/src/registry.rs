//! Administration of the schema registry through its Confluent-compatible REST API: what the
//! tooling and the tests need beyond encoding (subjects, versions, compatibility).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::catalogue::Topic;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("schema registry answered {status}: {body}")]
    Status { status: u16, body: String },
}

impl RegistryError {
    /// HTTP status of a refusal (409 = incompatible schema, 422 = invalid schema), if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            RegistryError::Http(e) => e.status().map(|s| s.as_u16()),
        }
    }
}

/// How to reach the schema registry: the base URL of its Confluent-compatible API (for
/// Apicurio: `http://host:8081/apis/ccompat/v7`), and where it needs them, HTTP basic
/// credentials (Confluent's `user:password` user info) and the CA bundle that signs its
/// certificate. Read from the environment by `service_kit::kafka`; the password never prints.
#[derive(Clone)]
pub struct RegistryAccess {
    url: String,
    basic_auth: Option<(String, String)>,
    ca_bundle: Option<Vec<reqwest::Certificate>>,
}

impl std::fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAccess")
            .field("url", &self.url)
            .field("user", &self.basic_auth.as_ref().map(|(user, _)| user))
            .field("password", &self.basic_auth.as_ref().map(|_| "***"))
            .field("ca_bundle", &self.ca_bundle.as_ref().map(Vec::len))
            .finish()
    }
}

impl RegistryAccess {
    /// An unauthenticated registry at `url` (a local one, the tests').
    pub fn plain(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            basic_auth: None,
            ca_bundle: None,
        }
    }

    /// Authenticate with HTTP basic auth, from Confluent's `user:password` form.
    pub fn with_user_info(mut self, user_info: &str) -> Result<Self, String> {
        match user_info.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                self.basic_auth = Some((user.to_owned(), password.to_owned()));
                Ok(self)
            }
            _ => Err("must be user:password".to_owned()),
        }
    }

    /// Trust the CA certificates of a PEM bundle for the registry's TLS certificate (in
    /// addition to the system's).
    pub fn with_ca_bundle(mut self, pem: &[u8]) -> Result<Self, String> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        if certs.is_empty() {
            return Err("holds no PEM certificate".to_owned());
        }
        self.ca_bundle = Some(certs);
        Ok(self)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The HTTP client settings every registry client of this crate starts from: timeout, no
    /// proxy, the CA bundle.
    pub(crate) fn http_builder(&self, timeout: Duration) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder().timeout(timeout).no_proxy();
        for cert in self.ca_bundle.iter().flatten() {
            builder = builder.add_root_certificate(cert.clone());
        }
        builder
    }

    pub(crate) fn basic_auth(&self) -> Option<(&str, &str)> {
        self.basic_auth
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }
}

/// A client of the registry's Confluent-compatible API (see [`RegistryAccess`]).
#[derive(Debug, Clone)]
pub struct RegistryAdmin {
    base: String,
    http: reqwest::Client,
    access: RegistryAccess,
}

#[derive(Debug, Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompatibilityResponse {
    #[serde(alias = "compatibility")]
    compatibility_level: String,
}

#[derive(Debug, Deserialize)]
struct IsCompatibleResponse {
    is_compatible: bool,
}

impl RegistryAdmin {
    /// An unauthenticated registry at `base_url`.
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        Self::connect(&RegistryAccess::plain(base_url))
    }

    pub fn connect(access: &RegistryAccess) -> Result<Self, RegistryError> {
        Ok(Self {
            base: access.url().to_owned(),
            http: access.http_builder(Duration::from_secs(10)).build()?,
            access: access.clone(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match self.access.basic_auth() {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, RegistryError> {
        let status = resp.status();
        if status.is_success() {
            Ok(resp)
        } else {
            let body = resp.text().await.unwrap_or_default();
            Err(RegistryError::Status {
                status: status.as_u16(),
                body,
            })
        }
    }

    /// All subjects the registry holds.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let resp = self
            .request(reqwest::Method::GET, "/subjects")
            .send()
            .await?;
        Ok(Self::check(resp).await?.json().await?)
    }

    /// Version numbers of a subject.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let resp = self
            .request(
                reqwest::Method::GET,
                &format!("/subjects/{subject}/versions"),
            )
            .send()
            .await?;
        Ok(Self::check(resp).await?.json().await?)
    }

    /// Register an Avro schema under a subject; returns its id. The registry refuses (409) a
    /// schema incompatible with the subject's compatibility rule.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/subjects/{subject}/versions"),
            )
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "schema": schema, "schemaType": "AVRO" }))
            .send()
            .await?;
        Ok(Self::check(resp).await?.json::<IdResponse>().await?.id)
    }

    /// Delete one version of a subject for good: the soft delete the Confluent API requires
    /// first, then the permanent one (its schema id is then unknown to the registry).
    pub async fn delete_version(&self, subject: &str, version: u32) -> Result<(), RegistryError> {
        for query in ["", "?permanent=true"] {
            let resp = self
                .request(
                    reqwest::Method::DELETE,
                    &format!("/subjects/{subject}/versions/{version}{query}"),
                )
                .send()
                .await?;
            Self::check(resp).await?;
        }
        Ok(())
    }

    /// Whether `schema` could be registered as the next version of `subject`.
    pub async fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/compatibility/subjects/{subject}/versions/latest"),
            )
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "schema": schema, "schemaType": "AVRO" }))
            .send()
            .await?;
        Ok(Self::check(resp)
            .await?
            .json::<IsCompatibleResponse>()
            .await?
            .is_compatible)
    }

    /// Set the compatibility level of one subject (e.g. `BACKWARD`).
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let resp = self
            .request(reqwest::Method::PUT, &format!("/config/{subject}"))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "compatibility": level }))
            .send()
            .await?;
        Self::check(resp).await?;
        Ok(())
    }

    /// The compatibility level of a subject, or the global one when `subject` is `None`.
    pub async fn compatibility(&self, subject: Option<&str>) -> Result<String, RegistryError> {
        let path = match subject {
            Some(s) => format!("/config/{s}?defaultToGlobal=true"),
            None => "/config".to_owned(),
        };
        let resp = self.request(reqwest::Method::GET, &path).send().await?;
        Ok(Self::check(resp)
            .await?
            .json::<CompatibilityResponse>()
            .await?
            .compatibility_level)
    }

    /// Register every topic's schema with compatibility BACKWARD; returns (topic, id).
    pub async fn register_catalogue(&self) -> Result<Vec<(Topic, u32)>, RegistryError> {
        let mut ids = Vec::with_capacity(Topic::ALL.len());
        for topic in Topic::ALL {
            let subject = topic.subject();
            let id = self.register(&subject, topic.spec().schema).await?;
            self.set_compatibility(&subject, "BACKWARD").await?;
            ids.push((topic, id));
        }
        Ok(ids)
    }

    /// Whether the registry answers at all.
    pub async fn ping(&self) -> bool {
        self.subjects().await.is_ok()
    }
}
