//! The SMTP sink (Mailpit, started by `make test`): what mail arrived for whom.

use serde_json::Value;

fn api() -> String {
    std::env::var("TEST_MAILPIT_API").unwrap_or_else(|_| "http://127.0.0.1:8025/api/v1".into())
}

async fn search(address: &str, limit: usize) -> Value {
    let url = format!("{}/search?query=to:{address}&limit={limit}", api());
    reqwest::get(url)
        .await
        .expect("Mailpit API (scripts/smtp-sink.sh start)")
        .json()
        .await
        .unwrap()
}

/// Summaries of the (newest 200) messages sent to `address`.
pub async fn messages_to(address: &str) -> Vec<Value> {
    search(address, 200).await["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// How many messages were sent to `address`.
pub async fn count_to(address: &str) -> usize {
    search(address, 1).await["messages_count"]
        .as_u64()
        .unwrap_or(0) as usize
}

/// The Message-ID of every message sent to `address` (all pages), one entry per message
/// received: the same id twice is one mail transmitted twice.
pub async fn message_ids_to(address: &str) -> Vec<String> {
    const PAGE: usize = 500;
    let mut ids = Vec::new();
    loop {
        let url = format!(
            "{}/search?query=to:{address}&start={}&limit={PAGE}",
            api(),
            ids.len()
        );
        let page: Value = reqwest::get(url)
            .await
            .expect("Mailpit API (scripts/smtp-sink.sh start)")
            .json()
            .await
            .unwrap();
        let got: Vec<String> = page["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["MessageID"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let done = got.len() < PAGE;
        ids.extend(got);
        if done {
            return ids;
        }
    }
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
