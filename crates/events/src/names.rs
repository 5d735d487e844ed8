//! The names clients read and write for the event enums: lower case, snake_case
//! (`critical`, `in_app`, `after_completion`). On the wire the same enums are Avro symbols in
//! upper case (serde in [`crate::model`]); everywhere else (the REST API, WebSocket messages,
//! databases, logs, query parameters) they are these names, defined here once.
//!
//! `as_str` gives the name; `FromStr` reads it back in any case, trimmed, with the aliases
//! people type (`in-app`), and its error says which names exist.

use std::fmt;
use std::str::FromStr;

use crate::model::{
    DeliveryStatus, NotificationChannel, Priority, RecurrenceMode, ShareRole, TaskStatus,
};

/// A name that is none of an enum's: says what was given and what exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; use {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! client_names {
    ($ty:ident, $what:literal, $expected:literal, { $($variant:ident => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The client-facing name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(value: &str) -> Result<Self, UnknownName> {
                match value.trim().to_ascii_lowercase().as_str() {
                    $($name $(| $alias)* => Ok($ty::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        value: value.to_owned(),
                        expected: $expected,
                    }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

client_names!(Priority, "priority", "critical, high, medium or low", {
    Critical => "critical",
    High => "high",
    Medium => "medium",
    Low => "low",
});

client_names!(TaskStatus, "status", "open or completed", {
    Open => "open",
    Completed => "completed",
});

client_names!(NotificationChannel, "channel", "email, webhook, in_app, sms or push", {
    Email => "email",
    Webhook => "webhook",
    InApp => "in_app" | "in-app" | "inapp",
    Sms => "sms",
    Push => "push",
});

client_names!(RecurrenceMode, "mode", "fixed or after_completion", {
    Fixed => "fixed",
    AfterCompletion => "after_completion" | "after-completion",
});

client_names!(DeliveryStatus, "status", "delivered or failed", {
    Delivered => "delivered",
    Failed => "failed",
});

// `none` is read so that a client can say it; only task.shared uses it (a removed share), and
// the share routes refuse it with the same message.
client_names!(ShareRole, "role", "viewer or editor", {
    Viewer => "viewer",
    Editor => "editor",
    None => "none",
});

impl Priority {
    /// Sort rank: higher is more urgent, so a descending sort lists critical first.
    pub const fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Medium => 1,
            Priority::High => 2,
            Priority::Critical => 3,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trips<T: FromStr<Err = UnknownName> + Copy + PartialEq + fmt::Debug>(
        all: &[T],
        name: fn(T) -> &'static str,
    ) {
        for v in all {
            assert_eq!(name(*v).parse::<T>().unwrap(), *v);
            assert_eq!(name(*v).to_ascii_uppercase().parse::<T>().unwrap(), *v);
        }
    }

    #[test]
    fn every_name_reads_back_in_any_case() {
        round_trips(Priority::ALL, Priority::as_str);
        round_trips(TaskStatus::ALL, TaskStatus::as_str);
        round_trips(NotificationChannel::ALL, NotificationChannel::as_str);
        round_trips(RecurrenceMode::ALL, RecurrenceMode::as_str);
        round_trips(DeliveryStatus::ALL, DeliveryStatus::as_str);
    }

    #[test]
    fn aliases_and_spaces_are_accepted() {
        assert_eq!(
            " In-App ".parse::<NotificationChannel>().unwrap(),
            NotificationChannel::InApp
        );
        assert_eq!(
            "after-completion".parse::<RecurrenceMode>().unwrap(),
            RecurrenceMode::AfterCompletion
        );
    }

    #[test]
    fn an_unknown_name_says_which_exist() {
        let e = "urgent".parse::<Priority>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown priority "urgent"; use critical, high, medium or low"#
        );
    }

    #[test]
    fn names_match_the_avro_symbols_in_lower_case() {
        for p in Priority::ALL {
            let avro = serde_json::to_value(p).unwrap();
            assert_eq!(avro.as_str().unwrap().to_ascii_lowercase(), p.as_str());
        }
        for c in NotificationChannel::ALL {
            let avro = serde_json::to_value(c).unwrap();
            assert_eq!(avro.as_str().unwrap().to_ascii_lowercase(), c.as_str());
        }
    }
}
