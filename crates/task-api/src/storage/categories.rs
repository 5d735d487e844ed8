//! The users' named categories.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::schema::categories;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = categories)]
pub struct Category {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user has few categories: all of them, by name.
pub fn list(conn: &mut DbConnection, user_id: &str) -> Result<Vec<Category>, DbError> {
    Ok(categories::table
        .filter(categories::user_id.eq(user_id))
        .order(categories::name.asc())
        .select(Category::as_select())
        .load(conn)?)
}

pub fn get(conn: &mut DbConnection, user_id: &str, id: &str) -> Result<Option<Category>, DbError> {
    Ok(categories::table
        .filter(categories::id.eq(id))
        .filter(categories::user_id.eq(user_id))
        .select(Category::as_select())
        .first(conn)
        .optional()?)
}

pub fn count(conn: &mut DbConnection, user_id: &str) -> Result<i64, DbError> {
    Ok(categories::table
        .filter(categories::user_id.eq(user_id))
        .count()
        .get_result(conn)?)
}

/// Insert; a name the user already has is a unique violation.
pub fn insert(conn: &mut DbConnection, category: &Category) -> Result<(), DbError> {
    diesel::insert_into(categories::table)
        .values(category)
        .execute(conn)?;
    Ok(())
}

pub fn rename(
    conn: &mut DbConnection,
    user_id: &str,
    id: &str,
    name: &str,
    now: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        categories::table
            .filter(categories::id.eq(id))
            .filter(categories::user_id.eq(user_id)),
    )
    .set((categories::name.eq(name), categories::updated_at.eq(now)))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn delete(conn: &mut DbConnection, user_id: &str, id: &str) -> Result<bool, DbError> {
    let n = diesel::delete(
        categories::table
            .filter(categories::id.eq(id))
            .filter(categories::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(n == 1)
}
