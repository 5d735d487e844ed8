//! Which notification channels this server can deliver on, and refusing the others where a
//! user picks them.
//!
//! SMS needs a gateway (`SMS_GATEWAY_URL`) and push a VAPID key (`VAPID_PUBLIC_KEY`). Without
//! one, choosing that channel is a 422 naming each entry that asks for it, in a profile
//! (`PATCH /api/me`) and in a task's reminders (REST and MCP alike, through `task_operations`),
//! so nobody picks a channel that could never deliver. The routes of the missing feature itself
//! (phone numbers, push subscriptions) answer 409. Reminders that arrive on task.created from
//! other producers are not refused: their deliveries fail saying why (notification-service).

use events::NotificationChannel;
use service_kit::http::Problem;

use super::AppState;
use crate::domain::task::ReminderInput;

/// Why `channel` cannot be delivered on here; `None` when it can (or is not a channel at all:
/// the domain's validation names that).
fn unavailable(state: &AppState, channel: &str) -> Option<&'static str> {
    match channel.parse::<NotificationChannel>().ok()? {
        NotificationChannel::Sms if state.sms.is_none() => {
            Some("sms is not available on this server (no SMS gateway configured)")
        }
        NotificationChannel::Push if state.vapid_public_key.is_none() => {
            Some("push is not available on this server (no VAPID key configured)")
        }
        _ => None,
    }
}

fn refuse<'a>(
    state: &AppState,
    picked: impl Iterator<Item = (String, &'a str)>,
) -> Result<(), Problem> {
    let refused: Vec<(String, &str)> = picked
        .filter_map(|(field, channel)| unavailable(state, channel).map(|why| (field, why)))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(refused
        .into_iter()
        .fold(Problem::validation(), |p, (field, why)| p.field(field, why)))
}

/// A profile's channels (`notification_channels[i]`).
pub fn refuse_in_profile(state: &AppState, channels: Option<&[String]>) -> Result<(), Problem> {
    refuse(
        state,
        channels
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("notification_channels[{i}]"), c.as_str())),
    )
}

/// A task's reminders (`reminders[i].channel`).
pub fn refuse_in_reminders(
    state: &AppState,
    reminders: Option<&[ReminderInput]>,
) -> Result<(), Problem> {
    refuse(
        state,
        reminders
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("reminders[{i}].channel"), r.channel.as_str())),
    )
}
