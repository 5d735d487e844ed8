//! REST API (SPEC section 7): `GET /api/recurrence/preview` (the next occurrences of a rule,
//! for forms that help write one) and `GET /api/series/{series_id}` (a user's own series and its
//! occurrences, JWT).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use events::{Recurrence, RecurrenceView, ReminderView};
use recurrence::{Mode, RecurrenceRule, RuleError};
use serde::{Deserialize, Serialize};
use service_kit::db::{Database, DbError};
use service_kit::http::{Authenticated, Problem};

use crate::domain::{Template, rfc3339};
use crate::storage::{self, NextOccurrenceRow, OccurrenceRow, SeriesRow};

pub const DEFAULT_PREVIEW_COUNT: usize = 10;
pub const MAX_PREVIEW_COUNT: usize = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/recurrence/preview", web::get().to(preview))
        .route("/api/series/{series_id}", web::get().to(series));
}

// ---- preview ---------------------------------------------------------------------------------

/// The query string of the preview, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreviewQuery {
    pub rrule: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub count: Option<String>,
    pub start: Option<String>,
}

/// A preview request, valid by construction.
#[derive(Debug, Clone)]
pub struct PreviewQuery {
    pub rule: RecurrenceRule,
    pub count: usize,
    pub start: DateTime<Utc>,
}

fn rule_problem(e: RuleError) -> Problem {
    Problem::bad_request(e.to_string()).field(e.field, e.message)
}

impl PreviewQuery {
    /// Parse the query; `now` is the default start.
    pub fn parse(raw: RawPreviewQuery, now: DateTime<Utc>) -> Result<Self, Problem> {
        let count = match raw.count.as_deref() {
            None => DEFAULT_PREVIEW_COUNT,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PREVIEW_COUNT).contains(n))
                .ok_or_else(|| {
                    let message = format!("must be an integer from 1 to {MAX_PREVIEW_COUNT}");
                    Problem::bad_request(format!("count {message}")).field("count", message)
                })?,
        };
        let start = match raw.start.as_deref() {
            // Whole seconds: the rule's time of day comes from the start.
            None => now.with_nanosecond(0).unwrap_or(now),
            Some(v) => DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    let message = "must be an RFC 3339 time, e.g. 2026-03-02T09:00:00+01:00";
                    Problem::bad_request(format!("start {message}")).field("start", message)
                })?,
        };
        let rule = RecurrenceRule::parse(
            raw.rrule.as_deref(),
            raw.cron.as_deref(),
            raw.timezone.as_deref().unwrap_or("UTC"),
            Mode::Fixed,
            None,
            None,
        )
        .map_err(rule_problem)?;
        Ok(Self { rule, count, start })
    }

    /// The first `count` occurrences from the start on (the start itself when it matches).
    pub fn occurrences(&self) -> Vec<DateTime<Utc>> {
        self.rule.occurrences_after(
            self.start,
            self.start - TimeDelta::milliseconds(1),
            self.count,
        )
    }
}

#[derive(Debug, Serialize)]
struct PreviewItem {
    /// UTC.
    at: String,
    /// The same instant in the rule's time zone, with its offset.
    local: String,
}

#[derive(Debug, Serialize)]
struct Preview {
    timezone: String,
    start: String,
    occurrences: Vec<PreviewItem>,
}

async fn preview(query: web::Query<RawPreviewQuery>) -> Result<HttpResponse, Problem> {
    let query = PreviewQuery::parse(query.into_inner(), Utc::now())?;
    let tz = query.rule.timezone();
    let occurrences = query
        .occurrences()
        .into_iter()
        .map(|t| PreviewItem {
            at: t.to_rfc3339_opts(SecondsFormat::Secs, true),
            local: t
                .with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Preview {
        timezone: tz.name().to_owned(),
        start: query.start.to_rfc3339_opts(SecondsFormat::Secs, true),
        occurrences,
    }))
}

// ---- series ------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct TemplateView {
    pub title: String,
    pub description: Option<String>,
    pub priority: &'static str,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub reminders: Vec<ReminderView>,
}

