//! The OpenAPI 3 document, generated from the handlers' annotations, and the docs page.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::State;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "task-api",
        description = "Users, tasks and categories of the task platform. Every change is \
                       announced on Kafka through a transactional outbox. Errors are RFC 9457 \
                       problem documents (application/problem+json) with a stable `type`.",
        version = "1.0.0"
    ),
    paths(
        super::auth::register,
        super::auth::login,
        super::me::get_me,
        super::me::update_me,
        super::me::webhook_secret,
        super::phone::enter_phone,
        super::phone::verify_phone,
        super::phone::remove_phone,
        super::push::list,
        super::push::subscribe,
        super::push::unsubscribe,
        super::tasks::create_task,
        super::tasks::list_tasks,
        super::tasks::get_task,
        super::tasks::update_task,
        super::tasks::complete_task,
        super::tasks::reopen_task,
        super::tasks::delete_task,
        super::shares::share_task,
        super::shares::list_shares,
        super::shares::remove_share,
        super::categories::list_categories,
        super::categories::create_category,
        super::categories::rename_category,
        super::categories::delete_category,
        super::web_page::client_config,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration and login"),
        (name = "me", description = "The signed-in user's profile"),
        (name = "tasks", description = "Tasks"),
        (name = "sharing", description = "Sharing a task with other users"),
        (name = "categories", description = "The user's categories"),
        (name = "web", description = "What the web page needs"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as JSON (rendered once at start).
pub fn render() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

pub async fn document(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}
