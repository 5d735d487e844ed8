//! Times as a person types them on the command line, in their own time zone: "tomorrow 9:00",
//! "fri 17:30", "today", "2026-12-07 09:00", "18:00", or RFC 3339. A day without a time means
//! 09:00. The answer is RFC 3339 with the zone's offset, which task-api parses as usual.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc,
};
use chrono_tz::Tz;

const DEFAULT_TIME: (u32, u32) = (9, 0);

fn time_of_day(text: &str) -> Option<NaiveTime> {
    let t = text.trim().to_ascii_lowercase();
    let (t, pm) = match (t.strip_suffix("pm"), t.strip_suffix("am")) {
        (Some(rest), _) => (rest.trim().to_owned(), Some(true)),
        (_, Some(rest)) => (rest.trim().to_owned(), Some(false)),
        _ => (t, None),
    };
    let (h, m) = match t.split_once(':') {
        Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None => (t.parse::<u32>().ok()?, 0),
    };
    let h = match pm {
        Some(true) if h < 12 => h + 12,
        Some(false) if h == 12 => 0,
        _ => h,
    };
    NaiveTime::from_hms_opt(h, m, 0)
}

fn weekday(word: &str) -> Option<chrono::Weekday> {
    let w = word.to_ascii_lowercase();
    let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    names
        .iter()
        .position(|n| w.starts_with(n))
        .and_then(|i| chrono::Weekday::try_from(i as u8).ok())
}

fn day(word: &str, today: NaiveDate) -> Option<NaiveDate> {
    match word.to_ascii_lowercase().as_str() {
        "today" => Some(today),
        "tomorrow" => today.succ_opt(),
        w => {
            if let Ok(d) = NaiveDate::parse_from_str(w, "%Y-%m-%d") {
                return Some(d);
            }
            let target = weekday(w)?;
            // The next such day, a week ahead when it is today.
            let ahead = (7 + target.num_days_from_monday() as i64
                - today.weekday().num_days_from_monday() as i64)
                % 7;
            Some(today + Duration::days(if ahead == 0 { 7 } else { ahead }))
        }
    }
}

/// `text` as an RFC 3339 time, read in `zone` as of `now`.
pub fn parse(text: &str, zone: Tz, now: DateTime<Utc>) -> Result<String, String> {
    let text = text.trim();
    if DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(text.to_owned());
    }
    let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            let today = now.with_timezone(&zone).date_naive();
            let words: Vec<&str> = text.split_whitespace().collect();
            match words.as_slice() {
                [one] => match day(one, today) {
                    Some(d) => d.and_hms_opt(DEFAULT_TIME.0, DEFAULT_TIME.1, 0),
                    None => time_of_day(one).map(|t| today.and_time(t)),
                },
                [d, t] => Some(day(d, today)?.and_time(time_of_day(t)?)),
                _ => None,
            }
        })
        .ok_or_else(|| {
            format!(
                "cannot read {text:?} as a time; try \"tomorrow 9:00\", \"fri 17:30\", \
                 \"2026-12-07 09:00\" or RFC 3339"
            )
        })?;
    local
        .and_local_timezone(zone)
        .earliest()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
        .ok_or_else(|| format!("{text:?} does not exist in {zone} (a daylight-saving gap)"))
}

/// An RFC 3339 time from the API, shown in `zone` as "2026-12-07 09:00".
pub fn show(value: &str, zone: Tz) -> String {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn words_and_times_are_read_in_the_users_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Sunday 2026-12-06, 14:00 in Berlin.
        let now = at("2026-12-06T13:00:00Z");
        assert_eq!(
            parse("tomorrow 9:00", berlin, now).unwrap(),
            "2026-12-07T09:00:00+01:00"
        );
        assert_eq!(
            parse("fri 5pm", berlin, now).unwrap(),
            "2026-12-11T17:00:00+01:00"
        );
        assert_eq!(
            parse("sunday", berlin, now).unwrap(),
            "2026-12-13T09:00:00+01:00"
        );
        assert_eq!(
            parse("18:30", berlin, now).unwrap(),
            "2026-12-06T18:30:00+01:00"
        );
        assert_eq!(
            parse("2026-07-01 08:00", berlin, now).unwrap(),
            "2026-07-01T08:00:00+02:00"
        );
        assert_eq!(
            parse("2026-07-01T08:00:00Z", berlin, now).unwrap(),
            "2026-07-01T08:00:00Z"
        );
        assert!(parse("someday", berlin, now).is_err());
    }
}
