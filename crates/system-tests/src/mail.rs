//! The SMTP sink (Mailpit, started by `make test`): what mail arrived for whom.

use serde_json::Value;

fn api() -> String {
    std::env::var("TEST_MAILPIT_API").unwrap_or_else(|_| "http://127.0.0.1:8025/api/v1".into())
}

/// Summaries of the messages sent to `address`.
pub async fn messages_to(address: &str) -> Vec<Value> {
    let url = format!("{}/search?query=to:{}&limit=200", api(), address);
    let body: Value = reqwest::get(url)
        .await
        .expect("Mailpit API (scripts/smtp-sink.sh start)")
        .json()
        .await
        .unwrap();
    body["messages"].as_array().cloned().unwrap_or_default()
}

/// The text body of one message.
pub async fn text_of(id: &str) -> String {
    let body: Value = reqwest::get(format!("{}/message/{id}", api()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["Text"].as_str().unwrap_or_default().to_owned()
}
