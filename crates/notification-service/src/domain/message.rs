//! What a reminder says: the email (text and HTML) and the webhook's JSON body, with times in the
//! user's time zone.

use chrono::TimeZone;
use chrono_tz::Tz;
use events::EpochMillis;
use serde_json::json;

/// What a notice tells its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A reminder of theirs fired.
    Reminder,
    /// A task was assigned to them.
    Assigned,
}

impl NoticeKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Reminder => "reminder",
            NoticeKind::Assigned => "assigned",
        }
    }

    /// The stored name; anything unknown reads as a reminder (rows from before kinds existed).
    pub fn parse(text: &str) -> Self {
        match text {
            "assigned" => NoticeKind::Assigned,
            _ => NoticeKind::Reminder,
        }
    }
}

/// Everything a message about one reminder (or assignment) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Who assigned the task (their profile name), for an assignment.
    pub actor_name: Option<String>,
    pub notification_id: String,
    pub reminder_id: String,
    pub user_id: String,
    pub task_id: String,
    pub task_title: String,
    pub due_date: Option<EpochMillis>,
    pub remind_at: EpochMillis,
    pub fired_at: EpochMillis,
    pub late: bool,
    pub channel: events::NotificationChannel,
    pub recipient_name: Option<String>,
    /// The user's IANA time zone as stored; an unknown one falls back to UTC.
    pub timezone: String,
    /// `<APP_BASE_URL>/#/tasks/<task id>`.
    pub link: String,
}

/// The link to a task in the web app.
pub fn task_link(app_base_url: &str, task_id: &str) -> String {
    format!("{}/#/tasks/{task_id}", app_base_url.trim_end_matches('/'))
}

/// The user's zone, or UTC when the stored name is not an IANA zone.
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// `Monday, 15 March 2027, 09:00 EDT (America/New_York)`.
pub fn local_time(ms: EpochMillis, zone_name: &str) -> String {
    let tz = zone(zone_name);
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => format!("{} ({})", t.format("%A, %-d %B %Y, %H:%M %Z"), tz.name()),
        None => rfc3339(ms),
    }
}

pub use events::time::rfc3339;

