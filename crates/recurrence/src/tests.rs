use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time is RFC 3339")
        .with_timezone(&Utc)
}

/// A local wall-clock time in a zone, as UTC.
fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

fn rrule(text: &str, tz: &str) -> RecurrenceRule {
    RecurrenceRule::parse(Some(text), None, tz, Mode::Fixed, None, None).expect("valid rrule")
}

fn cron(text: &str, tz: &str) -> RecurrenceRule {
    RecurrenceRule::parse(None, Some(text), tz, Mode::Fixed, None, None).expect("valid cron")
}

fn in_zone(times: &[DateTime<Utc>], tz: Tz) -> Vec<String> {
    times
        .iter()
        .map(|t| t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M").to_string())
        .collect()
}

// ---- RRULE -----------------------------------------------------------------------------------

#[test]
fn weekly_on_monday_and_wednesday() {
    let rule = rrule("FREQ=WEEKLY;BYDAY=MO,WE", "UTC");
    let start = utc("2026-03-02T09:00:00Z"); // a Monday
    let got = rule.occurrences_after(start, start, 4);
    assert_eq!(
        in_zone(&got, Tz::UTC),
        [
            "Wed 2026-03-04 09:00",
            "Mon 2026-03-09 09:00",
            "Wed 2026-03-11 09:00",
            "Mon 2026-03-16 09:00"
        ]
    );
}

#[test]
fn a_leading_rrule_property_name_is_accepted() {
    let rule = rrule("RRULE:FREQ=WEEKLY;BYDAY=MO", "UTC");
    let start = utc("2026-03-02T09:00:00Z");
    assert_eq!(
        rule.occurrences_after(start, start, 1),
        [utc("2026-03-09T09:00:00Z")]
    );
    assert_eq!(rule.kind().text(), "RRULE:FREQ=WEEKLY;BYDAY=MO");
}

#[test]
fn monthly_on_the_last_friday() {
    let rule = rrule("FREQ=MONTHLY;BYDAY=-1FR", "Europe/Berlin");
    let start = local(Tz::Europe__Berlin, 2026, 1, 30, 17, 0); // last Friday of January
    let got = rule.occurrences_after(start, start, 4);
    assert_eq!(
        in_zone(&got, Tz::Europe__Berlin),
        [
            "Fri 2026-02-27 17:00",
            "Fri 2026-03-27 17:00",
            "Fri 2026-04-24 17:00",
            "Fri 2026-05-29 17:00"
        ]
    );
}

#[test]
fn every_two_weeks_with_count_three_ends_the_series() {
    let rule = RecurrenceRule::parse(
        Some("FREQ=WEEKLY;INTERVAL=2"),
        None,
        "UTC",
        Mode::Fixed,
        None,
        Some(3),
    )
    .expect("valid");
    let start = utc("2026-03-02T09:00:00Z");
    let all = rule.occurrences_after(start, start - chrono::TimeDelta::seconds(1), 10);
    assert_eq!(
        all,
        [
            utc("2026-03-02T09:00:00Z"),
            utc("2026-03-16T09:00:00Z"),
            utc("2026-03-30T09:00:00Z")
        ]
    );
    let second = rule.next_due(start, Some(start), start, 0);
    assert_eq!(second, Some(utc("2026-03-16T09:00:00Z")));
    let third = rule.next_due(start, second, utc("2026-03-16T10:00:00Z"), 1);
    assert_eq!(third, Some(utc("2026-03-30T09:00:00Z")));
    assert_eq!(
        rule.next_due(start, third, utc("2026-03-30T10:00:00Z"), 2),
        None,
        "three tasks exist, the series has ended"
    );
}

#[test]
fn count_inside_the_rrule_body_ends_the_series_too() {
    let rule = rrule("FREQ=DAILY;COUNT=2", "UTC");
    let start = utc("2026-03-02T09:00:00Z");
    assert_eq!(
        rule.next_due(start, Some(start), start, 0),
        Some(utc("2026-03-03T09:00:00Z"))
    );
    assert_eq!(
        rule.next_due(
            start,
            Some(utc("2026-03-03T09:00:00Z")),
            utc("2026-03-03T09:30:00Z"),
            1
        ),
        None
    );
    assert_eq!(rule.count(), None, "the field stays as the user gave it");
}

#[test]
fn until_ends_the_series() {
    let until = utc("2026-03-12T00:00:00Z");
    let rule = RecurrenceRule::parse(
        Some("FREQ=WEEKLY"),
        None,
        "UTC",
        Mode::Fixed,
        Some(until),
        None,
    )
    .expect("valid");
    let start = utc("2026-03-02T09:00:00Z");
    assert_eq!(
        rule.occurrences_after(start, start, 5),
        [utc("2026-03-09T09:00:00Z")]
    );
    let second = utc("2026-03-09T09:00:00Z");
    assert_eq!(rule.next_due(start, Some(start), start, 0), Some(second));
    assert_eq!(rule.next_due(start, Some(second), second, 1), None);

    let body = rrule("FREQ=DAILY;UNTIL=20260304T090000Z", "UTC");
    assert_eq!(
        body.occurrences_after(start, start, 5),
        [utc("2026-03-03T09:00:00Z"), utc("2026-03-04T09:00:00Z")]
    );
    // A date-only UNTIL covers that whole local day.
    let day = rrule("FREQ=DAILY;UNTIL=20260303", "Europe/Berlin");
    assert_eq!(day.occurrences_after(start, start, 5).len(), 1);
}

#[test]
fn berlin_keeps_nine_oclock_local_across_both_dst_changes() {
    let tz = Tz::Europe__Berlin;
    let rule = rrule("FREQ=WEEKLY;BYDAY=MO", "Europe/Berlin");
    // Spring forward on Sunday 2026-03-29: 09:00 is 08:00 UTC before and 07:00 UTC after.
    let start = local(tz, 2026, 3, 23, 9, 0);
    let spring = rule.occurrences_after(start, start, 2);
    assert_eq!(
        spring,
        [utc("2026-03-30T07:00:00Z"), utc("2026-04-06T07:00:00Z")]
    );
    assert_eq!(start, utc("2026-03-23T08:00:00Z"));
    // Fall back on Sunday 2026-10-25.
    let autumn = rule.occurrences_after(start, local(tz, 2026, 10, 19, 12, 0), 2);
    assert_eq!(
        autumn,
        [utc("2026-10-26T08:00:00Z"), utc("2026-11-02T08:00:00Z")]
    );
    assert!(
        spring
            .iter()
            .chain(&autumn)
            .all(|t| t.with_timezone(&tz).hour() == 9)
    );
}

#[test]
fn new_york_keeps_nine_oclock_local_across_both_dst_changes() {
    let tz = Tz::America__New_York;
    let rule = rrule("FREQ=DAILY", "America/New_York");
    // Spring forward on 2026-03-08, fall back on 2026-11-01.
    let start = local(tz, 2026, 3, 7, 9, 0);
    assert_eq!(
        rule.occurrences_after(start, start, 2),
        [utc("2026-03-08T13:00:00Z"), utc("2026-03-09T13:00:00Z")]
    );
    let autumn = rule.occurrences_after(start, local(tz, 2026, 10, 31, 12, 0), 2);
    assert_eq!(
        autumn,
        [utc("2026-11-01T14:00:00Z"), utc("2026-11-02T14:00:00Z")]
    );
    let cron_rule = cron("0 9 * * *", "America/New_York");
    assert_eq!(
        cron_rule.occurrences_after(start, local(tz, 2026, 10, 31, 12, 0), 2),
        autumn
    );
}

#[test]
fn fixed_mode_after_a_late_completion_skips_the_backlog() {
    let rule = rrule("FREQ=WEEKLY;BYDAY=MO", "UTC");
    let start = utc("2026-03-02T09:00:00Z");
    // Occurrence 0 was due on 2026-03-02 and is completed three weeks late, on a Wednesday.
    let next = rule.next_due(start, Some(start), utc("2026-03-25T12:00:00Z"), 0);
    assert_eq!(next, Some(utc("2026-03-30T09:00:00Z")));
}

#[test]
fn fixed_mode_after_an_early_completion_keeps_the_calendar() {
    let rule = rrule("FREQ=WEEKLY;BYDAY=MO", "UTC");
    let start = utc("2026-03-02T09:00:00Z");
    let next = rule.next_due(start, Some(start), utc("2026-02-27T12:00:00Z"), 0);
    assert_eq!(next, Some(utc("2026-03-09T09:00:00Z")));
}

#[test]
fn after_completion_counts_from_the_completion_day() {
    let rule = rrule("FREQ=DAILY;INTERVAL=3", "Europe/Berlin").with_mode(Mode::AfterCompletion);
    let tz = Tz::Europe__Berlin;
    let start = local(tz, 2026, 3, 2, 9, 0);
    // Due 2026-03-02, completed ten days late in the afternoon: three days after that day.
    let late = local(tz, 2026, 3, 12, 15, 30);
    assert_eq!(
        rule.next_due(start, Some(start), late, 0),
        Some(local(tz, 2026, 3, 15, 9, 0))
    );
    // Completed early in the morning: the completion still consumes that day.
    let early = local(tz, 2026, 3, 12, 7, 0);
    assert_eq!(
        rule.next_due(start, Some(start), early, 0),
        Some(local(tz, 2026, 3, 15, 9, 0))
    );
    // The fixed calendar would instead stay on the 2nd + 3n days.
    let fixed = rule.clone().with_mode(Mode::Fixed);
    assert_eq!(
        fixed.next_due(start, Some(start), late, 0),
        Some(local(tz, 2026, 3, 14, 9, 0))
    );
}

#[test]
fn after_completion_weekly_goes_to_the_next_matching_day() {
    let rule = rrule("FREQ=WEEKLY;BYDAY=MO", "UTC").with_mode(Mode::AfterCompletion);
    let start = utc("2026-03-02T09:00:00Z");
    let next = rule.next_due(start, Some(start), utc("2026-03-25T12:00:00Z"), 0);
    assert_eq!(next, Some(utc("2026-03-30T09:00:00Z")));
    let cron_rule = cron("0 9 * * MON", "UTC").with_mode(Mode::AfterCompletion);
    assert_eq!(
        cron_rule.next_due(start, Some(start), utc("2026-03-25T12:00:00Z"), 0),
        next
    );
}

#[test]
fn a_task_without_a_due_date_continues_after_its_completion() {
    let rule = rrule("FREQ=WEEKLY;BYDAY=FR", "UTC");
    let start = utc("2026-03-02T09:00:00Z");
    assert_eq!(
        rule.next_due(start, None, utc("2026-03-10T08:00:00Z"), 0),
        Some(utc("2026-03-13T09:00:00Z"))
    );
}

// ---- cron --------------------------------------------------------------------------------------

fn weekdays_of(rule: &RecurrenceRule) -> Vec<Weekday> {
    let monday = utc("2026-03-02T00:00:00Z");
    rule.occurrences_after(monday, monday, 7)
        .iter()
        .map(|t| t.weekday())
        .collect()
}

#[test]
fn unix_cron_one_to_five_is_monday_to_friday() {
    use Weekday::*;
    assert_eq!(
        weekdays_of(&cron("0 9 * * 1-5", "UTC")),
        [Mon, Tue, Wed, Thu, Fri, Mon, Tue]
    );
    assert_eq!(
        weekdays_of(&cron("0 9 * * MON-FRI", "UTC")),
        [Mon, Tue, Wed, Thu, Fri, Mon, Tue]
    );
}

#[test]
fn unix_cron_zero_and_seven_are_sunday() {
    use Weekday::*;
    assert_eq!(weekdays_of(&cron("0 9 * * 0", "UTC"))[..2], [Sun, Sun]);
    assert_eq!(weekdays_of(&cron("0 9 * * 7", "UTC"))[..2], [Sun, Sun]);
    assert_eq!(
        weekdays_of(&cron("0 9 * * 5-7", "UTC"))[..3],
        [Fri, Sat, Sun]
    );
    assert_eq!(
        weekdays_of(&cron("0 9 * * */2", "UTC"))[..4],
        [Tue, Thu, Sat, Sun]
    );
}

#[test]
fn unix_cron_keeps_the_time_of_day_in_its_zone() {
    let rule = cron("30 9 * * MON", "Europe/Berlin");
    let start = local(Tz::Europe__Berlin, 2026, 3, 23, 9, 30);
    assert_eq!(
        rule.occurrences_after(start, start, 2),
        [utc("2026-03-30T07:30:00Z"), utc("2026-04-06T07:30:00Z")]
    );
}

#[test]
fn cron_with_seconds_uses_the_cron_crate_numbering() {
    use Weekday::*;
    // Six fields: the cron crate's own form, where 2 = Monday.
    assert_eq!(weekdays_of(&cron("0 0 9 * * 2", "UTC"))[..2], [Mon, Mon]);
    assert_eq!(
        weekdays_of(&cron("0 0 9 * * MON-FRI", "UTC")),
        [Mon, Tue, Wed, Thu, Fri, Mon, Tue]
    );
    assert_eq!(weekdays_of(&cron("@daily", "UTC")).len(), 7);
}

#[test]
fn unix_cron_restricting_both_days_fires_on_either() {
    let rule = cron("0 9 13 * FRI", "UTC");
    let start = utc("2026-03-01T00:00:00Z");
    let got = rule.occurrences_after(start, start, 4);
    assert_eq!(
        in_zone(&got, Tz::UTC),
        [
            "Fri 2026-03-06 09:00",
            "Fri 2026-03-13 09:00",
            "Fri 2026-03-20 09:00",
            "Fri 2026-03-27 09:00"
        ]
    );
    let got = cron("0 9 15 * MON", "UTC").occurrences_after(start, start, 3);
    assert_eq!(
        in_zone(&got, Tz::UTC),
        [
            "Mon 2026-03-02 09:00",
            "Mon 2026-03-09 09:00",
            "Sun 2026-03-15 09:00"
        ]
    );
}

#[test]
fn cron_fires_once_when_a_local_time_repeats_as_clocks_go_back() {
    // 01:30 happens twice in New York on 2026-11-01.
    let rule = cron("30 1 * * *", "America/New_York");
    let start = utc("2026-10-31T12:00:00Z");
    let got = rule.occurrences_after(start, start, 2);
    assert_eq!(
        got,
        [utc("2026-11-01T05:30:00Z"), utc("2026-11-02T06:30:00Z")]
    );
}

#[test]
fn count_ends_a_cron_series() {
    let rule = RecurrenceRule::parse(None, Some("0 9 * * *"), "UTC", Mode::Fixed, None, Some(2))
        .expect("valid");
    let start = utc("2026-03-02T09:00:00Z");
    assert_eq!(
        rule.occurrences_after(start, start, 5),
        [utc("2026-03-03T09:00:00Z")]
    );
    assert_eq!(
        rule.next_due(start, Some(start), start, 0),
        Some(utc("2026-03-03T09:00:00Z"))
    );
    assert_eq!(
        rule.next_due(start, Some(utc("2026-03-03T09:00:00Z")), start, 1),
        None
    );
}

// ---- errors and round trips --------------------------------------------------------------------

fn field_of(result: Result<RecurrenceRule, RuleError>) -> &'static str {
    result.expect_err("should be refused").field
}

