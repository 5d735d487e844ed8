//! Recurrence rules of the task platform, in one place: task-api uses them to validate what users
//! write, the recurring-task-service to compute the next occurrence of a series.
//!
//! A rule is an RFC 5545 RRULE body (`FREQ=WEEKLY;BYDAY=MO,WE`) or a cron expression (Unix
//! `0 9 * * MON` or the `cron` crate's form with seconds), evaluated in an IANA time zone so
//! that "09:00 local" stays 09:00 local across daylight-saving changes. `until` and `count`
//! end a series. No I/O here: everything is a pure function of its inputs, which is what lets
//! every replay of an event compute the same next occurrence.
//!
//! Series vocabulary: a series starts at `series_start` (the due date of its first task);
//! occurrence `index` 0 is that first task, each completion creates occurrence `index + 1`.

mod cron_expr;
mod rfc5545;
mod zoned;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::cron_expr::CronSchedule;
use crate::rfc5545::RRuleSchedule;

/// Which notation a rule is written in, with the text as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// An RFC 5545 RRULE body, e.g. `FREQ=WEEKLY;BYDAY=MO,WE` (a leading `RRULE:` is allowed).
    RRule(String),
    /// A cron expression: Unix five fields (`0 9 * * 1-5`) or six/seven fields with seconds.
    Cron(String),
}

impl RuleKind {
    /// The rule text as the user wrote it (trimmed).
    pub fn text(&self) -> &str {
        match self {
            RuleKind::RRule(s) | RuleKind::Cron(s) => s,
        }
    }
}

/// How the due date of the next occurrence is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// On the rule's own calendar: the first occurrence after the previous due date that is also
    /// after the completion, so a late completion skips the missed ones instead of creating a
    /// backlog of overdue copies.
    Fixed,
    /// Counted from the completion: the rule restarted at the completion.
    AfterCompletion,
}

impl From<events::RecurrenceMode> for Mode {
    fn from(mode: events::RecurrenceMode) -> Self {
        match mode {
            events::RecurrenceMode::Fixed => Mode::Fixed,
            events::RecurrenceMode::AfterCompletion => Mode::AfterCompletion,
        }
    }
}

impl From<Mode> for events::RecurrenceMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Fixed => events::RecurrenceMode::Fixed,
            Mode::AfterCompletion => events::RecurrenceMode::AfterCompletion,
        }
    }
}

/// Why a rule was refused. `field` names the input at fault, for a 400 problem document or a
/// dead letter: `"rrule"`, `"cron"`, `"timezone"`, `"until"`, `"count"` or `"recurrence"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

impl RuleError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        RuleError {
            field,
            message: message.into(),
        }
    }
}

/// Parse an IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_timezone(s: &str) -> Result<Tz, RuleError> {
    let name = s.trim();
    if name.is_empty() {
        return Err(RuleError::new(
            "timezone",
            "is empty; give an IANA time zone such as Europe/Berlin or UTC",
        ));
    }
    name.parse::<Tz>().map_err(|_| {
        RuleError::new(
            "timezone",
            format!("unknown time zone {name:?}; give an IANA name such as Europe/Berlin or UTC"),
        )
    })
}

/// The compiled form of a rule, ready to evaluate.
#[derive(Debug, Clone)]
enum Schedule {
    RRule(Box<RRuleSchedule>),
    Cron(CronSchedule),
}

/// A validated recurrence rule: it can only be built through [`RecurrenceRule::parse`] or
/// [`RecurrenceRule::from_event`], so holders never re-check it.
#[derive(Debug, Clone)]
pub struct RecurrenceRule {
    kind: RuleKind,
    timezone: Tz,
    mode: Mode,
    until: Option<DateTime<Utc>>,
    count: Option<u32>,
    schedule: Schedule,
    /// The tighter of `until` and an `UNTIL` written inside the RRULE body.
    effective_until: Option<DateTime<Utc>>,
    /// The tighter of `count` and a `COUNT` written inside the RRULE body.
    effective_count: Option<u32>,
}

impl PartialEq for RecurrenceRule {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.timezone == other.timezone
            && self.mode == other.mode
            && self.until == other.until
            && self.count == other.count
    }
}

impl Eq for RecurrenceRule {}

impl RecurrenceRule {
    /// Parse a rule from its parts. Exactly one of `rrule` and `cron` must be given.
    pub fn parse(
        rrule: Option<&str>,
        cron: Option<&str>,
        timezone: &str,
        mode: Mode,
        until: Option<DateTime<Utc>>,
        count: Option<u32>,
    ) -> Result<Self, RuleError> {
        let timezone = parse_timezone(timezone)?;
        if count == Some(0) {
            return Err(RuleError::new(
                "count",
                "must be at least 1 (the number of tasks in the series)",
            ));
        }
        let (kind, schedule, body_until, body_count) = match (rrule, cron) {
            (Some(text), None) => {
                let parsed = RRuleSchedule::parse(text, timezone)?;
                let (until, count) = (parsed.until(), parsed.count());
                (
                    RuleKind::RRule(text.trim().to_owned()),
                    Schedule::RRule(Box::new(parsed)),
                    until,
                    count,
                )
            }
            (None, Some(text)) => (
                RuleKind::Cron(text.trim().to_owned()),
                Schedule::Cron(CronSchedule::parse(text)?),
                None,
                None,
            ),
            (Some(_), Some(_)) => {
                return Err(RuleError::new(
                    "recurrence",
                    "give either rrule or cron, not both",
                ));
            }
            (None, None) => {
                return Err(RuleError::new(
                    "recurrence",
                    "give a rule: rrule (e.g. FREQ=WEEKLY;BYDAY=MO) or cron (e.g. 0 9 * * MON)",
                ));
            }
        };
        Ok(RecurrenceRule {
            kind,
            timezone,
            mode,
            until,
            count,
            schedule,
            effective_until: tighter(until, body_until),
            effective_count: tighter(count, body_count),
        })
    }

