//! Sharing and assignment over REST (issue 20), on SQLite and PostgreSQL against the real
//! cluster: who may do what (every forbidden action is 404 and produces no event), invitations
//! taking effect at registration, and concurrent share changes keeping one consistent state
//! with one event each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use events::{AnyEvent, ShareRole, Topic};
use rdkafka::Message;
use reqwest::Method;
use serde_json::{Value, json};
use service_kit::testing::Backend;
use support::*;

/// Status and body of one request.
async fn call(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app.req(method, path, Some(&user.token));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn share(
    app: &TestApp,
    owner: &TestUser,
    task: &str,
    email: &str,
    role: &str,
) -> (u16, Value) {
    call(
        app,
        owner,
        Method::POST,
        &format!("/api/tasks/{task}/shares"),
        Some(json!({"email": email, "role": role})),
    )
    .await
}

/// Offsets of every task topic now.
async fn task_offsets() -> Vec<(Topic, Vec<i64>)> {
    let mut all = Vec::new();
    for t in Topic::TASKS {
        all.push((t, offsets(t).await));
    }
    all
}

/// Events about `task` on the task topics (keyed by task id) since `from`, waiting for `n`.
async fn task_events(
    from: &[(Topic, Vec<i64>)],
    task: &str,
    topic: Topic,
    n: usize,
) -> Vec<AnyEvent> {
    let start = &from.iter().find(|(t, _)| *t == topic).unwrap().1;
    wait_for_published(topic, start, &keys([task]), n)
        .await
        .into_iter()
        .map(|p| p.event)
        .collect()
}

async fn who_may_do_what(backend: Backend) {
    let app = spawn_app(backend).await;
    let (owner, editor, viewer, stranger, removed) = (
        app.new_user().await,
        app.new_user().await,
        app.new_user().await,
        app.new_user().await,
        app.new_user().await,
    );
    let task = app
        .create_task(&owner, json!({"title": "Paint the shed", "tags": ["home"]}))
        .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let path = format!("/api/tasks/{id}");
    let shares = format!("{path}/shares");

    let (s, body) = share(&app, &owner, &id, &editor.email, "editor").await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        body,
        json!({"user_id": editor.id, "email": editor.email, "role": "editor", "status": "active"})
    );
    assert_eq!(
        share(&app, &owner, &id, &viewer.email, "viewer").await.0,
        201
    );
    assert_eq!(
        share(&app, &owner, &id, &removed.email, "editor").await.0,
        201
    );
    // The same share again changes nothing.
    assert_eq!(
        share(&app, &owner, &id, &editor.email, "editor").await.0,
        200
    );
    let (s, _) = call(
        &app,
        &owner,
        Method::DELETE,
        &format!("{shares}/{}", removed.id),
        None,
    )
    .await;
    assert_eq!(s, 204);
    // Bad input: the owner's own email, an unknown role, no email.
    assert_eq!(
        share(&app, &owner, &id, &owner.email, "viewer").await.0,
        422
    );
    assert_eq!(
        share(&app, &owner, &id, &viewer.email, "owner").await.0,
        422
    );
    assert_eq!(
        share(&app, &owner, &id, "not-an-email", "viewer").await.0,
        422
    );

    // Reads: the owner and collaborators with their role; the rest 404, even on the lists.
    for (user, role) in [(&owner, "owner"), (&editor, "editor"), (&viewer, "viewer")] {
        let t = app.get_json(user, &path).await;
        assert_eq!(t["role"], role);
        assert_eq!(t["owner_id"], owner.id.as_str());
        assert_eq!(t["collaborators"].as_array().unwrap().len(), 2);
        let listed = app.get_json(user, &shares).await;
        assert_eq!(listed.as_array().unwrap().len(), 2);
    }
    for user in [&stranger, &removed] {
        assert_eq!(call(&app, user, Method::GET, &path, None).await.0, 404);
        assert_eq!(call(&app, user, Method::GET, &shares, None).await.0, 404);
        let all = app.all_tasks(user, "").await;
        assert!(all.iter().all(|t| t["id"] != id.as_str()));
        let tagged = app.all_tasks(user, "tag=home").await;
        assert!(tagged.iter().all(|t| t["id"] != id.as_str()));
    }
    // Listings: shared with me, mine, assigned to me.
    let others = app.all_tasks(&editor, "owner=others").await;
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["id"], id.as_str());
    assert!(app.all_tasks(&editor, "owner=me").await.is_empty());
    assert_eq!(app.all_tasks(&owner, "owner=me").await.len(), 1);
    assert!(app.all_tasks(&owner, "owner=others").await.is_empty());
    assert_eq!(
        call(&app, &owner, Method::GET, "/api/tasks?owner=everyone", None)
            .await
            .0,
        400
    );

    // Every forbidden action: 404, and no event. (The allowed changes above are on Kafka
    // first: the relay publishes after the response.)
    app.wait_outbox_empty().await;
    let before = task_offsets().await;
    let forbidden: Vec<(&TestUser, Method, String, Option<Value>)> = vec![
        (
            &viewer,
            Method::PATCH,
            path.clone(),
            Some(json!({"title": "Mine now"})),
        ),
        (&viewer, Method::POST, format!("{path}/complete"), None),
        (&viewer, Method::DELETE, path.clone(), None),
        (&editor, Method::DELETE, path.clone(), None),
        (
            &editor,
            Method::POST,
            shares.clone(),
            Some(json!({"email": stranger.email, "role": "viewer"})),
        ),
        (
            &viewer,
            Method::POST,
            shares.clone(),
            Some(json!({"email": stranger.email, "role": "editor"})),
        ),
        (
            &editor,
            Method::DELETE,
            format!("{shares}/{}", viewer.id),
            None,
        ),
        (
            &viewer,
            Method::PATCH,
            path.clone(),
            Some(json!({"assignee_id": editor.id})),
        ),
        (
            &editor,
            Method::PATCH,
            path.clone(),
            Some(json!({"assignee_id": owner.id})),
        ),
        (
            &stranger,
            Method::PATCH,
            path.clone(),
            Some(json!({"title": "x"})),
        ),
        (
            &stranger,
            Method::PATCH,
            path.clone(),
            Some(json!({"assignee_id": stranger.id})),
        ),
        (&stranger, Method::POST, format!("{path}/complete"), None),
        (&stranger, Method::POST, format!("{path}/reopen"), None),
        (&stranger, Method::DELETE, path.clone(), None),
        (
            &stranger,
            Method::POST,
            shares.clone(),
            Some(json!({"email": stranger.email, "role": "editor"})),
        ),
        (
            &stranger,
            Method::DELETE,
            format!("{shares}/{}", editor.id),
            None,
        ),
        (
            &removed,
            Method::PATCH,
            path.clone(),
            Some(json!({"title": "x"})),
        ),
        (&removed, Method::POST, format!("{path}/complete"), None),
        (
            &removed,
            Method::DELETE,
            format!("{shares}/{}", removed.id),
            None,
        ),
    ];
    for (user, method, p, body) in forbidden {
        let (s, doc) = call(&app, user, method.clone(), &p, body).await;
        assert_eq!(s, 404, "{method} {p} as {}: {doc}", user.email);
        assert_eq!(doc["status"], 404);
    }
    // The owner may not assign a stranger (not a collaborator): a 422, no event either.
    let (s, doc) = call(
        &app,
        &owner,
        Method::PATCH,
        &path,
        Some(json!({"assignee_id": stranger.id})),
    )
    .await;
    assert_eq!(s, 422, "{doc}");
    // A marker after them: once it is on Kafka, anything the forbidden ones made would be too.
    let (s, marked) = call(
        &app,
        &owner,
        Method::PATCH,
        &path,
        Some(json!({"title": "Paint the shed red"})),
    )
    .await;
    assert_eq!(s, 200);
    let updates = task_events(&before, &id, Topic::TaskUpdated, 1).await;
    assert_eq!(updates.len(), 1, "only the owner's edit: {updates:?}");
    assert_eq!(updates[0].task_version(), marked["version"].as_i64());
    for topic in [
        Topic::TaskCompleted,
        Topic::TaskDeleted,
        Topic::TaskShared,
        Topic::TaskAssigned,
    ] {
        let start = &before.iter().find(|(t, _)| *t == topic).unwrap().1;
        let stray: Vec<_> = read_to_end(topic, start)
            .into_iter()
            .filter(|m| m.key() == Some(id.as_bytes()))
            .collect();
        assert!(stray.is_empty(), "no {topic} event from a forbidden action");
    }

    // Allowed: the editor edits, completes and reopens; the viewer takes the task; the owner
    // gives it to the editor; the editor gives it back.
    let (s, t) = call(
        &app,
        &editor,
        Method::PATCH,
        &path,
        Some(json!({"description": "Two coats"})),
    )
    .await;
    assert_eq!((s, t["role"].as_str()), (200, Some("editor")));
    assert_eq!(
        call(
            &app,
            &editor,
            Method::POST,
            &format!("{path}/complete"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&app, &editor, Method::POST, &format!("{path}/reopen"), None)
            .await
            .0,
        200
    );
    let (s, t) = call(
        &app,
        &viewer,
        Method::PATCH,
        &path,
        Some(json!({"assignee_id": viewer.id})),
    )
    .await;
    assert_eq!(
        (s, t["assignee_id"].as_str()),
        (200, Some(viewer.id.as_str()))
    );
    assert_eq!(app.all_tasks(&viewer, "assignee=me").await.len(), 1);
    let (s, t) = call(
        &app,
        &owner,
        Method::PATCH,
        &path,
        Some(json!({"assignee_id": editor.id})),
    )
    .await;
    assert_eq!(
        (s, t["assignee_id"].as_str()),
        (200, Some(editor.id.as_str()))
    );
    assert!(app.all_tasks(&viewer, "assignee=me").await.is_empty());
    let (s, t) = call(
        &app,
        &editor,
        Method::PATCH,
        &path,
        Some(json!({"assignee_id": null})),
    )
    .await;
    assert_eq!((s, t["assignee_id"].clone()), (200, Value::Null));
    let assigned = task_events(&before, &id, Topic::TaskAssigned, 3).await;
    let AnyEvent::TaskAssigned(last) = &assigned[2] else {
        panic!()
    };
    assert_eq!(
        last.previous_assignee_id.as_deref(),
        Some(editor.id.as_str())
    );
    assert_eq!(last.actor_id.as_deref(), Some(editor.id.as_str()));
    assert_eq!(last.assignee_id, None);
    let completed = task_events(&before, &id, Topic::TaskCompleted, 1).await;
    let AnyEvent::TaskCompleted(c) = &completed[0] else {
        panic!()
    };
    assert_eq!(
        c.actor_id.as_deref(),
        Some(editor.id.as_str()),
        "who completed it"
    );
    assert_eq!(
        c.collaborators.len(),
        2,
        "every task event names who may see the task"
    );

    // A collaborator leaves: from then on it is gone for them.
    let (s, _) = call(
        &app,
        &viewer,
        Method::DELETE,
        &format!("{shares}/{}", viewer.id),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(call(&app, &viewer, Method::GET, &path, None).await.0, 404);
    let shared = task_events(&before, &id, Topic::TaskShared, 1).await;
    let AnyEvent::TaskShared(left) = &shared[0] else {
        panic!()
    };
    assert_eq!(
        (left.shared_with_user_id.as_str(), left.role),
        (viewer.id.as_str(), ShareRole::None)
    );
    // Only the owner deletes; the deletion names the collaborators too.
    assert_eq!(call(&app, &owner, Method::DELETE, &path, None).await.0, 204);
    let deleted = task_events(&before, &id, Topic::TaskDeleted, 1).await;
    let AnyEvent::TaskDeleted(d) = &deleted[0] else {
        panic!()
    };
    assert_eq!(d.collaborators.len(), 1);
    assert_eq!(call(&app, &editor, Method::GET, &path, None).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn who_may_do_what_on_sqlite() {
    who_may_do_what(Backend::Sqlite).await;
}

#[tokio::test]
async fn who_may_do_what_on_postgres() {
    who_may_do_what(Backend::Postgres).await;
}

/// A share with an email that has no account is an invitation; it takes effect (and is
/// announced) when that address registers.
#[tokio::test]
async fn an_invitation_takes_effect_when_its_email_registers() {
    let app = spawn_app(Backend::Postgres).await;
    let owner = app.new_user().await;
    let task = app
        .create_task(&owner, json!({"title": "Plan the trip"}))
        .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let before = task_offsets().await;
    let email = unique_email();
    let (s, body) = share(&app, &owner, &id, &email.to_uppercase(), "editor").await;
    assert_eq!(s, 201);
    assert_eq!(
        body,
        json!({"user_id": null, "email": email, "role": "editor", "status": "pending"})
    );
    let listed = app
        .get_json(&owner, &format!("/api/tasks/{id}/shares"))
        .await;
    assert_eq!(listed[0]["status"], "pending");
    // The version does not move for an invitation: nobody new can see the task yet.
    assert_eq!(
        app.get_json(&owner, &format!("/api/tasks/{id}")).await["version"],
        1
    );

    assert_eq!(app.register(&email).await.status(), 201);
    let r = app.login(&email, PASSWORD).await;
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let guest = TestUser {
        id: String::new(),
        email: email.clone(),
        token,
    };
    let t = app.get_json(&guest, &format!("/api/tasks/{id}")).await;
    assert_eq!(
        (t["role"].as_str(), t["version"].as_i64()),
        (Some("editor"), Some(2))
    );
    let shared = task_events(&before, &id, Topic::TaskShared, 1).await;
    let AnyEvent::TaskShared(e) = &shared[0] else {
        panic!()
    };
    assert_eq!(e.role, ShareRole::Editor);
    let listed = app
        .get_json(&owner, &format!("/api/tasks/{id}/shares"))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["status"], "active");
    app.stop().await;
}

/// Concurrent shares and removals each make one version and one event; two changes naming the
/// same If-Match version: one wins, the other gets 412.
async fn concurrent_share_changes_stay_consistent(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.new_user().await;
    let mut users = Vec::new();
    for _ in 0..8 {
        users.push(app.new_user().await);
    }
    let task = app
        .create_task(&owner, json!({"title": "Shared by many"}))
        .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let before = task_offsets().await;
    let shared = futures::future::join_all(
        users
            .iter()
            .map(|u| share(&app, &owner, &id, &u.email, "viewer")),
    )
    .await;
    assert!(shared.iter().all(|(s, _)| *s == 201), "{shared:?}");
    let t = app.get_json(&owner, &format!("/api/tasks/{id}")).await;
    assert_eq!(t["version"], 1 + 8);
    assert_eq!(t["collaborators"].as_array().unwrap().len(), 8);
    // Half of them removed while the other half become editors, all at once.
    let changes = futures::future::join_all(users.iter().enumerate().map(|(i, u)| {
        let (app, owner, id) = (&app, &owner, &id);
        async move {
            if i % 2 == 0 {
                call(
                    app,
                    owner,
                    Method::DELETE,
                    &format!("/api/tasks/{id}/shares/{}", u.id),
                    None,
                )
                .await
                .0
            } else {
                share(app, owner, id, &u.email, "editor").await.0
            }
        }
    }))
    .await;
    assert!(
        changes
            .iter()
            .enumerate()
            .all(|(i, s)| *s == if i % 2 == 0 { 204 } else { 201 }),
        "{changes:?}"
    );
    let t = app.get_json(&owner, &format!("/api/tasks/{id}")).await;
    assert_eq!(t["version"], 1 + 16);
    let roles: Vec<&str> = t["collaborators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["editor"; 4]);
    let events = task_events(&before, &id, Topic::TaskShared, 16).await;
    assert_eq!(events.len(), 16, "one event per change");
    let mut versions: Vec<i64> = events.iter().filter_map(AnyEvent::task_version).collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=17).collect::<Vec<_>>(),
        "each change its own version"
    );

    // If-Match: two shares against version 17 at once; exactly one applies.
    let newcomers = [app.new_user().await, app.new_user().await];
    let raced = futures::future::join_all(newcomers.iter().map(|u| {
        app.req(
            Method::POST,
            &format!("/api/tasks/{id}/shares"),
            Some(&owner.token),
        )
        .header("If-Match", "\"17\"")
        .json(&json!({"email": u.email, "role": "viewer"}))
        .send()
    }))
    .await;
    let mut statuses: Vec<u16> = raced
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 412]);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_share_changes_stay_consistent_on_sqlite() {
    concurrent_share_changes_stay_consistent(Backend::Sqlite).await;
}

#[tokio::test]
async fn concurrent_share_changes_stay_consistent_on_postgres() {
    concurrent_share_changes_stay_consistent(Backend::Postgres).await;
}
