//! Times at the edge: RFC 3339 text in the API, epoch milliseconds inside and on the wire.

use chrono::{DateTime, Utc};

/// 2000-01-01T00:00:00Z: the events crate refuses earlier times as unit mix-ups.
pub const EARLIEST: i64 = 946_684_800_000;
/// 9999-12-31T23:59:59.999Z.
pub const LATEST: i64 = 253_402_300_799_999;

/// Parse an RFC 3339 time into epoch ms, within the range every consumer accepts.
pub fn parse(value: &str) -> Result<i64, String> {
    let ms = DateTime::parse_from_rfc3339(value.trim())
        .map_err(|_| "must be an RFC 3339 time, e.g. 2026-11-25T09:00:00Z".to_owned())?
        .timestamp_millis();
    if (EARLIEST..=LATEST).contains(&ms) {
        Ok(ms)
    } else {
        Err("must be between the years 2000 and 9999".to_owned())
    }
}

/// Parse any RFC 3339 time into epoch ms (for filters, which store nothing).
pub fn parse_any(value: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| "must be an RFC 3339 time, e.g. 2026-11-25T09:00:00Z".to_owned())
}

/// RFC 3339 (UTC, milliseconds) of an epoch-ms time: the events crate's, which every client view uses.
pub use events::time::rfc3339 as format;

pub fn to_datetime(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_implausible_ones_are_refused() {
        let ms = parse("2026-11-25T09:00:00+01:00").unwrap();
        assert_eq!(format(ms), "2026-11-25T08:00:00.000Z");
        assert!(parse("1970-01-01T00:00:00Z").is_err());
        assert!(parse("tomorrow").is_err());
        assert!(parse("2026-11-25").is_err());
    }
}
