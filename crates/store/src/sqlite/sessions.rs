//! [`SessionStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use twofold_core::session::{SessionIdHash, SessionRecord, SessionState};
use twofold_core::store::{NewSession, SessionStore, StoreError};
use twofold_core::user::UserId;

use super::SqliteStore;
use crate::rows::{SessionRow, session_columns, to_unix};

const SESSION_BY_ID_HASH: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE id_hash = ?1"
);

const SESSIONS_OF_USER: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE user_id = ?1 ORDER BY last_seen_at DESC, created_at DESC"
);

fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id_hash: row.get(0)?,
        user_id: row.get(1)?,
        state: row.get(2)?,
        created_at: row.get(3)?,
        last_seen_at: row.get(4)?,
    })
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError> {
        let (id_hash, user_id) = (session.id_hash.0, session.user_id.to_string());
        let (state, created_at) = (session.state.as_str(), to_unix(session.created_at));
        self.database
            .write("insert_session", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO sessions (id_hash, user_id, state, created_at, last_seen_at) \
                         VALUES (?1, ?2, ?3, ?4, ?4)",
                    )?
                    .execute(params![&id_hash[..], user_id, state, created_at])
            })
            .await
            .map(drop)
    }

    async fn session_by_id_hash(
        &self,
        id_hash: &SessionIdHash,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let id_hash = id_hash.0;
        let row = self
            .database
            .lookup("session_by_id_hash", move |connection| {
                connection
                    .prepare_cached(SESSION_BY_ID_HASH)?
                    .query_row([&id_hash[..]], session_row)
                    .optional()
            })
            .await?;
        row.map(SessionRecord::try_from)
            .transpose()
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
        let (old, new) = (old.0, new.0);
        let changed = self
            .database
            .write("rotate_session", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE sessions SET id_hash = ?3, state = ?4, last_seen_at = ?5 \
                         WHERE id_hash = ?1 AND state = ?2",
                    )?
                    .execute(params![
                        &old[..],
                        expected.as_str(),
                        &new[..],
                        new_state.as_str(),
                        to_unix(now)
                    ])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn touch_session(
        &self,
        id_hash: &SessionIdHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id_hash = id_hash.0;
        self.database
            .write("touch_session", move |connection| {
                // Only forward: a late request must not make a session look idle for longer, and
                // repeated touches within one second cost no write.
                connection
                    .prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1 AND last_seen_at < ?2")?
                    .execute(params![&id_hash[..], to_unix(now)])
            })
            .await
            .map(drop)
    }

    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        let id_hash = id_hash.0;
        let deleted = self
            .database
            .write("delete_session", move |connection| {
                connection
                    .prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
                    .execute([&id_hash[..]])
            })
            .await?;
        Ok(deleted == 1)
    }

    async fn sessions_of_user(&self, user_id: UserId) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = self
            .database
            .read("sessions_of_user", move |connection| {
                connection
                    .prepare_cached(SESSIONS_OF_USER)?
                    .query_map([user_id.to_string()], session_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(SessionRecord::try_from)
            .collect::<Result<_, _>>()
            .map_err(StoreError::Unexpected)
    }

    async fn delete_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<&SessionIdHash>,
    ) -> Result<u64, StoreError> {
        let keep = keep.map(|id_hash| id_hash.0.to_vec());
        let deleted = self
            .database
            .write("delete_user_sessions", move |connection| {
                connection
                    .prepare_cached(
                        "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id_hash <> ?2)",
                    )?
                    .execute(params![user_id.to_string(), keep])
            })
            .await?;
        Ok(deleted as u64)
    }

    async fn delete_expired_sessions(
        &self,
        idle_before: OffsetDateTime,
        created_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let deleted = self
            .database
            .write("delete_expired_sessions", move |connection| {
                connection
                    .prepare_cached(
                        "DELETE FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2",
                    )?
                    .execute(params![to_unix(idle_before), to_unix(created_before)])
            })
            .await?;
        Ok(deleted as u64)
    }
}
