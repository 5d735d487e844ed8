//! Checks of what Avro cannot say: a well-typed event whose values are impossible (an id that is
//! not a UUID, an empty title, a version below 1, a reminder with neither a time nor an offset).
//!
//! The decoder runs these, so a consumer never sees such an event: it is a permanent decode
//! error and goes to the dead-letter topic.

use uuid::Uuid;

use crate::model::*;

/// Why a decoded event cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidEvent {
    pub field: &'static str,
    pub reason: &'static str,
}

fn fail(field: &'static str, reason: &'static str) -> Result<(), InvalidEvent> {
    Err(InvalidEvent { field, reason })
}

fn uuid(field: &'static str, value: &str) -> Result<(), InvalidEvent> {
    match Uuid::try_parse(value) {
        Ok(_) => Ok(()),
        Err(_) => fail(field, "not a UUID"),
    }
}

fn opt_uuid(field: &'static str, value: Option<&str>) -> Result<(), InvalidEvent> {
    value.map_or(Ok(()), |v| uuid(field, v))
}

fn time(field: &'static str, value: EpochMillis) -> Result<(), InvalidEvent> {
    // Before 2000 or after 9999: a unit mix-up (seconds, microseconds), not a real time.
    const MIN: EpochMillis = 946_684_800_000;
    const MAX: EpochMillis = 253_402_300_799_999;
    if (MIN..=MAX).contains(&value) {
        Ok(())
    } else {
        fail(field, "not a plausible epoch-millisecond time")
    }
}

fn opt_time(field: &'static str, value: Option<EpochMillis>) -> Result<(), InvalidEvent> {
    value.map_or(Ok(()), |v| time(field, v))
}

fn header(id: &str, timestamp: EpochMillis) -> Result<(), InvalidEvent> {
    uuid("eventId", id)?;
    time("eventTimestamp", timestamp)
}

fn title(value: &str) -> Result<(), InvalidEvent> {
    if value.trim().is_empty() {
        fail("title", "empty")
    } else {
        Ok(())
    }
}

fn version(field: &'static str, value: i64, min: i64) -> Result<(), InvalidEvent> {
    if value < min {
        fail(field, "below its minimum")
    } else {
        Ok(())
    }
}

fn recurrence(value: Option<&Recurrence>) -> Result<(), InvalidEvent> {
    let Some(r) = value else { return Ok(()) };
    if r.rrule.is_some() == r.cron.is_some() {
        return fail("recurrence", "needs exactly one of rrule and cron");
    }
    if r.timezone.is_empty() {
        return fail("recurrence.timezone", "empty");
    }
    if matches!(r.count, Some(n) if n < 1) {
        return fail("recurrence.count", "must be at least 1");
    }
    opt_time("recurrence.until", r.until)
}

fn reminders(values: &[Reminder]) -> Result<(), InvalidEvent> {
    for r in values {
        match (r.before_due_minutes, r.at) {
            (Some(m), None) if m >= 0 => {}
            (None, Some(at)) => time("reminders.at", at)?,
            (Some(_), None) => return fail("reminders.beforeDueMinutes", "negative"),
            _ => return fail("reminders", "needs exactly one of beforeDueMinutes and at"),
        }
    }
    Ok(())
}

/// Who may see the task after the event: collaborators are users with a real role (NONE only
/// names a removed share on task.shared), none of them twice and none the owner.
fn sharing(
    owner: &str,
    collaborators: &[Collaborator],
    assignee: Option<&str>,
    actor: Option<&str>,
) -> Result<(), InvalidEvent> {
    for (i, c) in collaborators.iter().enumerate() {
        uuid("collaborators.userId", &c.user_id)?;
        if c.role == ShareRole::None {
            return fail("collaborators.role", "NONE is not a collaborator's role");
        }
        if c.user_id == owner || collaborators[..i].iter().any(|o| o.user_id == c.user_id) {
            return fail("collaborators.userId", "the owner or a repeated user");
        }
    }
    opt_uuid("assigneeId", assignee)?;
    opt_uuid("actorId", actor)
}

/// The checks of every event that carries the whole task (created, updated, shared, assigned),
/// in one place.
macro_rules! whole_task {
    ($e:expr, min_version = $min:expr) => {{
        let e = $e;
        header(&e.event_id, e.event_timestamp)?;
        uuid("userId", &e.user_id)?;
        uuid("taskId", &e.task_id)?;
        title(&e.title)?;
        opt_time("dueDate", e.due_date)?;
        version("version", e.version, $min)?;
        recurrence(e.recurrence.as_ref())?;
        reminders(&e.reminders)?;
        opt_uuid("seriesId", e.series_id.as_deref())?;
        sharing(
            &e.user_id,
            &e.collaborators,
            e.assignee_id.as_deref(),
            e.actor_id.as_deref(),
        )
    }};
}

