//! Sharing a task: the requests a client writes and the share it reads back.
//!
//! A share names a registered user, or an email with no account yet: that is an invitation,
//! which takes effect when the address registers. The owner learns which of the two it is
//! (`status`), as in every product that shares documents by email: hiding it would make the
//! share list lie about who can see the task.

use events::ShareRole;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::user::Email;
use super::{Invalid, parse_uuid};

/// `POST /api/tasks/{id}/shares`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The email of the user to share with (an account, or an invitation when none has it).
    #[schema(example = "grace@example.com")]
    pub email: String,
    /// `viewer` (reads) or `editor` (also edits, completes and reopens).
    #[schema(example = "editor")]
    pub role: String,
}

/// A share request, valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub email: Email,
    pub role: ShareRole,
}

impl ShareRequest {
    pub fn parse(&self) -> Result<Share, Invalid> {
        let mut invalid = Invalid::new();
        let email = invalid.check("email", Email::parse(&self.email));
        let role = invalid.check(
            "role",
            match self.role.parse::<ShareRole>() {
                Ok(ShareRole::None) => {
                    Err("must be viewer or editor; DELETE the share to remove it".to_owned())
                }
                Ok(role) => Ok(role),
                Err(e) => Err(e.to_string()),
            },
        );
        invalid.finish(|| {
            Some(Share {
                email: email?,
                role: role?,
            })
        })
    }
}

/// Whose share `DELETE /api/tasks/{id}/shares/{who}` removes: a user id, or the email of an
/// invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareTarget {
    User(String),
    Invitation(Email),
}

impl ShareTarget {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        if value.contains('@') {
            Email::parse(value)
                .map(ShareTarget::Invitation)
                .map_err(|m| super::invalid("user_id", m))
        } else {
            parse_uuid(value)
                .map(ShareTarget::User)
                .map_err(|m| super::invalid("user_id", m))
        }
    }
}

/// One share of a task, as clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareView {
    /// The user, or null for an invitation.
    pub user_id: Option<String>,
    pub email: String,
    /// `viewer` or `editor`.
    pub role: String,
    /// `active`, or `pending`: an invitation waiting for the email to register.
    pub status: String,
}

impl ShareView {
    pub fn active(user_id: &str, email: &str, role: ShareRole) -> Self {
        Self {
            user_id: Some(user_id.to_owned()),
            email: email.to_owned(),
            role: role.as_str().to_owned(),
            status: "active".to_owned(),
        }
    }

    pub fn pending(email: &str, role: ShareRole) -> Self {
        Self {
            user_id: None,
            email: email.to_owned(),
            role: role.as_str().to_owned(),
            status: "pending".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_needs_an_email_and_a_real_role() {
        let ok = ShareRequest {
            email: " Grace@Example.com ".into(),
            role: "Editor".into(),
        };
        let share = ok.parse().unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(share.email.as_str(), "grace@example.com");
        assert_eq!(share.role, ShareRole::Editor);
        for (email, role) in [("nope", "viewer"), ("a@b.c", "none"), ("a@b.c", "owner")] {
            let bad = ShareRequest {
                email: email.into(),
                role: role.into(),
            };
            assert!(bad.parse().is_err(), "{email} {role}");
        }
    }

    #[test]
    fn a_share_is_removed_by_user_id_or_by_the_invited_email() {
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(ShareTarget::parse(&id).ok(), Some(ShareTarget::User(id)));
        assert!(matches!(
            ShareTarget::parse("Ada@Example.com"),
            Ok(ShareTarget::Invitation(e)) if e.as_str() == "ada@example.com"
        ));
        assert!(ShareTarget::parse("not-an-id").is_err());
    }
}
