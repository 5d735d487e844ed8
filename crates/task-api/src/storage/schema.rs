//! The tables of `migrations/`, for diesel.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        name -> Nullable<Text>,
        timezone -> Text,
        notification_channels -> Text,
        webhook_url -> Nullable<Text>,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        phone_number -> Nullable<Text>,
        phone_verified_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    phone_verifications (user_id) {
        user_id -> Text,
        phone_number -> Text,
        code_hash -> Text,
        failed_attempts -> Integer,
        sent_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    categories (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    tasks (id) {
        id -> Text,
        user_id -> Text,
        title -> Text,
        description -> Nullable<Text>,
        priority -> Text,
        priority_rank -> BigInt,
        status -> Text,
        due_at -> Nullable<BigInt>,
        due_sort -> BigInt,
        category_id -> Nullable<Text>,
        tags -> Text,
        recurrence -> Nullable<Text>,
        reminders -> Text,
        series_id -> Nullable<Text>,
        occurrence_index -> Nullable<BigInt>,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        completed_at -> Nullable<BigInt>,
        search_text -> Text,
        origin -> Text,
        collaborators -> Text,
        assignee_id -> Nullable<Text>,
    }
}

diesel::table! {
    task_members (task_id, user_id) {
        task_id -> Text,
        user_id -> Text,
        role -> Text,
    }
}

diesel::table! {
    task_invitations (task_id, email) {
        task_id -> Text,
        email -> Text,
        role -> Text,
        invited_at -> BigInt,
    }
}

diesel::table! {
    task_tags (task_id, tag) {
        task_id -> Text,
        user_id -> Text,
        tag -> Text,
    }
}

diesel::table! {
    idempotency_keys (user_id, idempotency_key) {
        user_id -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        response_status -> Integer,
        response_body -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    push_subscriptions (id) {
        id -> Text,
        user_id -> Text,
        endpoint -> Text,
        p256dh -> Text,
        auth_sealed -> Text,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    phone_verifications,
    categories,
    tasks,
    task_tags,
    task_members,
    task_invitations
);
