//! Who sees an event, in one place: ws-gateway sends each reader their message, and the
//! reliability suite's ledger expects exactly these messages on each user's WebSocket.
//!
//! The rule (contract §7): a task event goes to the task's owner and every collaborator the
//! event names, each with their own role; a task.shared that removed a share (role none) also
//! goes to the user who lost it, who then sees the task gone; a deletion goes to the owner and
//! every collaborator it names; a reminder or notification goes to the user it names (the
//! task's assignee, else its owner). User events go to nobody.

use crate::model::{AnyEvent, ShareRole};
use crate::task_view::{Role, TaskState};

/// What a reader of an event sees of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sees {
    /// The task as it is after the event, with this role (`TaskView`).
    Task(Role),
    /// That the task is gone for them: deleted, or their share removed (`DeletedTaskView`).
    Gone,
    /// The reminder or notification addressed to them.
    Addressed,
}

/// Every reader of `event` and what each one sees; empty for events nobody is sent.
pub fn audience(event: &AnyEvent) -> Vec<(String, Sees)> {
    if let Some(state) = TaskState::from_event(event) {
        let mut readers: Vec<(String, Sees)> = std::iter::once(&state.owner_id)
            .chain(state.collaborators.iter().map(|c| &c.user_id))
            .filter_map(|user| Some((user.clone(), Sees::Task(state.role_of(user)?))))
            .collect();
        if let AnyEvent::TaskShared(e) = event
            && e.role == ShareRole::None
        {
            readers.push((e.shared_with_user_id.clone(), Sees::Gone));
        }
        return readers;
    }
    match event {
        AnyEvent::TaskDeleted(e) => std::iter::once(&e.user_id)
            .chain(e.collaborators.iter().map(|c| &c.user_id))
            .map(|user| (user.clone(), Sees::Gone))
            .collect(),
        AnyEvent::ReminderTriggered(e) => vec![(e.user_id.clone(), Sees::Addressed)],
        AnyEvent::NotificationSent(e) => vec![(e.user_id.clone(), Sees::Addressed)],
        _ => Vec::new(),
    }
}

/// Whether `user` is among the readers of `event`.
pub fn sees(event: &AnyEvent, user: &str) -> bool {
    audience(event).iter().any(|(reader, _)| reader == user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Collaborator, Event};
    use crate::sample;

    fn collaborator(user: &str, role: ShareRole) -> Collaborator {
        Collaborator {
            user_id: user.to_owned(),
            role,
        }
    }

    #[test]
    fn a_task_event_goes_to_its_owner_and_each_collaborator_with_their_role() {
        let mut e = sample::task_updated("owner");
        e.collaborators = vec![
            collaborator("ed", ShareRole::Editor),
            collaborator("vi", ShareRole::Viewer),
        ];
        e.assignee_id = Some("ed".to_owned());
        assert_eq!(
            audience(&e.into_any()),
            vec![
                ("owner".to_owned(), Sees::Task(Role::Owner)),
                ("ed".to_owned(), Sees::Task(Role::Editor)),
                ("vi".to_owned(), Sees::Task(Role::Viewer)),
            ]
        );
    }

    #[test]
    fn a_removed_share_tells_the_user_who_lost_it_once() {
        let mut e = sample::task_shared("owner");
        e.shared_with_user_id = "gone".to_owned();
        e.role = ShareRole::None;
        e.collaborators = vec![collaborator("stays", ShareRole::Viewer)];
        let readers = audience(&e.clone().into_any());
        assert_eq!(
            readers,
            vec![
                ("owner".to_owned(), Sees::Task(Role::Owner)),
                ("stays".to_owned(), Sees::Task(Role::Viewer)),
                ("gone".to_owned(), Sees::Gone),
            ]
        );
        assert!(sees(&e.into_any(), "gone"));
    }

    #[test]
    fn deletions_reminders_and_notifications() {
        let mut d = sample::task_deleted("owner");
        d.collaborators = vec![collaborator("ed", ShareRole::Editor)];
        assert_eq!(
            audience(&d.into_any()),
            vec![
                ("owner".to_owned(), Sees::Gone),
                ("ed".to_owned(), Sees::Gone)
            ]
        );
        let r = sample::reminder_triggered("assignee").into_any();
        assert_eq!(audience(&r), vec![("assignee".to_owned(), Sees::Addressed)]);
        let n = sample::notification_sent("assignee").into_any();
        assert_eq!(audience(&n), vec![("assignee".to_owned(), Sees::Addressed)]);
        assert!(audience(&sample::user_registered("u").into_any()).is_empty());
        assert!(!sees(&r, "owner"));
    }
}
