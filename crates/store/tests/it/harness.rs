//! The fixtures the cases share; the databases come from `twofold_store::testing`.

use std::future::Future;
use std::sync::Arc;

use time::OffsetDateTime;
use twofold_core::email::Email;
use twofold_core::session::{SessionIdHash, SessionState};
use twofold_core::store::{NewSession, NewTotp, NewUser, SealedSecret, Stores};
use twofold_core::user::UserId;
pub use twofold_store::testing::TestDatabase;
use uuid::Uuid;

/// A fixed instant `seconds` after an arbitrary epoch: tests never read the clock.
pub fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + seconds).unwrap()
}

pub fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

pub fn new_user(address: &str) -> NewUser {
    NewUser {
        id: UserId::random(),
        email: email(address),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt$hash-of-{address}"),
        password_change_required: false,
        is_admin: false,
        require_2fa: false,
        created_at: at(0),
    }
}

/// A session id hash that differs from `session_hash(m)` for every `m != n`.
pub fn session_hash(n: u8) -> SessionIdHash {
    let mut bytes = [0xa5; 32];
    bytes[0] = n;
    SessionIdHash(bytes)
}

pub fn new_session(
    user_id: UserId,
    id_hash: SessionIdHash,
    state: SessionState,
    created_at: OffsetDateTime,
) -> NewSession {
    NewSession {
        id_hash,
        user_id,
        state,
        created_at,
    }
}

/// Inserts a plain user and returns its id.
pub async fn insert_user(stores: &Stores, address: &str) -> UserId {
    let user = new_user(address);
    stores.users.insert_user(&user).await.unwrap();
    user.id
}

/// A pending SHA1, 6-digit, 30-second authenticator with a fresh id.
pub fn new_totp(user_id: UserId, created_at: OffsetDateTime) -> NewTotp {
    NewTotp {
        id: Uuid::new_v4(),
        user_id,
        secret: SealedSecret {
            key_id: "key-1".to_owned(),
            ciphertext: vec![0x5a; 48],
        },
        algorithm: "SHA1".to_owned(),
        digits: 6,
        period_seconds: 30,
        created_at,
    }
}

/// A recovery code hash that differs from `code_hash(m)` for every `m != n`.
pub fn code_hash(n: u8) -> [u8; 32] {
    let mut bytes = [0x3c; 32];
    bytes[31] = n;
    bytes
}

/// Runs `attempt(n)` for n in 0..16 at once, on two instances of `database` in turn (two
/// processes, as far as the database can tell); returns their outcomes in the order of n.
pub async fn race<T, F, Fut>(database: &TestDatabase, attempt: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Stores, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    race_of(database, 16, attempt).await
}

/// [`race`] with `count` attempts.
pub async fn race_of<T, F, Fut>(database: &TestDatabase, count: usize, attempt: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Stores, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let instances = [database.open().await, database.open().await];
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let barrier = barrier.clone();
            let attempt = attempt(instances[n % 2].clone(), n);
            tokio::spawn(async move {
                barrier.wait().await;
                attempt.await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

/// How many of `outcomes` are `true`.
pub fn winners(outcomes: &[bool]) -> usize {
    outcomes.iter().filter(|won| **won).count()
}

/// Rewinds a migrated database to what version 6 left: the message tables of version 7 gone,
/// and version 7 no longer recorded.
pub async fn undo_version_7(database: &TestDatabase) {
    database
        .execute_raw(
            "DROP TABLE message_invitations;
             DROP TABLE message_chunks;
             DROP TABLE message_attachments;
             DROP TABLE messages;
             DELETE FROM schema_migrations WHERE version = 7;",
        )
        .await;
}

/// Rewinds a migrated database to what version 5 left: what version 7 and version 6 added
/// gone (the tables, the trigger and the column), and neither recorded.
pub async fn undo_version_6(database: &TestDatabase) {
    undo_version_7(database).await;
    let function = if database.is_sqlite() {
        ""
    } else {
        "DROP FUNCTION audit_events_append_only();"
    };
    database
        .execute_raw(&format!(
            "DROP TABLE audit_anchor;
             DROP TABLE audit_events;
             {function}
             DROP TABLE security_policy;
             ALTER TABLE users DROP COLUMN require_2fa_since;
             DELETE FROM schema_migrations WHERE version = 6;"
        ))
        .await;
}
