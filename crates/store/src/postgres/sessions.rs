//! [`SessionStore`] on PostgreSQL.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use twofold_core::session::{SessionIdHash, SessionRecord, SessionState};
use twofold_core::store::{NewSession, SessionStore, StoreError};
use twofold_core::user::UserId;

use super::{PostgresStore, store_error};
use crate::rows::{SessionRow, session_columns, to_unix};

const SESSION_BY_ID_HASH: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE id_hash = $1"
);

const SESSIONS_OF_USER: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE user_id = $1 ORDER BY last_seen_at DESC, created_at DESC"
);

fn session_row(row: &Row) -> Result<SessionRow, tokio_postgres::Error> {
    Ok(SessionRow {
        id_hash: row.try_get(0)?,
        user_id: row.try_get(1)?,
        state: row.try_get(2)?,
        created_at: row.try_get(3)?,
        last_seen_at: row.try_get(4)?,
    })
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError> {
        self.execute(
            "insert_session",
            "INSERT INTO sessions (id_hash, user_id, state, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)",
            &[
                &&session.id_hash.0[..],
                &session.user_id.to_string(),
                &session.state.as_str(),
                &to_unix(session.created_at),
            ],
        )
        .await
        .map(drop)
    }

    async fn session_by_id_hash(
        &self,
        id_hash: &SessionIdHash,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = self
            .query_opt("session_by_id_hash", SESSION_BY_ID_HASH, &[&&id_hash.0[..]])
            .await?;
        let Some(row) = row else { return Ok(None) };
        let row = session_row(&row).map_err(|error| store_error("session_by_id_hash", error))?;
        SessionRecord::try_from(row)
            .map(Some)
            .map_err(StoreError::Unexpected)
    }

    async fn rotate_session(
        &self,
        old: &SessionIdHash,
        expected: SessionState,
        new: &SessionIdHash,
        new_state: SessionState,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement: concurrent rotations of the same session queue on its row lock, and
        // after the first commits the others re-check the WHERE clause against the moved row,
        // which no longer has the old id, so they change nothing.
        let changed = self
            .execute(
                "rotate_session",
                "UPDATE sessions SET id_hash = $3, state = $4, last_seen_at = $5 WHERE id_hash = $1 AND state = $2",
                &[&&old.0[..], &expected.as_str(), &&new.0[..], &new_state.as_str(), &to_unix(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn touch_session(
        &self,
        id_hash: &SessionIdHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // Only forward: a late request must not make a session look idle for longer, and
        // repeated touches within one second cost no write.
        self.execute(
            "touch_session",
            "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2",
            &[&&id_hash.0[..], &to_unix(now)],
        )
        .await
        .map(drop)
    }

    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        let deleted = self
            .execute(
                "delete_session",
                "DELETE FROM sessions WHERE id_hash = $1",
                &[&&id_hash.0[..]],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn sessions_of_user(&self, user_id: UserId) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = self
            .query_all(
                "sessions_of_user",
                SESSIONS_OF_USER,
                &[&user_id.to_string()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let row =
                    session_row(row).map_err(|error| store_error("sessions_of_user", error))?;
                SessionRecord::try_from(row).map_err(StoreError::Unexpected)
            })
            .collect()
    }

    async fn delete_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<&SessionIdHash>,
    ) -> Result<u64, StoreError> {
        let keep: Option<&[u8]> = keep.map(|id_hash| &id_hash.0[..]);
        self.execute(
            "delete_user_sessions",
            "DELETE FROM sessions WHERE user_id = $1 AND ($2::BYTEA IS NULL OR id_hash <> $2)",
            &[&user_id.to_string(), &keep],
        )
        .await
    }

    async fn delete_expired_sessions(
        &self,
        idle_before: OffsetDateTime,
        created_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.execute(
            "delete_expired_sessions",
            "DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2",
            &[&to_unix(idle_before), &to_unix(created_before)],
        )
        .await
    }
}
