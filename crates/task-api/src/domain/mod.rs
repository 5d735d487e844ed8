//! Types and rules of users, tasks and categories, without I/O. Requests are parsed here into
//! types that can only hold valid values, so storage and handlers never re-check them.

pub mod phone;
pub mod push;
pub mod query;
pub mod share;
pub mod task;
pub mod time;
pub mod user;

/// One invalid field of a request and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    pub field: String,
    pub message: String,
}

/// The domain's validation error: every invalid field of one request, so a client learns about
/// all of them at once. The domain knows nothing of HTTP; the REST edge shows this as a 422
/// problem listing the fields, the MCP tools as a tool error.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("invalid input: {}", describe(.fields))]
pub struct Invalid {
    fields: Vec<InvalidField>,
}

fn describe(fields: &[InvalidField]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{} {}", f.field, f.message))
        .collect();
    parts.join("; ")
}

impl Invalid {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.fields.push(InvalidField {
            field: field.into(),
            message: message.into(),
        });
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
        self.fields.is_empty()
    }

    /// The invalid fields, in the order they were found.
    pub fn fields(&self) -> &[InvalidField] {
        &self.fields
    }

    /// `Ok(value())` when nothing was recorded, else every recorded field.
    pub fn finish<T>(mut self, value: impl FnOnce() -> Option<T>) -> Result<T, Invalid> {
        if !self.is_empty() {
            return Err(self);
        }
        value().ok_or_else(|| {
            // A check returned nothing without recording why: a defect, but still the
            // client's answer must name something.
            self.add("request", "a field is invalid (no message recorded)");
            self
        })
    }
}

/// One invalid field.
pub fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    let mut invalid = Invalid::new();
    invalid.add(field, message);
    invalid
}

/// Parse a UUID given as text, in its canonical lower-case form.
pub fn parse_uuid(value: &str) -> Result<String, String> {
    uuid::Uuid::try_parse(value.trim())
        .map(|u| u.to_string())
        .map_err(|_| "must be a UUID".to_owned())
}
