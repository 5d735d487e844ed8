//! Reading what Mailpit (scripts/smtp-sink.sh, started by `make test`) received, through its
//! HTTP API: the real SMTP server the service sends to in most tests.

use serde_json::Value;

pub fn smtp_url() -> String {
    std::env::var("TEST_SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:1025".into())
}

fn api() -> String {
    std::env::var("TEST_MAILPIT_API").unwrap_or_else(|_| "http://127.0.0.1:8025/api/v1".into())
}

/// A mail as Mailpit parsed it, plus its raw source.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub raw: String,
}

/// The ids of the messages addressed to `address`.
pub async fn ids_to(http: &reqwest::Client, address: &str) -> Vec<String> {
    let url = url::Url::parse_with_params(
        &format!("{}/search", api()),
        &[
            ("query", format!("to:\"{address}\"")),
            ("limit", "50".into()),
        ],
    )
    .unwrap();
    let response =
        http.get(url).send().await.unwrap_or_else(|e| {
            panic!("Mailpit API at {} (scripts/smtp-sink.sh start): {e}", api())
        });
    let body: Value = response.json().await.expect("Mailpit search JSON");
    body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["ID"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn mail(http: &reqwest::Client, id: &str) -> Mail {
    let message: Value = http
        .get(format!("{}/message/{id}", api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw = http
        .get(format!("{}/message/{id}/raw", api()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Mail {
        subject: message["Subject"].as_str().unwrap_or_default().to_owned(),
        text: message["Text"].as_str().unwrap_or_default().to_owned(),
        html: message["HTML"].as_str().unwrap_or_default().to_owned(),
        raw,
    }
}

/// Every mail addressed to `address`.
pub async fn mails_to(http: &reqwest::Client, address: &str) -> Vec<Mail> {
    let mut mails = Vec::new();
    for id in ids_to(http, address).await {
        mails.push(mail(http, &id).await);
    }
    mails
}

/// The subjects of every message addressed to `address`, all pages.
pub async fn subjects_to(http: &reqwest::Client, address: &str) -> Vec<String> {
    const PAGE: usize = 500;
    let mut subjects = Vec::new();
    loop {
        let url = url::Url::parse_with_params(
            &format!("{}/search", api()),
            &[
                ("query", format!("to:\"{address}\"")),
                ("start", subjects.len().to_string()),
                ("limit", PAGE.to_string()),
            ],
        )
        .unwrap();
        let body: Value = http
            .get(url)
            .send()
            .await
            .expect("Mailpit API")
            .json()
            .await
            .expect("Mailpit search JSON");
        let page: Vec<String> = body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["Subject"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let done = page.len() < PAGE;
        subjects.extend(page);
        if done {
            return subjects;
        }
    }
}
