//! Types and rules of users, tasks and categories, without I/O. Requests are parsed here into
//! types that can only hold valid values, so storage and handlers never re-check them.

pub mod query;
pub mod share;
pub mod task;
pub mod time;
pub mod user;

use service_kit::http::Problem;

/// Collects per-field problems of one request, so a client learns about all of them at once.
#[derive(Debug, Default)]
pub struct Invalid {
    problem: Option<Problem>,
}

impl Invalid {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let problem = self.problem.take().unwrap_or_else(Problem::validation);
        self.problem = Some(problem.field(field, message));
    }

    /// Keep the value of a check, or record its message.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.add(field, message.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.problem.is_none()
    }

    /// `Ok(value())` when nothing was recorded, else the 422 problem listing every field.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Problem> {
        match self.problem {
            Some(problem) => Err(problem),
            None => value().ok_or_else(|| {
                Problem::validation().detail("a field is invalid (no message recorded)")
            }),
        }
    }
}

/// One validation problem as a 422 document.
pub fn invalid(field: &str, message: impl Into<String>) -> Problem {
    Problem::validation().field(field, message)
}

/// Parse a UUID given as text, in its canonical lower-case form.
pub fn parse_uuid(value: &str) -> Result<String, String> {
    uuid::Uuid::try_parse(value.trim())
        .map(|u| u.to_string())
        .map_err(|_| "must be a UUID".to_owned())
}