/// An email: subject, plain text, HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Header values must stay on one line, whatever a title holds.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Notice {
    fn due_line(&self) -> String {
        match self.due_date {
            Some(due) => format!("Due: {}", local_time(due, &self.timezone)),
            None => "No due date".to_owned(),
        }
    }

    fn late_line(&self) -> Option<String> {
        self.late.then(|| {
            format!(
                "This reminder is late: it was meant for {}.",
                local_time(self.remind_at, &self.timezone)
            )
        })
    }

    pub fn email(&self) -> EmailContent {
        if self.kind == NoticeKind::Assigned {
            return self.assigned_email();
        }
        let greeting = match self.recipient_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => format!("Hello {name},"),
            _ => "Hello,".to_owned(),
        };
        let due = self.due_line();
        let late = self.late_line();
        let mut text = format!(
            "{greeting}\n\nThis is your reminder for the task \"{}\".\n{due}\n",
            self.task_title
        );
        if let Some(late) = &late {
            text.push_str(late);
            text.push('\n');
        }
        text.push_str(&format!(
            "\nOpen the task: {}\n\n-- \nTodo platform reminders\n",
            self.link
        ));
        let mut html = format!(
            "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n\
             <p>{}</p>\n<p>This is your reminder for the task <strong>{}</strong>.</p>\n\
             <p>{}</p>\n",
            escape_html(&greeting),
            escape_html(&self.task_title),
            escape_html(&due),
        );
        if let Some(late) = &late {
            html.push_str(&format!("<p><em>{}</em></p>\n", escape_html(late)));
        }
        html.push_str(&format!(
            "<p><a href=\"{0}\">Open the task</a></p>\n</body></html>\n",
            escape_html(&self.link)
        ));
        EmailContent {
            subject: one_line(&format!("Reminder: {}", self.task_title)),
            text,
            html,
        }
    }

    fn greeting(&self) -> String {
        match self.recipient_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => format!("Hello {name},"),
            _ => "Hello,".to_owned(),
        }
    }

    /// "Assigned to you": who assigned which task, when it is due, the link.
    fn assigned_email(&self) -> EmailContent {
        let greeting = self.greeting();
        let who = match self.actor_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => "Someone".to_owned(),
        };
        let due = self.due_line();
        let text = format!(
            "{greeting}\n\n{who} assigned the task \"{}\" to you.\n{due}\n\nOpen the task: {}\n\n-- \nTodo platform\n",
            self.task_title, self.link
        );
        let html = format!(
            "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n<p>{}</p>\n\
             <p>{} assigned the task <strong>{}</strong> to you.</p>\n<p>{}</p>\n\
             <p><a href=\"{}\">Open the task</a></p>\n</body></html>\n",
            escape_html(&greeting),
            escape_html(&who),
            escape_html(&self.task_title),
            escape_html(&due),
            escape_html(&self.link),
        );
        EmailContent {
            subject: one_line(&format!("Assigned to you: {}", self.task_title)),
            text,
            html,
        }
    }

    /// The webhook's body: the reminder (or assignment), times in RFC 3339 (UTC) and in the
    /// user's zone.
    pub fn webhook_body(&self) -> serde_json::Value {
        json!({
            "type": self.kind.as_str(),
            "notification_id": self.notification_id,
            "reminder_id": self.reminder_id,
            "user_id": self.user_id,
            "task": {
                "id": self.task_id,
                "title": self.task_title,
                "due_at": self.due_date.map(rfc3339),
                "due_at_local": self.due_date.map(|d| local_time(d, &self.timezone)),
                "link": self.link,
            },
            "timezone": zone(&self.timezone).name(),
            "channel": self.channel.as_str(),
            "remind_at": rfc3339(self.remind_at),
            "fired_at": rfc3339(self.fired_at),
            "late": self.late,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn notice(due: EpochMillis, tz: &str) -> Notice {
        Notice {
            kind: NoticeKind::Reminder,
            actor_name: None,
            notification_id: "n".into(),
            reminder_id: "r".into(),
            user_id: "u".into(),
            task_id: "t-1".into(),
            task_title: "Pay <rent> & bills".into(),
            due_date: Some(due),
            remind_at: due - 600_000,
            fired_at: due - 599_990,
            late: false,
            channel: events::NotificationChannel::Email,
            recipient_name: Some("Ada".into()),
            timezone: tz.into(),
            link: task_link("http://127.0.0.1:8000/", "t-1"),
        }
    }

    fn utc(text: &str) -> EpochMillis {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn local_times_follow_the_zone_across_dst() {
        // New York switches to summer time on 14 March 2027.
        assert_eq!(
            local_time(utc("2027-03-13T14:00:00Z"), "America/New_York"),
            "Saturday, 13 March 2027, 09:00 EST (America/New_York)"
        );
        assert_eq!(
            local_time(utc("2027-03-15T13:00:00Z"), "America/New_York"),
            "Monday, 15 March 2027, 09:00 EDT (America/New_York)"
        );
        assert_eq!(
            local_time(utc("2027-03-15T03:30:00Z"), "Asia/Kolkata"),
            "Monday, 15 March 2027, 09:00 IST (Asia/Kolkata)"
        );
        assert_eq!(
            local_time(utc("2027-03-15T03:30:00Z"), "Not/AZone"),
            "Monday, 15 March 2027, 03:30 UTC (UTC)"
        );
    }

    #[test]
    fn the_email_names_the_task_its_local_due_time_and_links_to_it() {
        let mail = notice(utc("2027-03-15T03:30:00Z"), "Asia/Kolkata").email();
        assert_eq!(mail.subject, "Reminder: Pay <rent> & bills");
        assert!(mail.text.contains("\"Pay <rent> & bills\""));
        assert!(mail.text.contains("Due: Monday, 15 March 2027, 09:00 IST"));
        assert!(mail.text.contains("http://127.0.0.1:8000/#/tasks/t-1"));
        assert!(
            mail.html
                .contains("<strong>Pay &lt;rent&gt; &amp; bills</strong>")
        );
        assert!(
            mail.html
                .contains("href=\"http://127.0.0.1:8000/#/tasks/t-1\"")
        );
        assert!(!mail.text.contains("late"));
    }

    #[test]
    fn the_webhook_body_carries_the_reminder() {
        let body = notice(utc("2027-03-15T03:30:00Z"), "Asia/Kolkata").webhook_body();
        assert_eq!(body["task"]["title"], "Pay <rent> & bills");
        assert_eq!(body["task"]["due_at"], "2027-03-15T03:30:00.000Z");
        assert_eq!(body["channel"], "email");
        assert_eq!(body["late"], false);
    }

    #[test]
    fn an_assignment_says_who_assigned_which_task() {
        let mut n = notice(utc("2027-03-15T03:30:00Z"), "Asia/Kolkata");
        n.kind = NoticeKind::Assigned;
        n.actor_name = Some("Grace <admin>".into());
        let mail = n.email();
        assert_eq!(mail.subject, "Assigned to you: Pay <rent> & bills");
        assert!(
            mail.text
                .contains("Grace <admin> assigned the task \"Pay <rent> & bills\" to you.")
        );
        assert!(mail.html.contains("Grace &lt;admin&gt; assigned the task"));
        assert!(mail.text.contains("Due: Monday, 15 March 2027, 09:00 IST"));
        assert_eq!(n.webhook_body()["type"], "assigned");
    }
}
