//! Sharing: the owner shares a task with a user (or invites an email), changes their role or
//! removes the share; a collaborator may leave. Each change that alters who may see the task
//! bumps its version and announces it on task.shared, carrying the whole task, so that every
//! consumer learns the new audience from the event itself.

use events::{Role, ShareRole, now_millis};
use service_kit::db::{DbConnection, DbError};
use service_kit::outbox;

use super::group_commit::GroupCommit;
use super::tasks::check_version;
use super::{ChangeError, retrying};
use crate::domain::invalid;
use crate::domain::share::{Share, ShareTarget, ShareView};
use crate::storage::shares::{self, Invitation};
use crate::storage::{tasks, users};

/// `POST /api/tasks/{id}/shares`, parsed.
#[derive(Debug, Clone)]
pub struct ShareTask {
    pub caller: String,
    pub task_id: String,
    pub share: Share,
    pub if_match: Option<i64>,
    pub traceparent: String,
}

/// The share after the request, and whether the request changed anything (201) or found it
/// already so (200).
#[derive(Debug, Clone)]
pub struct Shared {
    pub share: ShareView,
    pub changed: bool,
}

fn share_in(conn: &mut DbConnection, cmd: &ShareTask) -> Result<Shared, ChangeError> {
    // Only the owner shares; to anyone else the task does not exist here.
    let task = match tasks::get(conn, &cmd.caller, &cmd.task_id)? {
        Some((task, Role::Owner)) => task,
        _ => return Err(ChangeError::NotFound("task")),
    };
    check_version(&task, cmd.if_match)?;
    let (email, role) = (cmd.share.email.as_str(), cmd.share.role);
    let Some(user) = users::by_email(conn, email)? else {
        let changed = shares::invite(
            conn,
            &Invitation {
                task_id: task.id.clone(),
                email: email.to_owned(),
                role,
                invited_at: now_millis(),
            },
        )?;
        return Ok(Shared {
            share: ShareView::pending(email, role),
            changed,
        });
    };
    if user.id == task.user_id {
        return Err(ChangeError::Invalid(invalid(
            "email",
            "is the task's owner's; share with someone else",
        )));
    }
    let share = ShareView::active(&user.id, &user.email, role);
    let Some(next) = task.shared(&user.id, role, now_millis()) else {
        return Ok(Shared {
            share,
            changed: false,
        });
    };
    if !tasks::update(conn, &next, task.version)? {
        return Err(ChangeError::Raced);
    }
    outbox::enqueue(
        conn,
        &next.shared_event(&user.id, role),
        Some(&cmd.traceparent),
    )?;
    Ok(Shared {
        share,
        changed: true,
    })
}

pub async fn share(writes: &GroupCommit, cmd: ShareTask) -> Result<Shared, ChangeError> {
    retrying(|| {
        let cmd = cmd.clone();
        writes.run(move |conn| share_in(conn, &cmd))
    })
    .await
}

/// `DELETE /api/tasks/{id}/shares/{who}`, parsed.
#[derive(Debug, Clone)]
pub struct Unshare {
    pub caller: String,
    pub task_id: String,
    pub target: ShareTarget,
    pub if_match: Option<i64>,
    pub traceparent: String,
}

fn unshare_in(conn: &mut DbConnection, cmd: &Unshare) -> Result<(), ChangeError> {
    let Some((task, role)) = tasks::get(conn, &cmd.caller, &cmd.task_id)? else {
        return Err(ChangeError::NotFound("task"));
    };
    check_version(&task, cmd.if_match)?;
    match &cmd.target {
        // The owner removes anyone; a collaborator may remove only themself (leave the task).
        ShareTarget::User(user) if role == Role::Owner || *user == cmd.caller => {
            let Some(next) = task.shared(user, ShareRole::None, now_millis()) else {
                return Err(ChangeError::NotFound("share"));
            };
            if !tasks::update(conn, &next, task.version)? {
                return Err(ChangeError::Raced);
            }
            outbox::enqueue(
                conn,
                &next.shared_event(user, ShareRole::None),
                Some(&cmd.traceparent),
            )?;
            Ok(())
        }
        ShareTarget::Invitation(email) if role == Role::Owner => {
            if shares::withdraw(conn, &task.id, email.as_str())? {
                Ok(())
            } else {
                Err(ChangeError::NotFound("share"))
            }
        }
        _ => Err(ChangeError::NotFound("share")),
    }
}

pub async fn unshare(writes: &GroupCommit, cmd: Unshare) -> Result<(), ChangeError> {
    retrying(|| {
        let cmd = cmd.clone();
        writes.run(move |conn| unshare_in(conn, &cmd))
    })
    .await
}

/// The shares of a task (accounts first, in the order they were added, then invitations), for
/// anyone who may see it; `None` for anyone else.
pub fn list_in(
    conn: &mut DbConnection,
    caller: &str,
    task_id: &str,
) -> Result<Option<Vec<ShareView>>, DbError> {
    let Some((task, _)) = tasks::get(conn, caller, task_id)? else {
        return Ok(None);
    };
    let ids: Vec<String> = task
        .collaborators
        .iter()
        .map(|c| c.user_id.clone())
        .collect();
    let emails = users::emails(conn, &ids)?;
    let mut views: Vec<ShareView> = task
        .collaborators
        .iter()
        .map(|c| {
            let email = emails.get(&c.user_id).map_or("", String::as_str);
            ShareView::active(&c.user_id, email, c.role)
        })
        .collect();
    views.extend(
        shares::of_task(conn, &task.id)?
            .iter()
            .map(|i| ShareView::pending(&i.email, i.role)),
    );
    Ok(Some(views))
}

/// Times an invitation is retried when the task changed concurrently.
const ACCEPT_RETRIES: usize = 5;

/// A user just registered with `email`: every invitation of that address becomes a share, in
/// the registration's transaction, each announced like a share by the owner.
pub fn accept_invitations(
    conn: &mut DbConnection,
    user_id: &str,
    email: &str,
    traceparent: &str,
) -> Result<(), DbError> {
    for invitation in shares::take_for_email(conn, email)? {
        for attempt in 0.. {
            // The task may have been deleted since (its invitations go with it), or changed.
            let Some(task) = tasks::by_id(conn, &invitation.task_id)? else {
                break;
            };
            let Some(next) = task.shared(user_id, invitation.role, now_millis()) else {
                break;
            };
            if tasks::update(conn, &next, task.version)? {
                outbox::enqueue(
                    conn,
                    &next.shared_event(user_id, invitation.role),
                    Some(traceparent),
                )?;
                break;
            }
            if attempt == ACCEPT_RETRIES {
                return Err(DbError::Unavailable(
                    "a shared task kept changing while its invitation was accepted".to_owned(),
                ));
            }
        }
    }
    Ok(())
}
