//! `/api/categories`: the user's named categories.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use service_kit::http::{Authenticated, Problem};
use utoipa::ToSchema;

use super::views::{CategoryList, CategoryView, ProblemDocument};
use super::{State, path_id, storage_problem};
use crate::changes::categories as category_changes;
use crate::storage::categories;

/// A category's name (1 to 50 characters, unique per user).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRequest {
    #[schema(example = "Home", min_length = 1, max_length = 50, pattern = "\\S")]
    pub name: String,
}

/// List categories
#[utoipa::path(
    get,
    path = "/api/categories",
    tag = "categories",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "All of the user's categories, by name", body = CategoryList),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list_categories(auth: Authenticated, state: State) -> Result<HttpResponse, Problem> {
    let user = auth.user_id().to_owned();
    let items = state
        .db
        .run(move |conn| categories::list(conn, &user))
        .await
        .map_err(storage_problem)?;
    Ok(HttpResponse::Ok().json(CategoryList {
        items: items.iter().map(CategoryView::from).collect(),
    }))
}

/// Create a category
#[utoipa::path(
    post,
    path = "/api/categories",
    tag = "categories",
    security(("bearer" = [])),
    request_body = CategoryRequest,
    responses(
        (status = 201, description = "Created", body = CategoryView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Name taken, or too many categories", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn create_category(
    auth: Authenticated,
    state: State,
    body: web::Json<CategoryRequest>,
) -> Result<HttpResponse, Problem> {
    let c = category_changes::create(&state.db, auth.user_id(), &body.name).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/categories/{}", c.id),
        ))
        .json(CategoryView::from(&c)))
}

/// Rename a category
#[utoipa::path(
    patch,
    path = "/api/categories/{id}",
    tag = "categories",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Category id (UUID)")),
    request_body = CategoryRequest,
    responses(
        (status = 200, description = "Renamed", body = CategoryView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such category of yours", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn rename_category(
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
    body: web::Json<CategoryRequest>,
) -> Result<HttpResponse, Problem> {
    let id = path_id(&path, "category")?;
    let c = category_changes::rename(&state.db, auth.user_id(), &id, &body.name).await?;
    Ok(HttpResponse::Ok().json(CategoryView::from(&c)))
}

/// Delete a category
///
/// Refused (409) while tasks are in it.
#[utoipa::path(
    delete,
    path = "/api/categories/{id}",
    tag = "categories",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Category id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such category of yours", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Tasks are in this category", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn delete_category(
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = path_id(&path, "category")?;
    category_changes::delete(&state.db, auth.user_id(), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
