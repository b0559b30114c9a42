//! The fixtures the cases share; the databases come from `twofold_store::testing`.

use time::OffsetDateTime;
use twofold_core::email::Email;
use twofold_core::session::{SessionIdHash, SessionState};
use twofold_core::store::{NewSession, NewUser, Stores};
use twofold_core::user::UserId;
pub use twofold_store::testing::TestDatabase;

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
