//! Query parameters of the audit API, parsed at the edge into types that are valid by
//! construction, and the opaque cursors of its pages.

use chrono::DateTime;
use events::Topic;
use serde::Deserialize;
use service_kit::http::Problem;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// The query string of `GET /api/audit/events`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEventQuery {
    pub topic: Option<String>,
    pub task_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// `GET /api/audit/events`, validated. Pages go newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub topic: Option<Topic>,
    pub task_id: Option<String>,
    /// Inclusive lower bound of the event time, epoch ms.
    pub from: Option<i64>,
    /// Exclusive upper bound of the event time, epoch ms.
    pub to: Option<i64>,
    pub limit: i64,
    /// Only entries recorded before this sequence number.
    pub before_seq: Option<i64>,
}

/// The query string of the task history, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistoryQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// A page position in a task's history (oldest first): after this (event time, sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub event_time: i64,
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: i64,
    pub after: Option<HistoryCursor>,
}

fn time(field: &str, value: &str) -> Result<i64, Problem> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Problem::bad_request(format!(
                "{field} must be an RFC 3339 time, e.g. 2026-11-25T09:00:00Z"
            ))
        })
}

fn limit(value: Option<&str>) -> Result<i64, Problem> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(Problem::bad_request(format!(
                "limit must be an integer from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

pub fn task_id(value: &str) -> Result<String, Problem> {
    uuid::Uuid::try_parse(value)
        .map(|u| u.to_string())
        .map_err(|_| Problem::bad_request("task_id must be a UUID"))
}

impl TryFrom<RawEventQuery> for EventQuery {
    type Error = Problem;

    fn try_from(raw: RawEventQuery) -> Result<Self, Problem> {
        let topic = raw
            .topic
            .map(|t| {
                t.parse::<Topic>()
                    .map_err(|e| Problem::bad_request(e.to_string()))
            })
            .transpose()?;
        let from = raw.from.as_deref().map(|v| time("from", v)).transpose()?;
        let to = raw.to.as_deref().map(|v| time("to", v)).transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(Problem::bad_request("from must be before to"));
        }
        let before_seq = raw
            .cursor
            .as_deref()
            .map(|c| {
                c.strip_prefix('e')
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| Problem::bad_request("cursor is not one this API returned"))
            })
            .transpose()?;
        Ok(Self {
            topic,
            task_id: raw.task_id.as_deref().map(task_id).transpose()?,
            from,
            to,
            limit: limit(raw.limit.as_deref())?,
            before_seq,
        })
    }
}

/// The cursor of the page after the entry with sequence `seq`.
pub fn event_cursor(seq: i64) -> String {
    format!("e{seq}")
}

impl TryFrom<RawHistoryQuery> for HistoryQuery {
    type Error = Problem;

    fn try_from(raw: RawHistoryQuery) -> Result<Self, Problem> {
        let after = raw
            .cursor
            .as_deref()
            .map(|c| {
                c.strip_prefix('h')
                    .and_then(|rest| rest.split_once('.'))
                    .and_then(|(t, s)| {
                        Some(HistoryCursor {
                            event_time: t.parse().ok()?,
                            seq: s.parse().ok()?,
                        })
                    })
                    .ok_or_else(|| Problem::bad_request("cursor is not one this API returned"))
            })
            .transpose()?;
        Ok(Self {
            limit: limit(raw.limit.as_deref())?,
            after,
        })
    }
}

impl HistoryCursor {
    pub fn encode(&self) -> String {
        format!("h{}.{}", self.event_time, self.seq)
    }
}

pub use events::time::rfc3339;

/// The event type as shown to clients: the topic's event in snake case (`task_created`).
pub fn event_type(topic: Topic) -> &'static str {
    match topic {
        Topic::TaskCreated => "task_created",
        Topic::TaskUpdated => "task_updated",
        Topic::TaskCompleted => "task_completed",
        Topic::TaskDeleted => "task_deleted",
        Topic::UserRegistered => "user_registered",
        Topic::UserAuthenticated => "user_authenticated",
        Topic::NotificationSent => "notification_sent",
        Topic::ReminderTriggered => "reminder_triggered",
        Topic::UserUpdated => "user_updated",
        Topic::TaskShared => "task_shared",
        Topic::TaskAssigned => "task_assigned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_query_parameters_are_refused() {
        let bad = [
            RawEventQuery {
                topic: Some("task.exploded".into()),
                ..Default::default()
            },
            RawEventQuery {
                task_id: Some("42".into()),
                ..Default::default()
            },
            RawEventQuery {
                from: Some("yesterday".into()),
                ..Default::default()
            },
            RawEventQuery {
                limit: Some("0".into()),
                ..Default::default()
            },
            RawEventQuery {
                limit: Some("100000".into()),
                ..Default::default()
            },
            RawEventQuery {
                cursor: Some("xyz".into()),
                ..Default::default()
            },
            RawEventQuery {
                from: Some("2026-11-25T10:00:00Z".into()),
                to: Some("2026-11-25T09:00:00Z".into()),
                ..Default::default()
            },
        ];
        for raw in bad {
            let shown = format!("{raw:?}");
            let problem = EventQuery::try_from(raw).expect_err(&shown);
            assert_eq!(problem.status, 400, "{shown}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let q = EventQuery::try_from(RawEventQuery {
            cursor: Some(event_cursor(42)),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(q.before_seq, Some(42));
        let c = HistoryCursor {
            event_time: 1_764_000_000_000,
            seq: 7,
        };
        let q = HistoryQuery::try_from(RawHistoryQuery {
            cursor: Some(c.encode()),
            limit: None,
        })
        .unwrap();
        assert_eq!(q.after, Some(c));
    }
}
