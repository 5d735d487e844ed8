//! Steady load through the real API, and the ledger of what the API accepted.
//!
//! Each simulated user runs a loop of: create a plain task, update it, create a task with an
//! email reminder a few seconds ahead (never touched again, so the reminder must fire), create
//! a weekly recurring task and complete it (so the next occurrence must be created once), and
//! create a task, share it with a peer (another user of the load) as editor, assign it to the
//! peer (who is mailed "Assigned to you") and have the peer edit it (so the owner and the peer
//! both see its changes live). Only requests the API answered with 2xx enter the ledger;
//! failures during a fault are counted and retried by the next loop iteration, never assumed to
//! have had effects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::UserClient;

/// What one accepted request must have caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Created {
        task_id: String,
        with_reminder: bool,
        series_id: Option<String>,
    },
    Updated {
        task_id: String,
        version: i64,
    },
    Completed {
        task_id: String,
        version: i64,
        series_id: Option<String>,
    },
    /// The task shared with `with_user` (one task.shared naming them).
    Shared {
        task_id: String,
        with_user: String,
    },
    /// The task assigned (one task.assigned of this version).
    Assigned {
        task_id: String,
        version: i64,
    },
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub user: String,
    pub accepted: Accepted,
}

/// Everything the load did, for the checks after the fault healed.
#[derive(Default)]
pub struct Ledger {
    pub entries: Mutex<Vec<Entry>>,
    pub refused: Mutex<Vec<String>>,
}

impl Ledger {
    fn accept(&self, user: &str, accepted: Accepted) {
        self.entries.lock().unwrap().push(Entry {
            user: user.to_owned(),
            accepted,
        });
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    pub fn refused_count(&self) -> usize {
        self.refused.lock().unwrap().len()
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn attempt(
    ledger: &Ledger,
    user: &UserClient,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Option<Value> {
    let (status, response) = user
        .call(method, crate::system::Svc::TaskApi, path, Some(body))
        .await;
    if (200..300).contains(&status) {
        Some(response)
    } else {
        ledger
            .refused
            .lock()
            .unwrap()
            .push(format!("{path}: {status} {response}"));
        None
    }
}

/// One user's loop until `stop` is set; `peer` is who they share with, `reminder_in` how far
/// ahead reminders are set.
pub async fn user_loop(
    user: UserClient,
    peer: UserClient,
    ledger: Arc<Ledger>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    reminder_in: Duration,
) {
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        // A plain task, then an update of it.
        if let Some(task) = attempt(
            &ledger,
            &user,
            reqwest::Method::POST,
            "/api/tasks",
            json!({"title": format!("plain {n}"), "priority": "low"}),
        )
        .await
        {
            let id = task["id"].as_str().unwrap().to_owned();
            ledger.accept(
                &user.id,
                Accepted::Created {
                    task_id: id.clone(),
                    with_reminder: false,
                    series_id: None,
                },
            );
            if let Some(updated) = attempt(
                &ledger,
                &user,
                reqwest::Method::PATCH,
                &format!("/api/tasks/{id}"),
                json!({"title": format!("plain {n} (edited)")}),
            )
            .await
            {
                ledger.accept(
                    &user.id,
                    Accepted::Updated {
                        task_id: id,
                        version: updated["version"].as_i64().unwrap(),
                    },
                );
            }
        }
        // A task whose email reminder must fire exactly once.
        let at = chrono::Utc::now() + chrono::Duration::from_std(reminder_in).unwrap();
        let body = json!({
            "title": format!("reminded {n}"),
            "due_at": rfc3339(at + chrono::Duration::minutes(5)),
            "reminders": [{"at": rfc3339(at), "channel": "email"}]
        });
        if let Some(task) = attempt(&ledger, &user, reqwest::Method::POST, "/api/tasks", body).await
        {
            ledger.accept(
                &user.id,
                Accepted::Created {
                    task_id: task["id"].as_str().unwrap().to_owned(),
                    with_reminder: true,
                    series_id: None,
                },
            );
        }
        // A recurring task, completed: its next occurrence must be created exactly once.
        let body = json!({
            "title": format!("weekly {n}"),
            "due_at": rfc3339(chrono::Utc::now() + chrono::Duration::hours(1)),
            "recurrence": {"rrule": "FREQ=WEEKLY", "timezone": "UTC", "mode": "fixed"}
        });
        if let Some(task) = attempt(&ledger, &user, reqwest::Method::POST, "/api/tasks", body).await
        {
            let id = task["id"].as_str().unwrap().to_owned();
            let series = task["series_id"].as_str().map(str::to_owned);
            ledger.accept(
                &user.id,
                Accepted::Created {
                    task_id: id.clone(),
                    with_reminder: false,
                    series_id: series.clone(),
                },
            );
            if let Some(done) = attempt(
                &ledger,
                &user,
                reqwest::Method::POST,
                &format!("/api/tasks/{id}/complete"),
                json!({}),
            )
            .await
            {
                ledger.accept(
                    &user.id,
                    Accepted::Completed {
                        task_id: id,
                        version: done["version"].as_i64().unwrap(),
                        series_id: series,
                    },
                );
            }
        }
        shared_task(&ledger, &user, &peer, n).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A task shared with `peer` as editor, assigned to them, then edited by them; stops at the
/// first refused step (the next iteration starts a new task).
async fn shared_task(ledger: &Ledger, owner: &UserClient, peer: &UserClient, n: u64) {
    let Some(task) = attempt(
        ledger,
        owner,
        reqwest::Method::POST,
        "/api/tasks",
        json!({"title": format!("shared {n}"), "priority": "medium"}),
    )
    .await
    else {
        return;
    };
    let id = task["id"].as_str().unwrap().to_owned();
    ledger.accept(
        &owner.id,
        Accepted::Created {
            task_id: id.clone(),
            with_reminder: false,
            series_id: None,
        },
    );
    let path = format!("/api/tasks/{id}");
    let share = json!({"email": peer.email, "role": "editor"});
    if attempt(
        ledger,
        owner,
        reqwest::Method::POST,
        &format!("{path}/shares"),
        share,
    )
    .await
    .is_none()
    {
        return;
    }
    ledger.accept(
        &owner.id,
        Accepted::Shared {
            task_id: id.clone(),
            with_user: peer.id.clone(),
        },
    );
    let assign = json!({"assignee_id": peer.id});
    let Some(assigned) = attempt(ledger, owner, reqwest::Method::PATCH, &path, assign).await else {
        return;
    };
    ledger.accept(
        &owner.id,
        Accepted::Assigned {
            task_id: id.clone(),
            version: assigned["version"].as_i64().unwrap(),
        },
    );
    let edit = json!({"title": format!("shared {n} (edited by the peer)")});
    if let Some(edited) = attempt(ledger, peer, reqwest::Method::PATCH, &path, edit).await {
        ledger.accept(
            &peer.id,
            Accepted::Updated {
                task_id: id,
                version: edited["version"].as_i64().unwrap(),
            },
        );
    }
}
