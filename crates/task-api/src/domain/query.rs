//! `GET /api/tasks`: filters, sorting and keyset cursors, parsed at the edge.
//!
//! Pages are keyset pages on (sort key, id): the cursor holds the last row's key and id, and the
//! next page starts strictly after it. Inserting tasks between two requests therefore never
//! shifts a page (no task is skipped or repeated, unlike OFFSET paging).

use events::{Priority, TaskStatus};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{parse_uuid, time};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
pub const MAX_QUERY_LEN: usize = 200;

/// The query string, as sent. Every value is text here so that a bad one gets a clear 400.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RawTaskQuery {
    /// `open` or `completed`.
    #[param(pattern = "^(open|completed)$")]
    pub status: Option<String>,
    /// `critical`, `high`, `medium` or `low`.
    #[param(pattern = "^(critical|high|medium|low)$")]
    pub priority: Option<String>,
    /// Tasks carrying this tag.
    #[param(min_length = 1, max_length = 50, pattern = "\\S")]
    pub tag: Option<String>,
    /// Tasks in this category (UUID).
    #[param(value_type = Option<uuid::Uuid>)]
    pub category_id: Option<String>,
    /// Due strictly before this RFC 3339 time.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub due_before: Option<String>,
    /// Due at or after this RFC 3339 time.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub due_after: Option<String>,
    /// Text searched in title and description (case-insensitive).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// `created_at`, `updated_at`, `due_at` or `priority`, `-` in front for descending.
    /// Default `-created_at`. Tasks without a due date sort after all others ascending.
    #[param(pattern = "^-?(created_at|updated_at|due_at|priority)$")]
    pub sort: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `me`: only the caller's own tasks; `others`: only tasks shared with the caller.
    /// Default both.
    #[param(pattern = "^(me|others)$")]
    pub owner: Option<String>,
    /// `me`: only tasks assigned to the caller.
    #[param(pattern = "^me$")]
    pub assignee: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    DueAt,
    Priority,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            field: SortField::CreatedAt,
            descending: true,
        }
    }
}

impl Sort {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let (descending, name) = match value.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, value.strip_prefix('+').unwrap_or(value)),
        };
        let field = match name {
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            "due_at" => SortField::DueAt,
            "priority" => SortField::Priority,
            _ => {
                return Err(format!(
                    "cannot sort by {name:?}; use created_at, updated_at, due_at or priority, \
                     with - in front for descending"
                ));
            }
        };
        Ok(Sort { field, descending })
    }

    fn code(&self) -> char {
        let c = match self.field {
            SortField::CreatedAt => 'c',
            SortField::UpdatedAt => 'u',
            SortField::DueAt => 'd',
            SortField::Priority => 'p',
        };
        if self.descending {
            c.to_ascii_uppercase()
        } else {
            c
        }
    }

    fn from_code(c: char) -> Option<Self> {
        let field = match c.to_ascii_lowercase() {
            'c' => SortField::CreatedAt,
            'u' => SortField::UpdatedAt,
            'd' => SortField::DueAt,
            'p' => SortField::Priority,
            _ => return None,
        };
        Some(Sort {
            field,
            descending: c.is_ascii_uppercase(),
        })
    }
}

/// Where the next page starts: after the row with this sort key and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: Sort,
    pub key: i64,
    pub id: String,
}

impl Cursor {
    /// Opaque to clients: hex of `<sort code><key>:<id>`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}{}:{}", self.sort.code(), self.key, self.id))
    }

    pub fn decode(value: &str) -> Option<Self> {
        let text = String::from_utf8(hex::decode(value.trim()).ok()?).ok()?;
        let mut chars = text.chars();
        let sort = Sort::from_code(chars.next()?)?;
        let (key, id) = chars.as_str().split_once(':')?;
        Some(Cursor {
            sort,
            key: key.parse().ok()?,
            id: parse_uuid(id).ok()?,
        })
    }
}

/// Whose tasks a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnerFilter {
    /// The caller's own and those shared with them.
    #[default]
    Any,
    Me,
    Others,
}

/// `GET /api/tasks`, valid. Filters combine with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    pub tag: Option<String>,
    pub category_id: Option<String>,
    pub due_before: Option<i64>,
    pub due_after: Option<i64>,
    /// Lower-cased search text.
    pub q: Option<String>,
    pub sort: Sort,
    pub limit: i64,
    pub after: Option<Cursor>,
    pub owner: OwnerFilter,
    pub assigned_to_me: bool,
}

/// A query parameter that cannot be used, and why (the REST edge answers it with a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter {parameter}: {message}")]
pub struct BadQuery {
    pub parameter: String,
    pub message: String,
}

fn bad(parameter: &str, message: impl std::fmt::Display) -> BadQuery {
    BadQuery {
        parameter: parameter.to_owned(),
        message: message.to_string(),
    }
}