impl From<Template> for TemplateView {
    fn from(t: Template) -> Self {
        Self {
            title: t.title,
            description: t.description,
            priority: t.priority.as_str(),
            category_id: t.category_id,
            tags: t.tags,
            reminders: t.reminders.iter().map(ReminderView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OccurrenceView {
    pub index: i64,
    pub task_id: String,
    pub status: String,
    pub due_at: Option<String>,
    pub completed_at: Option<String>,
    pub version: i64,
    /// Created by this service after the previous occurrence was completed.
    pub generated: bool,
    /// Its task.created was acknowledged by the brokers (generated occurrences only).
    pub published: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct SeriesView {
    pub series_id: String,
    pub status: &'static str,
    pub end_reason: Option<String>,
    pub ended_at: Option<String>,
    pub series_start: String,
    pub recurrence: Option<RecurrenceView>,
    pub template: TemplateView,
    pub occurrences: Vec<OccurrenceView>,
    pub created_at: String,
    pub updated_at: String,
}

impl SeriesView {
    /// `ledger`: the generated occurrences, each with whether its task.created still waits in
    /// the outbox.
    fn build(
        series: SeriesRow,
        tasks: Vec<OccurrenceRow>,
        ledger: Vec<(NextOccurrenceRow, bool)>,
    ) -> Self {
        let occurrences = tasks
            .into_iter()
            .map(|o| {
                let generated = ledger.iter().find(|(n, _)| n.task_id == o.task_id);
                OccurrenceView {
                    index: o.occurrence_index,
                    generated: generated.is_some(),
                    published: generated.map(|(_, pending)| !pending),
                    task_id: o.task_id,
                    status: o.status,
                    due_at: o.due_date.map(rfc3339),
                    completed_at: o.completed_at.map(rfc3339),
                    version: o.version,
                }
            })
            .collect();
        let recurrence = series
            .recurrence
            .as_deref()
            .and_then(|r| serde_json::from_str::<Recurrence>(r).ok())
            .as_ref()
            .map(RecurrenceView::from);
        let template = serde_json::from_str::<Template>(&series.template)
            .unwrap_or_else(|_| Template::unknown());
        Self {
            series_id: series.series_id,
            status: if series.end_reason.is_some() {
                "ended"
            } else {
                "active"
            },
            end_reason: series.end_reason,
            ended_at: series.ended_at.map(rfc3339),
            series_start: rfc3339(series.series_start),
            recurrence,
            template: template.into(),
            occurrences,
            created_at: rfc3339(series.created_at),
            updated_at: rfc3339(series.updated_at),
        }
    }
}

fn storage_problem(e: DbError) -> Problem {
    if e.is_unavailable() {
        Problem::unavailable("the series database is unavailable")
    } else {
        tracing::error!(error = %e, "series query failed");
        Problem::internal()
    }
}

async fn series(
    auth: Authenticated,
    db: web::Data<Database>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    // Not a UUID, not yours, or not there: all look the same.
    let Ok(id) = uuid::Uuid::try_parse(&path.into_inner()) else {
        return Err(Problem::not_found("series"));
    };
    let id = id.to_string();
    let found = db
        .run(move |conn| {
            let Some(series) = storage::find_series(conn, &id)? else {
                return Ok(None);
            };
            let tasks = storage::occurrences_of(conn, &id)?;
            let ledger = storage::next_occurrences_of(conn, &id)?
                .into_iter()
                .map(|n| {
                    let pending = service_kit::outbox::store::is_pending(conn, &n.event_id)?;
                    Ok((n, pending))
                })
                .collect::<Result<Vec<_>, DbError>>()?;
            Ok(Some((series, tasks, ledger)))
        })
        .await
        .map_err(storage_problem)?;
    match found {
        Some((series, tasks, ledger)) if auth.is_admin() || series.user_id == auth.user_id() => {
            Ok(HttpResponse::Ok().json(SeriesView::build(series, tasks, ledger)))
        }
        _ => Err(Problem::not_found("series")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawPreviewQuery {
        let mut q = RawPreviewQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "rrule" => q.rrule = v,
                "cron" => q.cron = v,
                "timezone" => q.timezone = v,
                "count" => q.count = v,
                "start" => q.start = v,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn bad_preview_queries_are_400_naming_the_field() {
        let now = Utc::now();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("rrule", "FREQ=NEVER")], "rrule"),
            (&[("cron", "61 * * * *")], "cron"),
            (
                &[("rrule", "FREQ=DAILY"), ("timezone", "Mars/Base")],
                "timezone",
            ),
            (&[("rrule", "FREQ=DAILY"), ("count", "0")], "count"),
            (&[("rrule", "FREQ=DAILY"), ("count", "101")], "count"),
            (&[("rrule", "FREQ=DAILY"), ("count", "ten")], "count"),
            (&[("rrule", "FREQ=DAILY"), ("start", "tomorrow")], "start"),
            (&[], "recurrence"),
            (
                &[("rrule", "FREQ=DAILY"), ("cron", "0 9 * * *")],
                "recurrence",
            ),
        ];
        for (pairs, field) in cases {
            let problem = PreviewQuery::parse(raw(pairs), now).expect_err(&format!("{pairs:?}"));
            assert_eq!(problem.status, 400, "{pairs:?}");
            assert_eq!(problem.errors[0].field, *field, "{pairs:?}");
        }
    }

    #[test]
    fn the_preview_starts_at_the_start_when_it_matches() {
        let q = PreviewQuery::parse(
            raw(&[
                ("rrule", "FREQ=WEEKLY;BYDAY=MO,WE"),
                ("timezone", "Europe/Berlin"),
                ("count", "3"),
                ("start", "2026-03-02T09:00:00+01:00"),
            ]),
            Utc::now(),
        )
        .expect("valid");
        let got: Vec<String> = q.occurrences().iter().map(|t| t.to_rfc3339()).collect();
        assert_eq!(
            got,
            [
                "2026-03-02T08:00:00+00:00",
                "2026-03-04T08:00:00+00:00",
                "2026-03-09T08:00:00+00:00"
            ]
        );
    }
}
