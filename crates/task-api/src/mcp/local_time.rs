//! Times a model writes as the user says them: "2026-12-07T09:00" without an offset means 09:00
//! in the user's time zone. Such a value is rewritten to RFC 3339 with the zone's offset before
//! the request is parsed by the same rules as over REST; anything else is left for that parser
//! to accept or refuse (with its own message naming the field).

use chrono::{DateTime, NaiveDateTime, SecondsFormat};
use chrono_tz::Tz;

const LOCAL_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
];

fn naive(value: &str) -> Option<NaiveDateTime> {
    let value = value.trim();
    if DateTime::parse_from_rfc3339(value).is_ok() {
        return None;
    }
    LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
}

/// Whether `value` is a local time that needs the user's zone.
pub fn is_local(value: &str) -> bool {
    naive(value).is_some()
}

/// `value` in RFC 3339 with `zone`'s offset when it is a local time; else unchanged. In a
/// daylight-saving gap the value stays as written (and the parser refuses it); in an overlap
/// the earlier instant is taken.
pub fn in_zone(value: &str, zone: &str) -> String {
    let (Some(local), Ok(tz)) = (naive(value), zone.parse::<Tz>()) else {
        return value.to_owned();
    };
    match local.and_local_timezone(tz).earliest() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, false),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_take_the_zone_and_offsets_are_kept() {
        assert_eq!(
            in_zone("2026-12-07T09:00", "Europe/Berlin"),
            "2026-12-07T09:00:00+01:00"
        );
        assert_eq!(
            in_zone("2026-07-07 09:30:15", "Europe/Berlin"),
            "2026-07-07T09:30:15+02:00"
        );
        assert_eq!(
            in_zone("2026-12-07T09:00:00Z", "Europe/Berlin"),
            "2026-12-07T09:00:00Z"
        );
        assert_eq!(in_zone("tomorrow", "UTC"), "tomorrow");
        assert!(is_local("2026-12-07T09:00"));
        assert!(!is_local("2026-12-07T09:00:00+01:00"));
    }
}
