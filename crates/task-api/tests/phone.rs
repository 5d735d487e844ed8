//! Phone numbers: entered, sent a code by SMS (to a real HTTP sink that checks the gateway
//! signature), verified with it, and only then carried on user.updated; the sms channel needs
//! a verified number, and a server with a gateway.

#![allow(clippy::unwrap_used)]

mod support;

use events::{AnyEvent, NotificationChannel, Topic};
use reqwest::Method;
use serde_json::{Value, json};
use service_kit::sms_sink::SmsSink;
use service_kit::testing::Backend;
use support::*;

/// A German mobile number no other test uses, as a user types it.
fn typed_number() -> String {
    format!("+49 151 2{:07}", fastrand::u32(0..10_000_000))
}

fn e164(typed: &str) -> String {
    typed.replace(' ', "")
}

/// The six digits of a verification text.
fn code_in(text: &str) -> String {
    let code: String = text.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{text}");
    code
}

async fn send(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = app.req(method, path, Some(&user.token));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap()
}

#[tokio::test]
async fn a_number_is_verified_by_the_code_texted_to_it_and_only_then_travels_on_user_updated() {
    let sink = SmsSink::start().await;
    let app = spawn_with(Options {
        sms: Some(sink.settings()),
        ..Options::new(Backend::Sqlite)
    })
    .await;
    let updated_from = offsets(Topic::UserUpdated).await;
    let user = app.new_user().await;

    let (status, body, _) = send(
        &app,
        &user,
        Method::PATCH,
        "/api/me",
        Some(json!({"notification_channels": ["sms"]})),
    )
    .await;
    assert_eq!(status, 422, "sms without a verified number: {body}");
    let (status, body, _) = send(
        &app,
        &user,
        Method::PUT,
        "/api/me/phone",
        Some(json!({"phone_number": "0151 1234"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "phone_number");
    assert!(sink.received().is_empty());

    let typed = typed_number();
    let phone = e164(&typed);
    let (status, body, _) = send(
        &app,
        &user,
        Method::PUT,
        "/api/me/phone",
        Some(json!({"phone_number": typed})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["phone_number"].as_str(), &body["phone_verified"]),
        (Some(phone.as_str()), &json!(false))
    );
    let texts = sink.received_by(&phone);
    assert_eq!(texts.len(), 1, "one code sent");
    assert!(texts[0].signature_valid);
    assert_eq!(
        texts[0].idempotency_header.as_deref(),
        Some(texts[0].idempotency_key.as_str())
    );
    let code = code_in(&texts[0].body);

    let (status, body, headers) = send(
        &app,
        &user,
        Method::PUT,
        "/api/me/phone",
        Some(json!({"phone_number": typed})),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(problem_type(&body), "code-recently-sent");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(sink.received_by(&phone).len(), 1, "no second text");

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (status, body, _) = send(
        &app,
        &user,
        Method::POST,
        "/api/me/phone/verify",
        Some(json!({"code": wrong})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("4 tries left"),
        "{body}"
    );
    let (status, body, _) = send(
        &app,
        &user,
        Method::POST,
        "/api/me/phone/verify",
        Some(json!({"code": "12ab"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    let (status, body, _) = send(
        &app,
        &user,
        Method::POST,
        "/api/me/phone/verify",
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["phone_verified"], true);
    // The verified number entered again: nothing changes, nothing is sent.
    let (status, body, _) = send(
        &app,
        &user,
        Method::PUT,
        "/api/me/phone",
        Some(json!({ "phone_number": phone })),
    )
    .await;
    assert_eq!(
        (status, &body["phone_verified"]),
        (200, &json!(true)),
        "{body}"
    );
    assert_eq!(
        sink.received_by(&phone).len(),
        1,
        "no text for a verified number"
    );
    let (status, body, _) = send(
        &app,
        &user,
        Method::PATCH,
        "/api/me",
        Some(json!({"notification_channels": ["sms", "in_app"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["notification_channels"], json!(["sms", "in_app"]));

    // Entered (v2, unverified), verified (v3), sms chosen (v4).
    let events = wait_for_published(
        Topic::UserUpdated,
        &updated_from,
        &keys([user.id.clone()]),
        3,
    )
    .await;
    let profiles: Vec<_> = events
        .iter()
        .map(|p| match &p.event {
            AnyEvent::UserUpdated(u) => (
                u.version,
                u.verified_phone_number.clone(),
                u.notification_channels.contains(&NotificationChannel::Sms),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        profiles,
        [
            (2, None, false),
            (3, Some(phone.clone()), false),
            (4, Some(phone.clone()), true)
        ]
    );

    // Removing the number switches SMS off, on the page and for notification-service.
    let (status, _, _) = send(&app, &user, Method::DELETE, "/api/me/phone", None).await;
    assert_eq!(status, 204);
    let me = app.get_json(&user, "/api/me").await;
    assert_eq!(
        (
            me["phone_number"].clone(),
            me["notification_channels"].clone()
        ),
        (Value::Null, json!(["in_app"]))
    );
    let events = wait_for_published(
        Topic::UserUpdated,
        &updated_from,
        &keys([user.id.clone()]),
        4,
    )
    .await;
    let AnyEvent::UserUpdated(last) = &events[3].event else {
        panic!()
    };
    assert_eq!(
        (last.version, last.verified_phone_number.as_deref()),
        (5, None)
    );
    app.stop().await;
    sink.stop().await;
}

#[tokio::test]
async fn a_code_the_gateway_did_not_take_may_be_asked_again_and_five_wrong_codes_void_it() {
    let sink = SmsSink::start().await;
    let app = spawn_with(Options {
        sms: Some(sink.settings()),
        ..Options::new(Backend::Postgres)
    })
    .await;
    let user = app.new_user().await;
    let phone = e164(&typed_number());
    // The gateway answers 503 once: the code was not sent, so asking again is no "too soon".
    sink.fail_first(1);
    let (status, body, _) = send(
        &app,
        &user,
        Method::PUT,
        "/api/me/phone",
        Some(json!({ "phone_number": phone })),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (status, _, _) = send(
        &app,
        &user,
        Method::PUT,
        "/api/me/phone",
        Some(json!({"phone_number": phone})),
    )
    .await;
    assert_eq!(status, 202);
    let code = code_in(&sink.received_by(&phone)[1].body);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for left in (0..5).rev() {
        let (status, body, _) = send(
            &app,
            &user,
            Method::POST,
            "/api/me/phone/verify",
            Some(json!({"code": wrong})),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} tries left")),
            "{body}"
        );
    }
    let (status, body, _) = send(
        &app,
        &user,
        Method::POST,
        "/api/me/phone/verify",
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, 429, "the right code, too late: {body}");
    assert_eq!(problem_type(&body), "too-many-attempts");
    assert_eq!(
        app.get_json(&user, "/api/me").await["phone_verified"],
        false
    );
    app.stop().await;
    sink.stop().await;
}

#[tokio::test]
async fn without_a_gateway_phone_numbers_and_the_sms_channel_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let (status, body, _) = send(
        &app,
        &user,
        Method::PUT,
        "/api/me/phone",
        Some(json!({"phone_number": typed_number()})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(problem_type(&body), "sms-unavailable");
    let (status, body, _) = send(
        &app,
        &user,
        Method::PATCH,
        "/api/me",
        Some(json!({"notification_channels": ["email", "SMS"]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "notification_channels[1]");
    let (status, body, _) = send(
        &app,
        &user,
        Method::POST,
        "/api/tasks",
        Some(json!({"title": "t", "due_at": "2030-01-01T09:00:00Z",
                    "reminders": [{"before_due": 10, "channel": "email"}, {"before_due": 5, "channel": "sms"}]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "reminders[1].channel");
    app.stop().await;
}