impl TryFrom<RawTaskQuery> for TaskQuery {
    type Error = BadQuery;

    fn try_from(raw: RawTaskQuery) -> Result<Self, BadQuery> {
        let status = raw
            .status
            .as_deref()
            .map(|s| s.parse::<TaskStatus>().map_err(|m| bad("status", m)))
            .transpose()?;
        let priority = raw
            .priority
            .as_deref()
            .map(|s| s.parse::<Priority>().map_err(|m| bad("priority", m)))
            .transpose()?;
        let tag = match raw.tag.as_deref().map(str::trim) {
            None => None,
            Some("") => return Err(bad("tag", "must not be empty")),
            Some(t) => Some(t.to_owned()),
        };
        let category_id = raw
            .category_id
            .as_deref()
            .map(|c| parse_uuid(c).map_err(|m| bad("category_id", m)))
            .transpose()?;
        let due_before = raw
            .due_before
            .as_deref()
            .map(|t| time::parse_any(t).map_err(|m| bad("due_before", m)))
            .transpose()?;
        let due_after = raw
            .due_after
            .as_deref()
            .map(|t| time::parse_any(t).map_err(|m| bad("due_after", m)))
            .transpose()?;
        if let (Some(b), Some(a)) = (due_before, due_after)
            && a >= b
        {
            return Err(bad("due_after", "must be before due_before"));
        }
        let q = match raw.q.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(q) if q.chars().count() > MAX_QUERY_LEN => {
                return Err(bad("q", format!("at most {MAX_QUERY_LEN} characters")));
            }
            Some(q) => Some(q.to_lowercase()),
        };
        let sort = raw
            .sort
            .as_deref()
            .map(|s| Sort::parse(s).map_err(|m| bad("sort", m)))
            .transpose()?
            .unwrap_or_default();
        let limit = match raw.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(l) => match l.trim().parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let after = match raw.cursor.as_deref() {
            None => None,
            Some(c) => {
                let cursor = Cursor::decode(c)
                    .ok_or_else(|| bad("cursor", "is not a cursor this API returned"))?;
                if cursor.sort != sort {
                    return Err(bad(
                        "cursor",
                        "belongs to another sort order; send the same sort as for the first page",
                    ));
                }
                Some(cursor)
            }
        };
        let owner = match raw.owner.as_deref().map(str::trim) {
            None => OwnerFilter::Any,
            Some("me") => OwnerFilter::Me,
            Some("others") => OwnerFilter::Others,
            Some(_) => return Err(bad("owner", "must be me or others")),
        };
        let assigned_to_me = match raw.assignee.as_deref().map(str::trim) {
            None => false,
            Some("me") => true,
            Some(_) => return Err(bad("assignee", "must be me")),
        };
        Ok(TaskQuery {
            owner,
            assigned_to_me,
            status,
            priority,
            tag,
            category_id,
            due_before,
            due_after,
            q,
            sort,
            limit,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let c = Cursor {
            sort: Sort::parse("-due_at").unwrap(),
            key: i64::MAX,
            id: "0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("zz"), None);
        assert_eq!(Cursor::decode(&hex::encode("x1:abc")), None);
    }

    #[test]
    fn bad_parameters_are_refused_not_ignored() {
        let cases = [
            RawTaskQuery {
                status: Some("done".into()),
                ..Default::default()
            },
            RawTaskQuery {
                priority: Some("urgent".into()),
                ..Default::default()
            },
            RawTaskQuery {
                sort: Some("title".into()),
                ..Default::default()
            },
            RawTaskQuery {
                limit: Some("0".into()),
                ..Default::default()
            },
            RawTaskQuery {
                limit: Some("201".into()),
                ..Default::default()
            },
            RawTaskQuery {
                limit: Some("ten".into()),
                ..Default::default()
            },
            RawTaskQuery {
                due_before: Some("tomorrow".into()),
                ..Default::default()
            },
            RawTaskQuery {
                category_id: Some("7".into()),
                ..Default::default()
            },
            RawTaskQuery {
                cursor: Some("abc".into()),
                ..Default::default()
            },
            RawTaskQuery {
                tag: Some(" ".into()),
                ..Default::default()
            },
        ];
        for raw in cases {
            let shown = format!("{raw:?}");
            TaskQuery::try_from(raw).expect_err(&shown);
        }
    }

    #[test]
    fn a_cursor_of_another_sort_is_refused() {
        let c = Cursor {
            sort: Sort::parse("created_at").unwrap(),
            key: 1,
            id: "0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11".into(),
        };
        let raw = RawTaskQuery {
            sort: Some("-created_at".into()),
            cursor: Some(c.encode()),
            ..Default::default()
        };
        assert!(TaskQuery::try_from(raw).is_err());
    }
}
