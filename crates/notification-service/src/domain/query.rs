//! The query string of `GET /api/notifications`, parsed at the edge into a valid query.

use events::NotificationChannel;
use serde::Deserialize;
use service_kit::http::Problem;

use super::DeliveryState;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// As sent; unknown parameters are refused rather than silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotificationQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub status: Option<String>,
    pub channel: Option<String>,
    pub task_id: Option<String>,
}

/// A page of the user's deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationQuery {
    pub limit: i64,
    /// Only deliveries recorded before this sequence number (the cursor).
    pub before_seq: Option<i64>,
    pub status: Option<DeliveryState>,
    pub channel: Option<NotificationChannel>,
    pub task_id: Option<String>,
}

/// The opaque cursor of the page after the delivery with sequence `seq`.
pub fn cursor(seq: i64) -> String {
    format!("n{seq}")
}

impl TryFrom<RawNotificationQuery> for NotificationQuery {
    type Error = Problem;

    fn try_from(raw: RawNotificationQuery) -> Result<Self, Problem> {
        let limit = match raw.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Problem::bad_request(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
                })?,
        };
        let before_seq = raw
            .cursor
            .as_deref()
            .map(|c| {
                c.strip_prefix('n')
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| Problem::bad_request("cursor is not one this API returned"))
            })
            .transpose()?;
        let status = raw
            .status
            .as_deref()
            .map(|s| {
                DeliveryState::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                    Problem::bad_request("status must be one of pending, delivered, failed")
                })
            })
            .transpose()?;
        let channel = raw
            .channel
            .as_deref()
            .map(|c| {
                c.parse::<NotificationChannel>().map_err(|_| {
                    Problem::bad_request("channel must be one of email, webhook, in_app")
                })
            })
            .transpose()?;
        let task_id = raw
            .task_id
            .as_deref()
            .map(|t| {
                uuid::Uuid::try_parse(t)
                    .map(|u| u.to_string())
                    .map_err(|_| Problem::bad_request("task_id must be a UUID"))
            })
            .transpose()?;
        Ok(Self {
            limit,
            before_seq,
            status,
            channel,
            task_id,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_refused_with_400() {
        let bad = [
            RawNotificationQuery {
                limit: Some("0".into()),
                ..Default::default()
            },
            RawNotificationQuery {
                limit: Some("many".into()),
                ..Default::default()
            },
            RawNotificationQuery {
                cursor: Some("x1".into()),
                ..Default::default()
            },
            RawNotificationQuery {
                status: Some("lost".into()),
                ..Default::default()
            },
            RawNotificationQuery {
                channel: Some("pigeon".into()),
                ..Default::default()
            },
            RawNotificationQuery {
                task_id: Some("42".into()),
                ..Default::default()
            },
        ];
        for raw in bad {
            let shown = format!("{raw:?}");
            assert_eq!(
                NotificationQuery::try_from(raw).expect_err(&shown).status,
                400
            );
        }
    }

    #[test]
    fn a_cursor_round_trips() {
        let q = NotificationQuery::try_from(RawNotificationQuery {
            cursor: Some(cursor(41)),
            status: Some("DELIVERED".into()),
            channel: Some("in_app".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(q.before_seq, Some(41));
        assert_eq!(q.status, Some(DeliveryState::Delivered));
        assert_eq!(q.channel, Some(NotificationChannel::InApp));
        assert_eq!(q.limit, DEFAULT_LIMIT);
    }
}
