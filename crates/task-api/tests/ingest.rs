//! Tasks announced on task.created by other producers appear in the API, once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use events::{TaskCreatedEvent, sample};
use service_kit::testing::{self, Backend};
use support::*;

fn occurrence(user: &str, series: &str, index: i64) -> TaskCreatedEvent {
    let mut e = sample::task_created(user);
    e.task_id = events::ids::occurrence_task_id(series, index).to_string();
    e.series_id = Some(series.to_owned());
    e.occurrence_index = Some(index);
    e.title = format!("Occurrence {index}");
    e.category_id = None;
    e
}

async fn a_foreign_task_appears_once_even_when_published_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let series = uuid::Uuid::new_v4().to_string();
    let recurring = publisher_as("recurring-task-service");

    let first = occurrence(&user.id, &series, 1);
    recurring.publish(&first, None).await.unwrap();
    // The same event replayed, and the same task announced again under a new event id.
    recurring.publish(&first, None).await.unwrap();
    let mut again = first.clone();
    again.event_id = uuid::Uuid::new_v4().to_string();
    recurring.publish(&again, None).await.unwrap();
    // task-api's own events are skipped (the task is stored already, or here: is not ours to store).
    let own = publisher_as("task-api");
    let mut mine = sample::task_created(&user.id);
    mine.title = "Published by task-api".into();
    own.publish(&mine, None).await.unwrap();
    // A sentinel on the same key (so the same partition, after all of the above).
    let sentinel = occurrence(&user.id, &series, 2);
    recurring.publish(&sentinel, None).await.unwrap();

    let items = testing::wait_for(
        "the sentinel task appears",
        Duration::from_secs(60),
        || async {
            let items = app.all_tasks(&user, "sort=created_at").await;
            items
                .iter()
                .any(|t| t["id"] == sentinel.task_id.as_str())
                .then_some(items)
        },
    )
    .await;
    let copies: Vec<&serde_json::Value> = items
        .iter()
        .filter(|t| t["id"] == first.task_id.as_str())
        .collect();
    assert_eq!(copies.len(), 1, "{items:?}");
    let t = copies[0];
    assert_eq!(t["series_id"], series.as_str());
    assert_eq!(t["occurrence_index"], 1);
    assert_eq!(t["title"], "Occurrence 1");
    assert_eq!(t["priority"], "high");
    assert_eq!(t["recurrence"]["rrule"], "FREQ=WEEKLY;BYDAY=MO,WE");
    assert_eq!(t["recurrence"]["timezone"], "Europe/Berlin");
    assert_eq!(t["reminders"].as_array().unwrap().len(), 2);
    assert_eq!(t["tags"], serde_json::json!(["home", "weekly"]));
    assert_eq!(
        items.len(),
        2,
        "the sentinel and occurrence 1, nothing else: {items:?}"
    );
    // Ingested tasks are the user's like any other: they can be completed through the API.
    let done = app
        .req(
            reqwest::Method::POST,
            &format!("/api/tasks/{}/complete", first.task_id),
            Some(&user.token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(
        done.json::<serde_json::Value>().await.unwrap()["version"],
        2
    );
    app.stop().await;
}

#[tokio::test]
async fn a_foreign_task_appears_once_even_when_published_twice_on_sqlite() {
    a_foreign_task_appears_once_even_when_published_twice(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_foreign_task_appears_once_even_when_published_twice_on_postgres() {
    a_foreign_task_appears_once_even_when_published_twice(Backend::Postgres).await;
}
