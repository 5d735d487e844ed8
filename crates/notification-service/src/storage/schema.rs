//! The tables, as diesel sees them.

diesel::table! {
    users (user_id) {
        user_id -> Text,
        email -> Text,
        name -> Nullable<Text>,
        timezone -> Text,
        channels -> Text,
        webhook_url -> Nullable<Text>,
        profile_version -> BigInt,
        updated_at -> BigInt,
        phone_number -> Nullable<Text>,
    }
}

diesel::table! {
    tasks (task_id) {
        task_id -> Text,
        user_id -> Text,
        title -> Text,
        due_date -> Nullable<BigInt>,
        state -> Text,
        version -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    reminders (reminder_id) {
        reminder_id -> Text,
        task_id -> Text,
        user_id -> Text,
        channel -> Text,
        remind_at -> BigInt,
        state -> Text,
        task_version -> BigInt,
        task_title -> Text,
        due_date -> Nullable<BigInt>,
        traceparent -> Nullable<Text>,
        fired_at -> Nullable<BigInt>,
        late -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    deliveries (seq) {
        seq -> BigInt,
        notification_id -> Text,
        reminder_id -> Text,
        user_id -> Text,
        task_id -> Text,
        task_title -> Text,
        task_version -> BigInt,
        due_date -> Nullable<BigInt>,
        channel -> Text,
        remind_at -> BigInt,
        fired_at -> BigInt,
        late -> Bool,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        traceparent -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        kind -> Text,
        actor_id -> Nullable<Text>,
    }
}

diesel::table! {
    push_subscriptions (user_id, endpoint) {
        user_id -> Text,
        endpoint -> Text,
        subscription_id -> Text,
        p256dh -> Text,
        auth_sealed -> Text,
    }
}

diesel::table! {
    push_gone (endpoint) {
        endpoint -> Text,
        user_id -> Text,
        gone_at -> BigInt,
    }
}
