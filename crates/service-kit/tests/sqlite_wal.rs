//! SQLite's WAL is copied back into the database by a thread of the database's own, not by the
//! writers' commits (see `Checkpointer` in `service_kit::db`), and that thread goes with the
//! database.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use service_kit::config::DatabaseUrl;
use service_kit::db::{Database, KIT_ONLY};
use service_kit::testing::{Backend, fresh_database, wait_for};

/// Threads of this process named like the checkpointer's (the kernel keeps 15 bytes of a name).
fn checkpointer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim_end() == "sqlite-checkpoi")
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn the_wal_is_checkpointed_by_its_own_thread_which_stops_with_the_database() {
    let url = fresh_database(Backend::Sqlite);
    let DatabaseUrl::Sqlite(path) = url.clone() else {
        unreachable!("a SQLite URL")
    };
    let db = tokio::task::spawn_blocking(move || Database::connect(&url, KIT_ONLY))
        .await
        .unwrap()
        .expect("open the database");
    // The thread names itself once it runs, a moment after it was spawned.
    wait_for(
        "a checkpointer thread for the open SQLite database",
        Duration::from_secs(5),
        || async { (checkpointer_threads() >= 1).then_some(()) },
    )
    .await;
    let file_size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    db.write(|c| {
        Ok(c.batch_execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")?)
    })
    .await
    .unwrap();
    let before = file_size();

    // About 8 MB in 20 commits: some 2,000 WAL pages, far below the bound past which the
    // committing connections would checkpoint themselves (50,000). In WAL mode pages reach the
    // database file only through a checkpoint, so the file growing by that much shows the
    // checkpointer at work.
    for _ in 0..20 {
        db.write(|c| {
            Ok(c.batch_execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
                 INSERT INTO filler (body) SELECT hex(randomblob(2000)) FROM n;",
            )?)
        })
        .await
        .unwrap();
    }
    let grown = wait_for(
        "the written pages to be copied back into the database file",
        Duration::from_secs(10),
        || async {
            let size = file_size();
            (size >= before + 7_000_000).then_some(size)
        },
    )
    .await;
    assert!(grown > before);

    // The rows are all there, read through the pool.
    let rows: i64 = db
        .run(|c| {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            Ok(diesel::sql_query("SELECT count(*) AS n FROM filler")
                .get_result::<Count>(c)?
                .n)
        })
        .await
        .unwrap();
    assert_eq!(rows, 2_000);

    drop(db);
    wait_for(
        "the checkpointer thread to stop once the database is dropped",
        Duration::from_secs(5),
        || async { (checkpointer_threads() == 0).then_some(()) },
    )
    .await;
}
