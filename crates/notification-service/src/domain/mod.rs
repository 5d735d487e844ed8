//! Types and rules of the service, without I/O: states, channels, the reminder plan of a task,
//! the content of messages, and the API's query parameters.

pub mod message;
pub mod query;
pub mod schedule;

use events::NotificationChannel;

/// The channels a user accepts, stored as `email,webhook` (order of the event).
pub fn channels_to_text(channels: &[NotificationChannel]) -> String {
    let mut names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    names.dedup();
    names.join(",")
}

pub fn channels_from_text(text: &str) -> Vec<NotificationChannel> {
    text.split(',').filter_map(|c| c.parse().ok()).collect()
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where a scheduled reminder stands. `Fired`, `Cancelled` and `Expired` never fire again
    /// unless a newer task version revives a cancelled one.
    ReminderState {
        Scheduled => "scheduled",
        Fired => "fired",
        Cancelled => "cancelled",
        Expired => "expired",
    }
);

text_enum!(
    /// What the service last saw of a task.
    TaskState {
        Open => "open",
        Completed => "completed",
        Deleted => "deleted",
    }
);

text_enum!(
    /// A delivery's status: `Pending` until delivered or failed for good.
    DeliveryState {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_through_text() {
        let all = [
            NotificationChannel::Email,
            NotificationChannel::Webhook,
            NotificationChannel::InApp,
        ];
        assert_eq!(channels_to_text(&all), "email,webhook,in_app");
        assert_eq!(channels_from_text("email,webhook,in_app"), all);
        assert_eq!(channels_from_text(""), vec![]);
        assert_eq!(ReminderState::parse("fired"), Some(ReminderState::Fired));
        assert_eq!(DeliveryState::Failed.as_str(), "failed");
    }
}
