//! Rows as the database stores them, and their checked conversion into domain types.
//!
//! Both backends read columns into these plain structs and convert here, so a stored value that
//! no longer parses (a bad uuid, an unknown session state, an email that is not one) fails the
//! same way everywhere: as an error naming the row, never as a silently skipped record.

use anyhow::{Context, anyhow};
use time::OffsetDateTime;
use twofold_core::email::Email;
use twofold_core::session::{SessionIdHash, SessionRecord, SessionState};
use twofold_core::store::NewUser;
use twofold_core::user::{User, UserId};

/// The `users` columns [`UserRow`] is read from, in its field order.
macro_rules! user_columns {
    () => {
        "id, email, password_hash, password_change_required, is_admin, require_2fa, \
         email_verified, disabled, created_at, last_login_at"
    };
}
pub(crate) use user_columns;

/// The `sessions` columns [`SessionRow`] is read from, in its field order.
macro_rules! session_columns {
    () => {
        "id_hash, user_id, state, created_at, last_seen_at"
    };
}
pub(crate) use session_columns;

/// The values of a user being inserted, owned so they can move to a database thread.
#[derive(Debug)]
pub(crate) struct NewUserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub password_change_required: bool,
    pub is_admin: bool,
    pub require_2fa: bool,
    pub created_at: i64,
}

impl From<&NewUser> for NewUserRow {
    fn from(user: &NewUser) -> Self {
        NewUserRow {
            id: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            password_hash: user.password_hash.clone(),
            password_change_required: user.password_change_required,
            is_admin: user.is_admin,
            require_2fa: user.require_2fa,
            created_at: to_unix(user.created_at),
        }
    }
}

/// A `users` row.
#[derive(Debug)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub password_change_required: bool,
    pub is_admin: bool,
    pub require_2fa: bool,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = anyhow::Error;

    fn try_from(row: UserRow) -> anyhow::Result<User> {
        let id: UserId = row
            .id
            .parse()
            .with_context(|| format!("users.id {:?} is not a uuid", row.id))?;
        let email = Email::parse(&row.email)
            .map_err(|error| anyhow!("users.email of user {id} does not parse: {error}"))?;
        // A stored address must already be in normal form, or lookups by email would miss it.
        if email.as_str() != row.email {
            return Err(anyhow!("users.email of user {id} is not in normal form"));
        }
        Ok(User {
            id,
            email,
            password_hash: row.password_hash,
            password_change_required: row.password_change_required,
            is_admin: row.is_admin,
            require_2fa: row.require_2fa,
            email_verified: row.email_verified,
            disabled: row.disabled,
            created_at: from_unix(row.created_at)
                .with_context(|| format!("users.created_at of user {id}"))?,
            last_login_at: row
                .last_login_at
                .map(from_unix)
                .transpose()
                .with_context(|| format!("users.last_login_at of user {id}"))?,
        })
    }
}

/// A `sessions` row.
#[derive(Debug)]
pub(crate) struct SessionRow {
    pub id_hash: Vec<u8>,
    pub user_id: String,
    pub state: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = anyhow::Error;

    fn try_from(row: SessionRow) -> anyhow::Result<SessionRecord> {
        let id_hash: [u8; 32] = row
            .id_hash
            .as_slice()
            .try_into()
            .map_err(|_| anyhow!("sessions.id_hash is {} bytes, not 32", row.id_hash.len()))?;
        let id_hash = SessionIdHash(id_hash);
        let user_id: UserId = row
            .user_id
            .parse()
            .with_context(|| format!("sessions.user_id of {id_hash:?} is not a uuid"))?;
        let state: SessionState = row
            .state
            .parse()
            .with_context(|| format!("sessions.state of {id_hash:?}"))?;
        Ok(SessionRecord {
            id_hash,
            user_id,
            state,
            created_at: from_unix(row.created_at)
                .with_context(|| format!("sessions.created_at of {id_hash:?}"))?,
            last_seen_at: from_unix(row.last_seen_at)
                .with_context(|| format!("sessions.last_seen_at of {id_hash:?}"))?,
        })
    }
}

/// Timestamps are stored as unix seconds: portable across both backends and free of time zones.
pub(crate) fn to_unix(instant: OffsetDateTime) -> i64 {
    instant.unix_timestamp()
}

fn from_unix(seconds: i64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .with_context(|| format!("{seconds} is not a valid unix time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_row() -> UserRow {
        UserRow {
            id: "6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22".to_owned(),
            email: "alice@example.com".to_owned(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            password_change_required: false,
            is_admin: true,
            require_2fa: false,
            email_verified: true,
            disabled: false,
            created_at: 1_700_000_000,
            last_login_at: Some(1_700_000_100),
        }
    }

    #[test]
    fn a_good_user_row_converts() {
        let user = User::try_from(user_row()).unwrap();
        assert_eq!(user.email.as_str(), "alice@example.com");
        assert_eq!(user.created_at.unix_timestamp(), 1_700_000_000);
        assert_eq!(
            user.last_login_at.map(|t| t.unix_timestamp()),
            Some(1_700_000_100)
        );
    }

    #[test]
    fn bad_user_rows_are_errors() {
        let bad_id = UserRow {
            id: "not-a-uuid".to_owned(),
            ..user_row()
        };
        let bad_email = UserRow {
            email: "nobody".to_owned(),
            ..user_row()
        };
        let unnormalised_email = UserRow {
            email: "Alice@Example.com".to_owned(),
            ..user_row()
        };
        let bad_time = UserRow {
            created_at: i64::MAX,
            ..user_row()
        };
        for row in [bad_id, bad_email, unnormalised_email, bad_time] {
            assert!(User::try_from(row).is_err());
        }
    }

    #[test]
    fn bad_session_rows_are_errors() {
        let good = || SessionRow {
            id_hash: vec![7; 32],
            user_id: "6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22".to_owned(),
            state: "authenticated".to_owned(),
            created_at: 1,
            last_seen_at: 2,
        };
        assert_eq!(
            SessionRecord::try_from(good()).unwrap().state,
            SessionState::Authenticated
        );
        let short_hash = SessionRow {
            id_hash: vec![7; 31],
            ..good()
        };
        let bad_state = SessionRow {
            state: "root".to_owned(),
            ..good()
        };
        let bad_user = SessionRow {
            user_id: "x".to_owned(),
            ..good()
        };
        for row in [short_hash, bad_state, bad_user] {
            assert!(SessionRecord::try_from(row).is_err());
        }
    }
}
