//! RFC 5545 RRULE bodies, evaluated with the `rrule` crate in the rule's time zone.
//!
//! Users write the body only (`FREQ=WEEKLY;BYDAY=MO`): the DTSTART is the series start, in
//! the rule's zone, so the rule's local time of day survives daylight-saving changes. `COUNT`
//! and `UNTIL` inside the body are taken out and enforced by the caller together with the
//! recurrence's own `count` and `until` fields, because the after-completion mode restarts
//! the rule at each completion, where the rrule crate's own COUNT would restart too.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use rrule::{Frequency, RRule, RRuleSet, Unvalidated, Validated};

use crate::RuleError;
use crate::zoned::resolve_local;

const FIELD: &str = "rrule";

/// A parsed RRULE body without its COUNT and UNTIL.
#[derive(Debug, Clone)]
pub(crate) struct RRuleSchedule {
    rule: RRule<Unvalidated>,
    freq: Frequency,
    until: Option<DateTime<Utc>>,
    count: Option<u32>,
}

impl RRuleSchedule {
    pub(crate) fn parse(text: &str, tz: Tz) -> Result<Self, RuleError> {
        let body = strip_property_name(text.trim());
        if body.is_empty() {
            return Err(RuleError::new(
                FIELD,
                "is empty; write a rule such as FREQ=WEEKLY;BYDAY=MO",
            ));
        }
        if body.contains(['\n', '\r']) {
            return Err(RuleError::new(
                FIELD,
                "write only the rule on one line, e.g. FREQ=WEEKLY;BYDAY=MO \
                 (the series starts at the task's due date, so no DTSTART)",
            ));
        }

        let mut kept = Vec::new();
        let mut until = None;
        let mut count = None;
        for part in body.split(';').filter(|p| !p.trim().is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(RuleError::new(
                    FIELD,
                    format!("`{part}` is not a NAME=VALUE part"),
                ));
            };
            match name.trim().to_ascii_uppercase().as_str() {
                "COUNT" => count = Some(parse_count(value.trim())?),
                "UNTIL" => until = Some(parse_until(value.trim(), tz)?),
                _ => kept.push(part.trim()),
            }
        }

        let rule: RRule<Unvalidated> = kept
            .join(";")
            .parse()
            .map_err(|e: rrule::RRuleError| RuleError::new(FIELD, e.to_string()))?;
        let schedule = RRuleSchedule {
            freq: rule.get_freq(),
            rule,
            until,
            count,
        };

        // Validation depends on a DTSTART only through UNTIL, which is taken out above; any
        // start in the zone will do to find out whether the rule itself is acceptable.
        let probe = to_rrule_zone(Utc::now(), tz);
        let validated = schedule
            .rule
            .clone()
            .validate(probe)
            .map_err(|e| RuleError::new(FIELD, e.to_string()))?;
        reject_sub_minute(&validated)?;
        if schedule.occurrences_from(tz, Utc::now()).next().is_none() {
            return Err(RuleError::new(
                FIELD,
                "the rule never produces an occurrence (e.g. a day that does not exist in any month)",
            ));
        }
        Ok(schedule)
    }

    /// `UNTIL` written in the body, if any.
    pub(crate) fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }

    /// `COUNT` written in the body, if any.
    pub(crate) fn count(&self) -> Option<u32> {
        self.count
    }

    /// Occurrences with DTSTART = `start` (in `tz`): those at or after it, in order.
    pub(crate) fn occurrences_from(
        &self,
        tz: Tz,
        start: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + use<> {
        let dt_start = to_rrule_zone(start, tz);
        let set = self
            .rule
            .clone()
            .validate(dt_start)
            .ok()
            .map(|rule| RRuleSet::new(dt_start).rrule(rule).limit());
        // `limit()` makes the iterator give up on rules that match nothing for a very long
        // stretch instead of looping for ever.
        set.into_iter()
            .flat_map(|set| (&set).into_iter())
            .map(|t| t.with_timezone(&Utc))
    }

    /// Where the rule restarts for a completion at `completed_at`: the start of the completion's
    /// period (its local day for daily and coarser rules, its hour or minute for finer ones) at
    /// the series' own time within that period.
    pub(crate) fn completion_anchor(
        &self,
        tz: Tz,
        series_start: DateTime<Utc>,
        completed_at: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let series = series_start.with_timezone(&tz).naive_local();
        let done = completed_at.with_timezone(&tz).naive_local();
        let time = match self.freq {
            Frequency::Hourly => {
                NaiveTime::from_hms_opt(done.hour(), series.minute(), series.second())
            }
            Frequency::Minutely | Frequency::Secondly => {
                NaiveTime::from_hms_opt(done.hour(), done.minute(), series.second())
            }
            Frequency::Yearly | Frequency::Monthly | Frequency::Weekly | Frequency::Daily => {
                NaiveTime::from_hms_opt(series.hour(), series.minute(), series.second())
            }
        };
        time.and_then(|time| resolve_local(tz, NaiveDateTime::new(done.date(), time)))
            .map_or(completed_at, |t| t.with_timezone(&Utc))
    }
}

/// The rrule crate works in whole seconds; a DTSTART with a fraction would carry it into
/// every occurrence.
fn to_rrule_zone(t: DateTime<Utc>, tz: Tz) -> DateTime<rrule::Tz> {
    let t = t.with_nanosecond(0).unwrap_or(t);
    t.with_timezone(&rrule::Tz::Tz(tz))
}

fn strip_property_name(text: &str) -> &str {
    match text.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => text[6..].trim(),
        _ => text,
    }
}

/// Rules firing more often than once a minute make no sense for tasks: FREQ=SECONDLY, or
/// several BYSECOND values (two occurrences within one minute).
fn reject_sub_minute(rule: &RRule<Validated>) -> Result<(), RuleError> {
    if rule.get_freq() == Frequency::Secondly || rule.get_by_second().len() > 1 {
        return Err(RuleError::new(
            FIELD,
            "fires more often than once a minute; use FREQ=MINUTELY or coarser with at most one BYSECOND",
        ));
    }
    Ok(())
}

fn parse_count(value: &str) -> Result<u32, RuleError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            RuleError::new(
                FIELD,
                format!("COUNT={value} is not a whole number of at least 1"),
            )
        })
}

/// `UNTIL` as RFC 5545 writes it: `20261231T235959Z` (UTC), `20261231T235959` (local time in
/// the rule's zone) or `20261231` (the whole local day, inclusive).
fn parse_until(value: &str, tz: Tz) -> Result<DateTime<Utc>, RuleError> {
    let bad = || {
        RuleError::new(
            FIELD,
            format!("UNTIL={value} is not a date (20261231) or date-time (20261231T090000Z)"),
        )
    };
    let (local, zulu) = match value.strip_suffix(['Z', 'z']) {
        Some(rest) => (rest, true),
        None => (value, false),
    };
    let naive = if local.len() == 8 {
        NaiveDate::parse_from_str(local, "%Y%m%d")
            .ok()
            .and_then(|d| d.and_hms_opt(23, 59, 59))
    } else {
        NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S").ok()
    }
    .ok_or_else(bad)?;
    if zulu {
        Ok(naive.and_utc())
    } else {
        resolve_local(tz, naive)
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(bad)
    }
}
