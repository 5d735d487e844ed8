//! SMS: a short text through the provider-neutral gateway ([`service_kit::sms`]), to the user's
//! verified number. The notification id is the idempotency key, so a retry (or the one attempt
//! repeated after a lost lease) is the same message to the gateway, which sends it once.
//!
//! The number comes from user.updated, which carries only a verified one: a user without one
//! gets no text, and the delivery fails for good saying why (reported on notification.sent).

use chrono::TimeZone;
use service_kit::sms::{SmsError, SmsGateway, SmsGatewaySettings, SmsMessage};

use super::AttemptError;
use crate::domain::message::{Notice, NoticeKind, zone};

/// What a delivery reports when this deployment has no gateway.
pub const SMS_OFF: &str = "SMS is not configured on this deployment (SMS_GATEWAY_URL)";
/// What a delivery reports when the user has no verified number.
pub const NO_VERIFIED_NUMBER: &str = "no verified phone number";
/// Longest title in a text: one SMS is 160 characters, and the link needs its room.
const MAX_TITLE_CHARS: usize = 60;

pub struct SmsSender {
    gateway: Option<SmsGateway>,
}

impl SmsSender {
    /// A sender through the gateway, or one that refuses every message when SMS is off.
    pub fn new(settings: Option<SmsGatewaySettings>) -> Result<Self, String> {
        Ok(Self {
            gateway: settings.map(SmsGateway::new).transpose()?,
        })
    }

    pub async fn send(
        &self,
        phone_number: Option<&str>,
        notice: &Notice,
    ) -> Result<(), AttemptError> {
        let gateway = self
            .gateway
            .as_ref()
            .ok_or_else(|| AttemptError::Permanent(SMS_OFF.to_owned()))?;
        let to =
            phone_number.ok_or_else(|| AttemptError::Permanent(NO_VERIFIED_NUMBER.to_owned()))?;
        let body = text(notice);
        let message = SmsMessage {
            to,
            body: &body,
            idempotency_key: &notice.notification_id,
        };
        gateway.send(&message).await.map_err(|e| match e {
            SmsError::Transient(e) => AttemptError::Transient(e),
            SmsError::Permanent(e) => AttemptError::Permanent(e),
        })
    }
}

/// The text: what happened, the task, when it is due (in the user's zone), the link.
pub fn text(notice: &Notice) -> String {
    let title = short(&one_line(&notice.task_title));
    let link = &notice.link;
    match notice.kind {
        NoticeKind::Assigned => {
            let who = notice
                .actor_name
                .as_deref()
                .map(one_line)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "Someone".to_owned());
            format!("{who} assigned \"{title}\" to you.{} {link}", due(notice))
        }
        NoticeKind::Reminder => {
            let what = if notice.late {
                "Late reminder"
            } else {
                "Reminder"
            };
            format!("{what}: \"{title}\".{} {link}", due(notice))
        }
    }
}

/// ` Due Mon 15 Mar 09:00 IST.` in the user's zone, or nothing without a due date.
fn due(notice: &Notice) -> String {
    let Some(ms) = notice.due_date else {
        return String::new();
    };
    let tz = zone(&notice.timezone);
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => format!(" Due {}.", t.format("%a %-d %b %H:%M %Z")),
        None => String::new(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn short(text: &str) -> String {
    if text.chars().count() <= MAX_TITLE_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_TITLE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::message::task_link;

    fn notice() -> Notice {
        Notice {
            kind: NoticeKind::Reminder,
            actor_name: None,
            notification_id: "n-1".into(),
            reminder_id: "r-1".into(),
            user_id: "u-1".into(),
            task_id: "t-1".into(),
            task_title: "Pay\nthe   rent".into(),
            due_date: Some(
                chrono::DateTime::parse_from_rfc3339("2027-03-15T03:30:00Z")
                    .unwrap()
                    .timestamp_millis(),
            ),
            remind_at: 0,
            fired_at: 0,
            late: false,
            channel: events::NotificationChannel::Sms,
            recipient_name: Some("Ada".into()),
            timezone: "Asia/Kolkata".into(),
            link: task_link("http://127.0.0.1:8000", "t-1"),
        }
    }

    #[test]
    fn a_reminder_text_names_the_task_its_local_due_time_and_links_to_it() {
        assert_eq!(
            text(&notice()),
            "Reminder: \"Pay the rent\". Due Mon 15 Mar 09:00 IST. http://127.0.0.1:8000/#/tasks/t-1"
        );
        let mut late = notice();
        late.late = true;
        late.due_date = None;
        assert_eq!(
            text(&late),
            "Late reminder: \"Pay the rent\". http://127.0.0.1:8000/#/tasks/t-1"
        );
    }

    #[test]
    fn an_assignment_text_says_who_and_long_titles_are_cut() {
        let mut n = notice();
        n.kind = NoticeKind::Assigned;
        n.actor_name = Some("Grace".into());
        n.task_title = "x".repeat(200);
        let t = text(&n);
        assert!(t.starts_with("Grace assigned \""), "{t}");
        assert!(
            t.contains(&format!("{}…\"", "x".repeat(MAX_TITLE_CHARS - 1))),
            "{t}"
        );
        assert!(t.chars().count() <= 160, "{t}");
    }
}