#[test]
fn bad_input_is_refused_naming_the_field() {
    let p = RecurrenceRule::parse;
    assert_eq!(
        field_of(p(
            Some("FREQ=DAILY"),
            None,
            "Mars/Olympus",
            Mode::Fixed,
            None,
            None
        )),
        "timezone"
    );
    assert_eq!(
        field_of(p(Some("FREQ=DAILY"), None, "", Mode::Fixed, None, None)),
        "timezone"
    );
    assert_eq!(
        field_of(p(
            Some("FREQ=SOMETIMES"),
            None,
            "UTC",
            Mode::Fixed,
            None,
            None
        )),
        "rrule"
    );
    assert_eq!(
        field_of(p(Some("BYDAY=XX"), None, "UTC", Mode::Fixed, None, None)),
        "rrule"
    );
    assert_eq!(
        field_of(p(Some(""), None, "UTC", Mode::Fixed, None, None)),
        "rrule"
    );
    assert_eq!(
        field_of(p(
            Some("DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY"),
            None,
            "UTC",
            Mode::Fixed,
            None,
            None
        )),
        "rrule"
    );
    assert_eq!(
        field_of(p(
            Some("FREQ=DAILY;COUNT=0"),
            None,
            "UTC",
            Mode::Fixed,
            None,
            None
        )),
        "rrule"
    );
    assert_eq!(
        field_of(p(None, Some("0 9 * *"), "UTC", Mode::Fixed, None, None)),
        "cron"
    );
    assert_eq!(
        field_of(p(None, Some("0 25 * * *"), "UTC", Mode::Fixed, None, None)),
        "cron"
    );
    assert_eq!(
        field_of(p(None, Some("0 9 * * 8"), "UTC", Mode::Fixed, None, None)),
        "cron"
    );
    assert_eq!(
        field_of(p(
            None,
            Some("0 9 * * FRI-MON"),
            "UTC",
            Mode::Fixed,
            None,
            None
        )),
        "cron"
    );
    assert_eq!(
        field_of(p(
            Some("FREQ=DAILY"),
            Some("0 9 * * *"),
            "UTC",
            Mode::Fixed,
            None,
            None
        )),
        "recurrence"
    );
    assert_eq!(
        field_of(p(None, None, "UTC", Mode::Fixed, None, None)),
        "recurrence"
    );
    assert_eq!(
        field_of(p(
            Some("FREQ=DAILY"),
            None,
            "UTC",
            Mode::Fixed,
            None,
            Some(0)
        )),
        "count"
    );
}

