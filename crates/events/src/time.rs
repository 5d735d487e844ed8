//! Times as clients read them: RFC 3339 in UTC with milliseconds (`2026-12-01T09:00:00.000Z`).
//! Events carry epoch milliseconds; every client-facing text of a time is made here.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::model::EpochMillis;

/// RFC 3339 (UTC, milliseconds) of an epoch-ms time; empty for a time chrono cannot represent
/// (the events crate's validation refuses those before they get here).
pub fn rfc3339(ms: EpochMillis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(
            super::rfc3339(1_764_579_600_000),
            "2025-12-01T09:00:00.000Z"
        );
    }
}
