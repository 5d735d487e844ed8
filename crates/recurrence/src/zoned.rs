//! Local wall-clock times in a time zone, where a daylight-saving change can make a local time
//! not exist (spring forward) or exist twice (fall back).

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone};
use chrono_tz::Tz;

/// The instant of a local wall-clock time: the earlier one when it exists twice, and the same
/// wall-clock time one hour later when it falls into a gap (02:30 on a spring-forward night is
/// 03:30), which is where a clock that skipped the hour would show it.
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Tz>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(earlier, _) => Some(earlier),
        LocalResult::None => match tz.from_local_datetime(&(local + TimeDelta::hours(1))) {
            LocalResult::Single(t) => Some(t),
            LocalResult::Ambiguous(earlier, _) => Some(earlier),
            LocalResult::None => None,
        },
    }
}