    /// Parse the recurrence an event carries.
    pub fn from_event(r: &events::Recurrence) -> Result<Self, RuleError> {
        let until = r
            .until
            .map(|ms| {
                DateTime::<Utc>::from_timestamp_millis(ms)
                    .ok_or_else(|| RuleError::new("until", format!("{ms} is not a valid time")))
            })
            .transpose()?;
        let count = r
            .count
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| RuleError::new("count", format!("{n} is not at least 1")))
            })
            .transpose()?;
        Self::parse(
            r.rrule.as_deref(),
            r.cron.as_deref(),
            &r.timezone,
            r.mode.into(),
            until,
            count,
        )
    }

    /// The recurrence as events carry it.
    pub fn to_event(&self) -> events::Recurrence {
        let (rrule, cron) = match &self.kind {
            RuleKind::RRule(s) => (Some(s.clone()), None),
            RuleKind::Cron(s) => (None, Some(s.clone())),
        };
        events::Recurrence {
            rrule,
            cron,
            timezone: self.timezone.name().to_owned(),
            mode: self.mode.into(),
            until: self.until.map(|t| t.timestamp_millis()),
            // `parse` admits at most u32; an i32 overflow would only come from an absurd count.
            count: self.count.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        }
    }

    pub fn kind(&self) -> &RuleKind {
        &self.kind
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }

    pub fn count(&self) -> Option<u32> {
        self.count
    }

    /// The same rule with another mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Occurrences of the rule strictly after `after`, at most `n`, in order.
    ///
    /// The rule runs from `series_start` (an RRULE's DTSTART, in the rule's zone): `count`
    /// counts its occurrences from there, and nothing after `until` is returned.
    pub fn occurrences_after(
        &self,
        series_start: DateTime<Utc>,
        after: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        if n == 0 {
            return Vec::new();
        }
        let occurrences = self.series_from(series_start);
        let limited: Box<dyn Iterator<Item = DateTime<Utc>>> = match self.effective_count {
            Some(count) => Box::new(occurrences.take(count as usize)),
            None => occurrences,
        };
        limited
            .skip_while(|t| *t <= after)
            .take_while(|t| self.within_until(*t))
            .take(n)
            .collect()
    }

    /// The due date of occurrence `index + 1`, given that occurrence `index` (0-based) was due at
    /// `previous_due` (None if it had none) and was completed at `completed_at`.
    ///
    /// * [`Mode::Fixed`]: the first occurrence of the rule (from `series_start`) after the
    ///   previous due date that is also after the completion: a late completion does not create
    ///   a backlog of overdue copies.
    /// * [`Mode::AfterCompletion`]: the first occurrence of the rule restarted at the completion
    ///   (see [`RecurrenceRule::next_after_completion`]).
    ///
    /// None when the series has ended: `count` tasks exist already, or the next occurrence would
    /// fall after `until`, or the rule has no further occurrence.
    pub fn next_due(
        &self,
        series_start: DateTime<Utc>,
        previous_due: Option<DateTime<Utc>>,
        completed_at: DateTime<Utc>,
        index: u32,
    ) -> Option<DateTime<Utc>> {
        // `count` is the number of tasks in the series: indices 0..count exist.
        if let Some(count) = self.effective_count
            && u64::from(index) + 1 >= u64::from(count)
        {
            return None;
        }
        let next = match self.mode {
            Mode::Fixed => {
                let threshold = previous_due.map_or(completed_at, |due| due.max(completed_at));
                self.occurrences_after(series_start, threshold, 1)
                    .into_iter()
                    .next()
            }
            Mode::AfterCompletion => self.next_after_completion(series_start, completed_at),
        }?;
        self.within_until(next).then_some(next)
    }

    /// The rule restarted at a completion.
    ///
    /// An RRULE is re-anchored at the start of the completion's period (its day for daily and
    /// coarser rules, its hour or minute for finer ones) at the series' own local time of day,
    /// and the next occurrence is the first one after that anchor and after the completion. So
    /// `FREQ=DAILY;INTERVAL=3` is three days after the completion day at the series' time, and
    /// the completion consumes that day's occurrence. A cron expression has no period to restart:
    /// its next occurrence is simply the first one after the completion.
    fn next_after_completion(
        &self,
        series_start: DateTime<Utc>,
        completed_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match &self.schedule {
            Schedule::RRule(rule) => {
                let anchor = rule.completion_anchor(self.timezone, series_start, completed_at);
                let threshold = anchor.max(completed_at);
                rule.occurrences_from(self.timezone, anchor)
                    .find(|t| *t > threshold)
            }
            Schedule::Cron(cron) => cron.occurrences_after(self.timezone, completed_at).next(),
        }
    }

    /// Every occurrence of the rule from `series_start` on (inclusive), without until/count.
    fn series_from(&self, series_start: DateTime<Utc>) -> Box<dyn Iterator<Item = DateTime<Utc>>> {
        match &self.schedule {
            Schedule::RRule(rule) => Box::new(rule.occurrences_from(self.timezone, series_start)),
            Schedule::Cron(cron) => Box::new(cron.occurrences_from(self.timezone, series_start)),
        }
    }

    fn within_until(&self, t: DateTime<Utc>) -> bool {
        self.effective_until.is_none_or(|until| t <= until)
    }
}

fn tighter<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
