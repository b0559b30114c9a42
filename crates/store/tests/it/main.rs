//! The store conformance suite: every case runs against SQLite (a file in a temporary
//! directory) and PostgreSQL (a database created for the case and dropped after it).
//!
//! PostgreSQL is reached at `TWOFOLD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it is unreachable the PostgreSQL cases
//! fail, so a green run means both backends passed; set `TWOFOLD_TEST_POSTGRES=skip` to run
//! only SQLite.

// A failing assertion in a test helper should panic like one in a test body; the workspace
// lints only exempt `#[test]` functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Turns async fns into one test per backend, named `<module>::<case>::{sqlite,postgres}`.
/// `stores:` cases take `&Stores`; `database:` cases take the `&TestDatabase` to open it
/// themselves or reach past the store traits.
macro_rules! conformance {
    (stores: $($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let database = crate::harness::TestDatabase::sqlite();
                let stores = database.open().await;
                super::$case(&stores).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(database) = crate::harness::TestDatabase::postgres().await else { return };
                let stores = database.open().await;
                super::$case(&stores).await;
            }
        }
    )+};
    (database: $($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let database = crate::harness::TestDatabase::sqlite();
                super::$case(&database).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(database) = crate::harness::TestDatabase::postgres().await else { return };
                super::$case(&database).await;
            }
        }
    )+};
}

mod admin_users;
mod audit;
mod audit_chain;
mod codes;
mod deliveries;
mod enrollment;
mod factors;
mod harness;
mod inbound_checks;
mod messages;
mod migrations;
mod overview;
mod phone_email;
mod policy;
mod recovery_codes;
mod sealed;
mod send_admission;
mod session_listing;
mod sessions;
mod sqlite_only;
mod throttle;
mod users;
