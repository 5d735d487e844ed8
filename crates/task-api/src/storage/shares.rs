//! Invitations: shares with an email that has no account yet. They take effect when that
//! address registers (see `changes::users`). Shares with accounts live on the task itself
//! (`tasks.collaborators`, indexed by `task_members`).

use diesel::prelude::*;
use events::ShareRole;
use service_kit::db::{DbConnection, DbError};

use super::corrupt;
use super::schema::task_invitations;

/// A share waiting for its email to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub task_id: String,
    pub email: String,
    pub role: ShareRole,
    pub invited_at: i64,
}

type Row = (String, String, String, i64);

fn from_row((task_id, email, role, invited_at): Row) -> Result<Invitation, DbError> {
    Ok(Invitation {
        task_id,
        email,
        role: role.parse().map_err(|e| corrupt("invitation role", e))?,
        invited_at,
    })
}

/// Invite `email` to `task_id` as `role`, or change the role of that invitation; `false` when it
/// already stood with that role.
pub fn invite(conn: &mut DbConnection, invitation: &Invitation) -> Result<bool, DbError> {
    let existing = task_invitations::table
        .filter(task_invitations::task_id.eq(&invitation.task_id))
        .filter(task_invitations::email.eq(&invitation.email))
        .select(task_invitations::role)
        .first::<String>(conn)
        .optional()?;
    match existing {
        Some(role) if role == invitation.role.as_str() => Ok(false),
        Some(_) => {
            diesel::update(
                task_invitations::table
                    .filter(task_invitations::task_id.eq(&invitation.task_id))
                    .filter(task_invitations::email.eq(&invitation.email)),
            )
            .set(task_invitations::role.eq(invitation.role.as_str()))
            .execute(conn)?;
            Ok(true)
        }
        None => {
            diesel::insert_into(task_invitations::table)
                .values((
                    task_invitations::task_id.eq(&invitation.task_id),
                    task_invitations::email.eq(&invitation.email),
                    task_invitations::role.eq(invitation.role.as_str()),
                    task_invitations::invited_at.eq(invitation.invited_at),
                ))
                .execute(conn)?;
            Ok(true)
        }
    }
}

/// The invitations of a task, oldest first.
pub fn of_task(conn: &mut DbConnection, task_id: &str) -> Result<Vec<Invitation>, DbError> {
    task_invitations::table
        .filter(task_invitations::task_id.eq(task_id))
        .order((task_invitations::invited_at, task_invitations::email))
        .load::<Row>(conn)?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Withdraw one invitation; `false` when there was none.
pub fn withdraw(conn: &mut DbConnection, task_id: &str, email: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(
        task_invitations::table
            .filter(task_invitations::task_id.eq(task_id))
            .filter(task_invitations::email.eq(email)),
    )
    .execute(conn)?
        == 1)
}

/// Take every invitation of `email` (it just registered): they become shares.
pub fn take_for_email(conn: &mut DbConnection, email: &str) -> Result<Vec<Invitation>, DbError> {
    let invitations: Vec<Invitation> = task_invitations::table
        .filter(task_invitations::email.eq(email))
        .order(task_invitations::invited_at)
        .load::<Row>(conn)?
        .into_iter()
        .map(from_row)
        .collect::<Result<_, _>>()?;
    diesel::delete(task_invitations::table.filter(task_invitations::email.eq(email)))
        .execute(conn)?;
    Ok(invitations)
}

/// Forget the invitations of a deleted task.
pub fn forget_invitations(conn: &mut DbConnection, task_id: &str) -> Result<(), DbError> {
    diesel::delete(task_invitations::table.filter(task_invitations::task_id.eq(task_id)))
        .execute(conn)?;
    Ok(())
}
