//! What the API answers with: JSON in snake_case, times in RFC 3339. The task itself is the
//! events crate's [`TaskView`], the one client view of a task that the WebSocket sends too.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use events::{RecurrenceView, ReminderView, TaskView};

use crate::domain::time;
use crate::storage::categories::Category;
use crate::storage::users::User;

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
    /// `email`, `webhook`, `in_app`, `sms`.
    pub notification_channels: Vec<String>,
    pub webhook_url: Option<String>,
    /// E.164; SMS goes to it only once `phone_verified`.
    pub phone_number: Option<String>,
    pub phone_verified: bool,
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
                .map(|c| c.as_str().to_owned())
                .collect(),
            webhook_url: u.profile.webhook_url.clone(),
            phone_number: u.profile.phone_number.clone(),
            phone_verified: u.profile.phone_verified,
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
    /// The VAPID public key (base64url) for `pushManager.subscribe`; null when this server
    /// has no push.
    pub vapid_public_key: Option<String>,
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