#[test]
fn rules_firing_more_than_once_a_minute_are_refused() {
    for text in [
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;BYSECOND=0,30",
        "FREQ=HOURLY;BYSECOND=1,2",
    ] {
        let err = RecurrenceRule::parse(Some(text), None, "UTC", Mode::Fixed, None, None)
            .expect_err(text);
        assert_eq!(err.field, "rrule");
        assert!(err.message.contains("once a minute"), "{err}");
    }
    for text in ["* * * * * *", "*/10 * * * * *", "0,30 0 9 * * *"] {
        let err = RecurrenceRule::parse(None, Some(text), "UTC", Mode::Fixed, None, None)
            .expect_err(text);
        assert_eq!(err.field, "cron");
        assert!(err.message.contains("once a minute"), "{err}");
    }
    // Once a minute is fine.
    rrule("FREQ=MINUTELY", "UTC");
    cron("* * * * *", "UTC");
}

#[test]
fn rules_that_never_fire_are_refused() {
    let err = RecurrenceRule::parse(
        Some("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"),
        None,
        "UTC",
        Mode::Fixed,
        None,
        None,
    )
    .expect_err("February 30 does not exist");
    assert_eq!(err.field, "rrule");
    let err = RecurrenceRule::parse(None, Some("0 9 30 2 *"), "UTC", Mode::Fixed, None, None)
        .expect_err("February 30 does not exist");
    assert_eq!(err.field, "cron");
}

