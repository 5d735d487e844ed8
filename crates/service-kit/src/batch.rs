//! Multi-row statements in shapes the connection keeps prepared.
//!
//! Diesel caches a prepared statement by its type. A batch given as a slice has no size in its
//! type, so every multi-row `INSERT` of a slice is built, parsed and planned anew (about 5% of
//! task-api's CPU on SQLite under load); a batch given as a fixed-size array (`&[T; N]`) is one
//! type per size and stays prepared on the connection. [`per_cached_chunk!`] runs a statement
//! over a batch in chunks whose sizes are powers of two up to [`MAX_ROWS`]: at most nine shapes
//! per statement, and a batch of `n` rows takes as many statements as `n` has one-bits (plus
//! one per [`MAX_ROWS`] beyond the first).
//!
//! On SQLite a row type needs `#[diesel(treat_none_as_default_value = false)]` for any of this
//! to matter: without it diesel writes a batch as one single-row INSERT per row.

/// The most rows one statement takes: 256 rows of the widest row written in batches (tasks, 23
/// columns) bind 5,888 parameters, within SQLite's 32,766 and PostgreSQL's 65,535.
pub const MAX_ROWS: usize = 256;

/// The size of the next chunk of a batch with `remaining` rows: the largest power of two not
/// above it, and at most [`MAX_ROWS`].
pub fn chunk_size(remaining: usize) -> usize {
    if remaining >= MAX_ROWS {
        MAX_ROWS
    } else {
        // `remaining` ≥ 1 here: the caller stops at an empty rest.
        1 << remaining.ilog2()
    }
}

/// Run `$statement` once per chunk of the slice `$rows`, with `$chunk` bound to the chunk as a
/// `&[T; N]` (see the module's documentation); evaluates to the sum of the statements' `usize`
/// results. Errors leave through `?` inside `$statement`.
///
/// ```ignore
/// let written = per_cached_chunk!(rows, |chunk| diesel::insert_into(t::table).values(chunk).execute(c)?);
/// ```
#[macro_export]
macro_rules! per_cached_chunk {
    ($rows:expr, |$chunk:ident| $statement:expr) => {{
        let mut rest = &$rows[..];
        let mut total: usize = 0;
        while !rest.is_empty() {
            let (head, tail) = rest.split_at($crate::batch::chunk_size(rest.len()));
            rest = tail;
            total += $crate::per_cached_chunk!(@size head, $chunk, $statement,
                [256, 128, 64, 32, 16, 8, 4, 2, 1]);
        }
        total
    }};
    (@size $head:ident, $chunk:ident, $statement:expr, [$($n:literal),*]) => {
        match $head.len() {
            $(
                $n => {
                    let $chunk: &[_; $n] = $head.try_into().expect("a chunk of its own length");
                    $statement
                }
            )*
            other => unreachable!("a chunk of {other} rows: chunk sizes are powers of two up to 256"),
        }
    };
}

/// `INSERT INTO $table VALUES $rows` on either backend of a [`DbConnection`](crate::db::DbConnection)
/// (diesel has no multi-row INSERT for the multi-backend connection), in chunks kept prepared
/// ([`per_cached_chunk!`]); evaluates to the number of rows written. Errors leave through `?`,
/// as a `diesel::result::Error` converted into the caller's error.
#[macro_export]
macro_rules! insert_in_cached_chunks {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite(c) => $crate::per_cached_chunk!($rows, |chunk| {
                ::diesel::RunQueryDsl::execute(::diesel::insert_into($table).values(chunk), c)?
            }),
            $crate::db::DbConnection::Postgresql(c) => $crate::per_cached_chunk!($rows, |chunk| {
                ::diesel::RunQueryDsl::execute(::diesel::insert_into($table).values(chunk), c)?
            }),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_up_to_the_maximum() {
        let sizes = |mut n: usize| {
            let mut out = Vec::new();
            while n > 0 {
                let size = chunk_size(n);
                out.push(size);
                n -= size;
            }
            out
        };
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(37), [32, 4, 1]);
        assert_eq!(sizes(256), [256]);
        assert_eq!(sizes(600), [256, 256, 64, 16, 8]);
    }

    diesel::table! {
        batch_rows (id) {
            id -> Integer,
            name -> Text,
        }
    }

    // Without `treat_none_as_default_value = false` diesel writes a batch on SQLite as one
    // INSERT per row in a savepoint, whatever its shape.
    #[derive(diesel::Insertable)]
    #[diesel(table_name = batch_rows, treat_none_as_default_value = false)]
    struct Row {
        id: i32,
        name: String,
    }

    /// The point of the chunks: a second batch of the same sizes prepares nothing new (diesel
    /// reports each statement it adds to the connection's cache).
    #[test]
    fn statements_of_each_chunk_size_are_prepared_once() {
        use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
        use diesel::prelude::*;
        use std::sync::{Arc, Mutex};

        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("CREATE TABLE batch_rows (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            .unwrap();
        let prepared = Arc::new(Mutex::new(0));
        let counter = prepared.clone();
        let instrumentation = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { .. } = event {
                *counter.lock().unwrap() += 1;
            }
        };
        conn.set_instrumentation(Box::new(instrumentation) as Box<dyn Instrumentation>);
        let mut insert = |from: i32| -> QueryResult<usize> {
            let rows: Vec<Row> = (from..from + 37)
                .map(|id| Row {
                    id,
                    name: format!("row {id}"),
                })
                .collect();
            Ok(per_cached_chunk!(rows, |chunk| {
                diesel::insert_into(batch_rows::table)
                    .values(chunk)
                    .execute(&mut conn)?
            }))
        };
        assert_eq!(insert(0).unwrap(), 37);
        assert_eq!(
            *prepared.lock().unwrap(),
            3,
            "32 + 4 + 1 rows: three shapes"
        );
        assert_eq!(insert(100).unwrap(), 37);
        assert_eq!(
            *prepared.lock().unwrap(),
            3,
            "the same shapes again: nothing new"
        );
    }

    #[test]
    fn every_row_is_in_exactly_one_chunk_in_order() {
        let rows: Vec<usize> = (0..1000).collect();
        let mut seen = Vec::new();
        let total = per_cached_chunk!(rows, |chunk| {
            seen.extend_from_slice(chunk);
            chunk.len()
        });
        assert_eq!(total, 1000);
        assert_eq!(seen, rows);
    }
}
