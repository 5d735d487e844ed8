//! What the API answers with: JSON in snake_case, times in RFC 3339.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::task::{Task, mode_name, priority_name, status_name};
use crate::domain::time;
use crate::domain::user::channel_name;
use crate::storage::categories::Category;
use crate::storage::users::User;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecurrenceView {
    pub rrule: Option<String>,
    pub cron: Option<String>,
    pub timezone: String,
    /// `fixed` or `after_completion`.
    pub mode: String,
    pub until: Option<String>,
    pub count: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReminderView {
    /// Minutes before the due date (or null when `at` is set).
    pub before_due: Option<i64>,
    pub at: Option<String>,
    /// `email`, `webhook` or `in_app`.
    pub channel: String,
}

/// A task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    /// `critical`, `high`, `medium` or `low`.
    pub priority: String,
    /// `open` or `completed`.
    pub status: String,
    pub due_at: Option<String>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub recurrence: Option<RecurrenceView>,
    pub reminders: Vec<ReminderView>,
    /// The recurring series the task belongs to.
    pub series_id: Option<String>,
    /// Its place in the series (0 for the first task).
    pub occurrence_index: Option<i64>,
    /// Starts at 1, grows with every change; the ETag.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

impl From<&Task> for TaskView {
    fn from(t: &Task) -> Self {
        let f = &t.fields;
        TaskView {
            id: t.id.clone(),
            title: f.title.clone(),
            description: f.description.clone(),
            priority: priority_name(f.priority).to_owned(),
            status: status_name(t.status).to_owned(),
            due_at: f.due_at.map(time::format),
            category_id: f.category_id.clone(),
            tags: f.tags.clone(),
            recurrence: f.recurrence.as_ref().map(|r| RecurrenceView {
                rrule: r.rrule.clone(),
                cron: r.cron.clone(),
                timezone: r.timezone.clone(),
                mode: mode_name(r.mode).to_owned(),
                until: r.until.map(time::format),
                count: r.count,
            }),
            reminders: f
                .reminders
                .iter()
                .map(|r| ReminderView {
                    before_due: r.before_due_minutes,
                    at: r.at.map(time::format),
                    channel: channel_name(r.channel).to_owned(),
                })
                .collect(),
            series_id: t.series_id.clone(),
            occurrence_index: t.occurrence_index,
            version: t.version,
            created_at: time::format(t.created_at),
            updated_at: time::format(t.updated_at),
            completed_at: t.completed_at.map(time::format),
        }
    }
}

/// One page of tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<TaskView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The signed-in user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub timezone: String,
    /// `email`, `webhook`, `in_app`.
    pub notification_channels: Vec<String>,
    pub webhook_url: Option<String>,
    /// Profile version, grows with every change.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.profile.name.clone(),
            timezone: u.profile.timezone.clone(),
            notification_channels: u
                .profile
                .notification_channels
                .iter()
                .map(|c| channel_name(*c).to_owned())
                .collect(),
            webhook_url: u.profile.webhook_url.clone(),
            version: u.version,
            created_at: time::format(u.created_at),
            updated_at: time::format(u.updated_at),
        }
    }
}

/// An access token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// The user's webhook signing secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookSecretView {
    /// HMAC-SHA256 key of the `X-Todo-Signature` header of webhook deliveries.
    pub secret: String,
    pub signature_header: String,
    pub timestamp_header: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Category> for CategoryView {
    fn from(c: &Category) -> Self {
        CategoryView {
            id: c.id.clone(),
            name: c.name.clone(),
            created_at: time::format(c.created_at),
            updated_at: time::format(c.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryList {
    pub items: Vec<CategoryView>,
}

/// Settings the web page needs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClientConfig {
    /// Base URL of the ws-gateway (append `/ws/tasks?token=…`).
    pub ws_url: String,
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProblemDocument {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: Option<String>,
    /// Per-field messages of validation problems.
    pub errors: Option<Vec<FieldErrorDocument>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldErrorDocument {
    pub field: String,
    pub message: String,
}