/// Validation of one event type.
pub trait Validate {
    fn validate(&self) -> Result<(), InvalidEvent>;
}

impl Validate for TaskCreatedEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        whole_task!(self, min_version = 1)
    }
}

impl Validate for TaskUpdatedEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        whole_task!(self, min_version = 1)
    }
}

impl Validate for TaskCompletedEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        header(&self.event_id, self.event_timestamp)?;
        uuid("userId", &self.user_id)?;
        uuid("taskId", &self.task_id)?;
        time("completedAt", self.completed_at)?;
        if matches!(self.time_to_complete, Some(t) if t < 0) {
            return fail("timeToComplete", "negative");
        }
        // 0 = unknown (written with the seed schema, which has no version).
        version("version", self.version, 0)?;
        recurrence(self.recurrence.as_ref())?;
        reminders(&self.reminders)?;
        opt_uuid("seriesId", self.series_id.as_deref())?;
        sharing(
            &self.user_id,
            &self.collaborators,
            self.assignee_id.as_deref(),
            self.actor_id.as_deref(),
        )
    }
}

impl Validate for TaskDeletedEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        header(&self.event_id, self.event_timestamp)?;
        uuid("userId", &self.user_id)?;
        uuid("taskId", &self.task_id)?;
        version("version", self.version, 1)?;
        opt_uuid("seriesId", self.series_id.as_deref())?;
        sharing(
            &self.user_id,
            &self.collaborators,
            self.assignee_id.as_deref(),
            self.actor_id.as_deref(),
        )
    }
}

impl Validate for TaskSharedEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        whole_task!(self, min_version = 2)?;
        uuid("sharedWithUserId", &self.shared_with_user_id)?;
        if self.shared_with_user_id == self.user_id {
            return fail("sharedWithUserId", "the owner");
        }
        Ok(())
    }
}

impl Validate for TaskAssignedEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        whole_task!(self, min_version = 2)?;
        opt_uuid("previousAssigneeId", self.previous_assignee_id.as_deref())
    }
}

fn email(value: &str) -> Result<(), InvalidEvent> {
    match value.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(()),
        _ => fail("email", "not an email address"),
    }
}

impl Validate for UserRegisteredEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        header(&self.event_id, self.event_timestamp)?;
        uuid("userId", &self.user_id)?;
        email(&self.email)
    }
}

impl Validate for UserUpdatedEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        header(&self.event_id, self.event_timestamp)?;
        uuid("userId", &self.user_id)?;
        version("version", self.version, 1)?;
        email(&self.email)?;
        match self.verified_phone_number.as_deref() {
            Some(number) if !e164_shape(number) => fail(
                "verifiedPhoneNumber",
                "not an E.164 number (+ and 8 to 15 digits)",
            ),
            _ => Ok(()),
        }
    }
}

/// The shape of an E.164 number: `+`, a non-zero digit, 7 to 14 more digits. task-api checks
/// the number against the numbering plan when the user enters it; this guards the contract.
fn e164_shape(value: &str) -> bool {
    value.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

impl Validate for UserAuthenticatedEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        header(&self.event_id, self.event_timestamp)?;
        opt_uuid("userId", self.user_id.as_deref())
    }
}

impl Validate for ReminderTriggeredEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        header(&self.event_id, self.event_timestamp)?;
        uuid("reminderId", &self.reminder_id)?;
        uuid("userId", &self.user_id)?;
        uuid("taskId", &self.task_id)?;
        version("taskVersion", self.task_version, 1)?;
        time("remindAt", self.remind_at)?;
        time("firedAt", self.fired_at)
    }
}

impl Validate for NotificationSentEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        header(&self.event_id, self.event_timestamp)?;
        uuid("notificationId", &self.notification_id)?;
        opt_uuid("reminderId", self.reminder_id.as_deref())?;
        uuid("userId", &self.user_id)?;
        opt_uuid("taskId", self.task_id.as_deref())?;
        if self.attempts < 1 {
            return fail("attempts", "must be at least 1");
        }
        time("sentAt", self.sent_at)
    }
}

impl Validate for AnyEvent {
    fn validate(&self) -> Result<(), InvalidEvent> {
        with_event!(self, e => e.validate())
    }
}

#[cfg(test)]
mod tests {
    use super::e164_shape;

    #[test]
    fn phone_numbers_must_have_the_e164_shape() {
        assert!(e164_shape("+4915112345678"));
        assert!(e164_shape("+14155550123"));
        for bad in [
            "4915112345678",
            "+0151123456",
            "+49 151 1234",
            "+1234567",
            "+1234567890123456",
            "+",
        ] {
            assert!(!e164_shape(bad), "{bad}");
        }
    }
}
