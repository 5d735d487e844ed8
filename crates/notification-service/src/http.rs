//! REST API: `GET /api/notifications`, the caller's deliveries and their status, newest first.
//! A user sees their own deliveries only.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use service_kit::db::Database;
use service_kit::http::{Authenticated, Problem};

use crate::domain::message::rfc3339;
use crate::domain::query::{self, NotificationQuery, RawNotificationQuery};
use crate::storage::deliveries::{self, DeliveryRow};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/notifications", web::get().to(list_notifications));
}

#[derive(Debug, Serialize)]
pub struct NotificationItem {
    pub id: String,
    pub reminder_id: String,
    pub task_id: String,
    pub task_title: String,
    pub channel: String,
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub due_at: Option<String>,
    pub remind_at: String,
    pub fired_at: String,
    pub late: bool,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl From<DeliveryRow> for NotificationItem {
    fn from(d: DeliveryRow) -> Self {
        Self {
            id: d.notification_id,
            reminder_id: d.reminder_id,
            task_id: d.task_id,
            task_title: d.task_title,
            channel: d.channel,
            status: d.status,
            attempts: d.attempts,
            error: d.last_error,
            due_at: d.due_date.map(rfc3339),
            remind_at: rfc3339(d.remind_at),
            fired_at: rfc3339(d.fired_at),
            late: d.late,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            finished_at: d.finished_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize)]
struct Page {
    items: Vec<NotificationItem>,
    next_cursor: Option<String>,
}

async fn list_notifications(
    auth: Authenticated,
    db: web::Data<Database>,
    raw: web::Query<RawNotificationQuery>,
) -> Result<HttpResponse, Problem> {
    let query = NotificationQuery::try_from(raw.into_inner())?;
    let user = auth.user_id().to_owned();
    let limit = query.limit;
    let rows = db
        .run(move |conn| deliveries::list(conn, &user, &query))
        .await
        .map_err(|e| {
            if e.is_unavailable() {
                Problem::unavailable("the notification database is unavailable")
            } else {
                tracing::error!(error = %e, "notification query failed");
                Problem::internal()
            }
        })?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| query::cursor(r.seq)))
        .flatten();
    Ok(HttpResponse::Ok().json(Page {
        items: rows.into_iter().map(NotificationItem::from).collect(),
        next_cursor,
    }))
}
