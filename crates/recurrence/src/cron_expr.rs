//! Cron expressions, evaluated with the `cron` crate in the rule's time zone.
//!
//! Two notations are accepted:
//! * Unix cron, five fields `minute hour day-of-month month day-of-week`, as users write it:
//!   day-of-week numbers run 0 (or 7) = Sunday, 1 = Monday … 6 = Saturday, and when both the
//!   day of month and the day of week are restricted a day matching either one fires;
//! * the `cron` crate's own six or seven fields with seconds first (and its numbering,
//!   1 = Sunday … 7 = Saturday), or its `@daily`-style shorthands.
//!
//! The `cron` crate numbers weekdays differently and requires both day fields to match, so a
//! Unix expression is translated explicitly: weekdays become names (`MON,TUE`), and an
//! expression restricting both days becomes two schedules whose occurrences are merged.

use std::collections::BTreeSet;
use std::iter::Peekable;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use cron::{OwnedScheduleIterator, Schedule, TimeUnitSpec};

use crate::RuleError;

const FIELD: &str = "cron";

const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One or two `cron` crate schedules: two when a Unix expression restricts both the day of
/// month and the day of week (either one matching fires).
#[derive(Debug, Clone)]
pub(crate) struct CronSchedule {
    schedules: Vec<Schedule>,
}

impl CronSchedule {
    pub(crate) fn parse(text: &str) -> Result<Self, RuleError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RuleError::new(
                FIELD,
                "is empty; write an expression such as 0 9 * * MON",
            ));
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let sources = match fields.as_slice() {
            [shorthand] if shorthand.starts_with('@') => vec![shorthand.to_ascii_lowercase()],
            [minute, hour, day_of_month, month, day_of_week] => {
                unix_to_crate(minute, hour, day_of_month, month, day_of_week)?
            }
            [_, _, _, _, _, _] | [_, _, _, _, _, _, _] => vec![fields.join(" ")],
            _ => {
                return Err(RuleError::new(
                    FIELD,
                    format!(
                        "has {} fields; write five (minute hour day-of-month month day-of-week, \
                         e.g. 0 9 * * MON) or six/seven with seconds first",
                        fields.len()
                    ),
                ));
            }
        };
        let schedules = sources
            .iter()
            .map(|source| {
                Schedule::from_str(source)
                    .map_err(|e| RuleError::new(FIELD, format!("`{text}` is not valid: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if schedules.iter().any(|s| s.seconds().count() != 1) {
            return Err(RuleError::new(
                FIELD,
                "fires more often than once a minute; give a single value in the seconds field",
            ));
        }
        let schedule = CronSchedule { schedules };
        if schedule
            .occurrences_after(Tz::UTC, Utc::now())
            .next()
            .is_none()
        {
            return Err(RuleError::new(
                FIELD,
                format!("`{text}` never fires (e.g. a day that does not exist in that month)"),
            ));
        }
        Ok(schedule)
    }

    /// Occurrences at or after `start`, in order.
    pub(crate) fn occurrences_from(
        &self,
        tz: Tz,
        start: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + use<> {
        self.occurrences_after(tz, start - TimeDelta::seconds(1))
    }

    /// Occurrences strictly after `after`, in order, evaluated in local time of `tz`.
    pub(crate) fn occurrences_after(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + use<> {
        let after = after.with_timezone(&tz);
        Merged {
            tz,
            sources: self
                .schedules
                .iter()
                .map(|s| s.after_owned(after).peekable())
                .collect(),
            last_local: None,
        }
    }
}

/// The union of several schedules' occurrences, in order, each instant once. A local time that
/// occurs twice when clocks go back also fires once, not in both hours.
struct Merged {
    tz: Tz,
    sources: Vec<Peekable<OwnedScheduleIterator<Tz>>>,
    last_local: Option<NaiveDateTime>,
}

impl Iterator for Merged {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        loop {
            let next = self
                .sources
                .iter_mut()
                .filter_map(|s| s.peek().map(|t| t.with_timezone(&Utc)))
                .min()?;
            for source in &mut self.sources {
                while source.peek().is_some_and(|t| t.with_timezone(&Utc) <= next) {
                    source.next();
                }
            }
            let local = next.with_timezone(&self.tz).naive_local();
            if self.last_local == Some(local) {
                continue;
            }
            self.last_local = Some(local);
            return Some(next);
        }
    }
}

/// Translate Unix cron's five fields to the `cron` crate's form (seconds first, weekday names).
fn unix_to_crate(
    minute: &str,
    hour: &str,
    day_of_month: &str,
    month: &str,
    day_of_week: &str,
) -> Result<Vec<String>, RuleError> {
    let weekdays = unix_weekdays(day_of_week)?;
    let day_of_month = if day_of_month == "?" {
        "*"
    } else {
        day_of_month
    };
    // Unix cron: a field starting with `*` leaves that day unrestricted; when both are
    // restricted, a day matching either one fires.
    let dom_restricted = !day_of_month.starts_with('*');
    let dow_restricted = !(day_of_week.starts_with('*') || day_of_week == "?");
    Ok(if dom_restricted && dow_restricted {
        vec![
            format!("0 {minute} {hour} {day_of_month} {month} *"),
            format!("0 {minute} {hour} * {month} {weekdays}"),
        ]
    } else {
        vec![format!(
            "0 {minute} {hour} {day_of_month} {month} {weekdays}"
        )]
    })
}

/// A Unix day-of-week field (`1-5`, `0,6`, `MON-FRI`, `*/2`, `5-7`) as a list of weekday names
/// the `cron` crate reads unambiguously, or `*`.
fn unix_weekdays(field: &str) -> Result<String, RuleError> {
    if field == "*" || field == "?" {
        return Ok("*".to_owned());
    }
    let bad = |why: &str| {
        RuleError::new(
            FIELD,
            format!(
                "day of week `{field}` {why}; use 0-7 (0 and 7 = Sunday, 1 = Monday) or SUN-SAT"
            ),
        )
    };
    let mut days = BTreeSet::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = step
                    .parse::<u8>()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| bad("has a bad step"))?;
                (range, Some(step))
            }
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (0, 7)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                unix_weekday(a).ok_or_else(|| bad("is not valid"))?,
                unix_weekday(b).ok_or_else(|| bad("is not valid"))?,
            )
        } else {
            let day = unix_weekday(range).ok_or_else(|| bad("is not valid"))?;
            // `3/2` means from Wednesday on, every second day.
            (day, if step.is_some() { 7 } else { day })
        };
        if first > last {
            return Err(bad("has a range that runs backwards"));
        }
        let step = usize::from(step.unwrap_or(1));
        for day in (first..=last).step_by(step) {
            days.insert(day % 7);
        }
    }
    if days.is_empty() {
        return Err(bad("names no day"));
    }
    Ok(days
        .into_iter()
        .map(|d| WEEKDAY_NAMES[usize::from(d)])
        .collect::<Vec<_>>()
        .join(","))
}

/// One Unix weekday: 0-7 (0 and 7 = Sunday) or a three-letter English name.
fn unix_weekday(value: &str) -> Option<u8> {
    if let Ok(n) = value.parse::<u8>() {
        return (n <= 7).then_some(n);
    }
    WEEKDAY_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(value))
        .and_then(|i| u8::try_from(i).ok())
}
