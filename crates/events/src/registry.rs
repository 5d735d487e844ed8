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

/// A client of the registry's Confluent-compatible API at a base URL
/// (for Apicurio: `http://host:8081/apis/ccompat/v7`).
#[derive(Debug, Clone)]
pub struct RegistryAdmin {
    base: String,
    http: reqwest::Client,
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
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .build()?,
        })
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
            .http
            .get(format!("{}/subjects", self.base))
            .send()
            .await?;
        Ok(Self::check(resp).await?.json().await?)
    }

    /// Version numbers of a subject.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let resp = self
            .http
            .get(format!("{}/subjects/{subject}/versions", self.base))
            .send()
            .await?;
        Ok(Self::check(resp).await?.json().await?)
    }

    /// Register an Avro schema under a subject; returns its id. The registry refuses (409) a
    /// schema incompatible with the subject's compatibility rule.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let resp = self
            .http
            .post(format!("{}/subjects/{subject}/versions", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "schema": schema, "schemaType": "AVRO" }))
            .send()
            .await?;
        Ok(Self::check(resp).await?.json::<IdResponse>().await?.id)
    }

    /// Whether `schema` could be registered as the next version of `subject`.
    pub async fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        let resp = self
            .http
            .post(format!(
                "{}/compatibility/subjects/{subject}/versions/latest",
                self.base
            ))
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
            .http
            .put(format!("{}/config/{subject}", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "compatibility": level }))
            .send()
            .await?;
        Self::check(resp).await?;
        Ok(())
    }

    /// The compatibility level of a subject, or the global one when `subject` is `None`.
    pub async fn compatibility(&self, subject: Option<&str>) -> Result<String, RegistryError> {
        let url = match subject {
            Some(s) => format!("{}/config/{s}?defaultToGlobal=true", self.base),
            None => format!("{}/config", self.base),
        };
        let resp = self.http.get(url).send().await?;
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