#[test]
fn the_event_form_round_trips() {
    let event = events::Recurrence {
        rrule: Some("FREQ=WEEKLY;BYDAY=MO,WE".into()),
        cron: None,
        timezone: "Europe/Berlin".into(),
        mode: events::RecurrenceMode::AfterCompletion,
        until: Some(1_798_761_600_000),
        count: Some(10),
    };
    let rule = RecurrenceRule::from_event(&event).expect("valid");
    assert_eq!(rule.mode(), Mode::AfterCompletion);
    assert_eq!(rule.timezone(), Tz::Europe__Berlin);
    assert_eq!(rule.to_event(), event);

    let bad_count = events::Recurrence {
        count: Some(0),
        ..event.clone()
    };
    assert_eq!(
        RecurrenceRule::from_event(&bad_count)
            .expect_err("count 0")
            .field,
        "count"
    );
    let bad_zone = events::Recurrence {
        timezone: "Nowhere/Else".into(),
        ..event
    };
    assert_eq!(
        RecurrenceRule::from_event(&bad_zone)
            .expect_err("zone")
            .field,
        "timezone"
    );
}

#[test]
fn errors_read_as_field_and_reason() {
    let err = parse_timezone("Mars/Olympus").expect_err("unknown zone");
    assert!(
        err.to_string().starts_with("timezone: unknown time zone"),
        "{err}"
    );
}
