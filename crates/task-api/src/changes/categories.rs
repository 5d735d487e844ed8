//! Category changes. Categories have no topic of their own: tasks carry their `category_id`.

use events::now_millis;
use service_kit::db::{Database, DbConnection};

use super::ChangeError;
use crate::domain::invalid;
use crate::storage::categories::{self, Category};
use crate::storage::{is_unique_violation, tasks};

pub const MAX_NAME_LEN: usize = 50;
pub const MAX_CATEGORIES: i64 = 100;

/// A category name: trimmed, 1 to 50 characters.
pub fn parse_name(value: &str) -> Result<String, ChangeError> {
    let name = value.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        Err(ChangeError::Invalid(invalid(
            "name",
            format!("must have 1 to {MAX_NAME_LEN} characters"),
        )))
    } else {
        Ok(name.to_owned())
    }
}

fn name_taken() -> ChangeError {
    ChangeError::Conflict {
        slug: "category-exists",
        detail: "you have a category of this name".to_owned(),
    }
}

fn create_in(conn: &mut DbConnection, category: &Category) -> Result<Category, ChangeError> {
    if categories::count(conn, &category.user_id)? >= MAX_CATEGORIES {
        return Err(ChangeError::Conflict {
            slug: "too-many-categories",
            detail: format!("at most {MAX_CATEGORIES} categories per user"),
        });
    }
    categories::insert(conn, category)?;
    Ok(category.clone())
}

pub async fn create(db: &Database, user_id: &str, name: &str) -> Result<Category, ChangeError> {
    let now = now_millis();
    let category = Category {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        name: parse_name(name)?,
        created_at: now,
        updated_at: now,
    };
    match db.transaction(move |conn| create_in(conn, &category)).await {
        Err(ChangeError::Storage(e)) if is_unique_violation(&e) => Err(name_taken()),
        other => other,
    }
}

pub async fn rename(
    db: &Database,
    user_id: &str,
    id: &str,
    name: &str,
) -> Result<Category, ChangeError> {
    let name = parse_name(name)?;
    let (user_id, id) = (user_id.to_owned(), id.to_owned());
    let result = db
        .transaction(move |conn| {
            if !categories::rename(conn, &user_id, &id, &name, now_millis())? {
                return Err(ChangeError::NotFound("category"));
            }
            categories::get(conn, &user_id, &id)?.ok_or(ChangeError::NotFound("category"))
        })
        .await;
    match result {
        Err(ChangeError::Storage(e)) if is_unique_violation(&e) => Err(name_taken()),
        other => other,
    }
}

/// Delete a category no task uses (tasks keep their category: deleting one in use is refused
/// rather than silently rewriting the user's tasks).
pub async fn delete(db: &Database, user_id: &str, id: &str) -> Result<(), ChangeError> {
    let (user_id, id) = (user_id.to_owned(), id.to_owned());
    db.transaction(move |conn| {
        if categories::get(conn, &user_id, &id)?.is_none() {
            return Err(ChangeError::NotFound("category"));
        }
        let used = tasks::count_in_category(conn, &user_id, &id)?;
        if used > 0 {
            return Err(ChangeError::Conflict {
                slug: "category-in-use",
                detail: format!("{used} task(s) are in this category; move them first"),
            });
        }
        categories::delete(conn, &user_id, &id)?;
        Ok(())
    })
    .await
}
