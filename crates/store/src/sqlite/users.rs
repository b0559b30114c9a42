//! [`UserStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use twofold_core::email::Email;
use twofold_core::store::{NewUser, StoreError, UserListing, UserPage, UserQuery, UserStore};
use twofold_core::user::{User, UserId};

use super::SqliteStore;
use crate::rows::to_unix;
use crate::user_rows::{NewUserRow, UserListingRow, UserQueryRow, UserRow, user_columns};

const INSERT_USER: &str = "INSERT INTO users (id, email, password_hash, password_change_required, is_admin, \
     require_2fa, created_at, updated_at, require_2fa_since) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)";

// A write statement takes the database's write lock before it reads, so the NOT EXISTS check
// and the insert are one atomic step even against another process on the same file. The
// ON CONFLICT clause turns a lost race on the email into "not inserted" instead of an error.
const INSERT_FIRST_USER: &str = "INSERT INTO users (id, email, password_hash, password_change_required, is_admin, \
     require_2fa, created_at, updated_at, require_2fa_since) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8 \
     WHERE NOT EXISTS (SELECT 1 FROM users) ON CONFLICT (email) DO NOTHING";

const USER_BY_EMAIL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE email = ?1");
const USER_BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1");

/// The search is a plain substring test (`instr`), so `%` and `_` match only themselves; `?1`
/// is NULL for no search. The factor facts are subqueries of the same statement, each served by
/// an index on `user_id`. The order is by bytes (SQLite's BINARY collation), as on PostgreSQL.
macro_rules! matching_users {
    () => {
        "FROM users WHERE ?1 IS NULL OR instr(lower(email), ?1) > 0"
    };
}
const COUNT_USERS_MATCHING: &str = concat!("SELECT COUNT(*) ", matching_users!());
const LIST_USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", EXISTS (SELECT 1 FROM totp_authenticators WHERE user_id = users.id AND active), \
     EXISTS (SELECT 1 FROM phone_factors WHERE user_id = users.id), \
     EXISTS (SELECT 1 FROM email_factors WHERE user_id = users.id) ",
    matching_users!(),
    " ORDER BY email LIMIT ?3 OFFSET ?2"
);

fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        password_change_required: row.get(3)?,
        is_admin: row.get(4)?,
        require_2fa: row.get(5)?,
        email_verified: row.get(6)?,
        disabled: row.get(7)?,
        created_at: row.get(8)?,
        last_login_at: row.get(9)?,
        require_2fa_since: row.get(10)?,
    })
}

fn user_listing_row(row: &Row<'_>) -> rusqlite::Result<UserListingRow> {
    Ok(UserListingRow {
        user: user_row(row)?,
        has_totp: row.get(11)?,
        has_phone: row.get(12)?,
        has_email_factor: row.get(13)?,
    })
}

fn to_user(row: Option<UserRow>) -> Result<Option<User>, StoreError> {
    row.map(User::try_from)
        .transpose()
        .map_err(StoreError::Unexpected)
}

/// Runs one of the two insert statements with a new user's values; returns the rows inserted.
async fn insert(
    store: &SqliteStore,
    operation: &'static str,
    sql: &'static str,
    user: &NewUser,
) -> Result<usize, StoreError> {
    let row = NewUserRow::from(user);
    store
        .database
        .write(operation, move |connection| {
            connection.prepare_cached(sql)?.execute(params![
                row.id,
                row.email,
                row.password_hash,
                row.password_change_required,
                row.is_admin,
                row.require_2fa,
                row.created_at,
                row.require_2fa_since,
            ])
        })
        .await
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        insert(self, "insert_user", INSERT_USER, user)
            .await
            .map(drop)
    }

    async fn insert_first_user(&self, user: &NewUser) -> Result<bool, StoreError> {
        Ok(insert(self, "insert_first_user", INSERT_FIRST_USER, user).await? == 1)
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let email = email.as_str().to_owned();
        let row = self
            .database
            .lookup("user_by_email", move |connection| {
                connection
                    .prepare_cached(USER_BY_EMAIL)?
                    .query_row([email], user_row)
                    .optional()
            })
            .await?;
        to_user(row)
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = self
            .database
            .lookup("user_by_id", move |connection| {
                connection
                    .prepare_cached(USER_BY_ID)?
                    .query_row([id.to_string()], user_row)
                    .optional()
            })
            .await?;
        to_user(row)
    }

    async fn set_password(
        &self,
        id: UserId,
        expected_hash: &str,
        password_hash: &str,
        change_required: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (expected_hash, password_hash) = (expected_hash.to_owned(), password_hash.to_owned());
        let changed = self
            .database
            .write("set_password", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE users SET password_hash = ?2, password_change_required = ?3, updated_at = ?4 \
                         WHERE id = ?1 AND password_hash = ?5",
                    )?
                    .execute(params![id.to_string(), password_hash, change_required, to_unix(now), expected_hash])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError> {
        let (old_hash, new_hash) = (old_hash.to_owned(), new_hash.to_owned());
        let changed = self
            .database
            .write("replace_password_hash", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
                    )?
                    .execute(params![id.to_string(), old_hash, new_hash])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn set_require_2fa(
        &self,
        id: UserId,
        required: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement reads the old flag and writes the new one: turning it on keeps an
        // earlier time, turning it off clears it.
        let changed = self
            .database
            .write("set_require_2fa", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE users SET require_2fa = ?2, \
                         require_2fa_since = CASE WHEN NOT ?2 THEN NULL \
                         WHEN require_2fa THEN COALESCE(require_2fa_since, ?3) ELSE ?3 END, \
                         updated_at = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id.to_string(), required, to_unix(now)])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn record_login(&self, id: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
        self.database
            .write("record_login", move |connection| {
                connection
                    .prepare_cached("UPDATE users SET last_login_at = ?2 WHERE id = ?1")?
                    .execute(params![id.to_string(), to_unix(now)])
            })
            .await
            .map(drop)
    }

    async fn set_email_verified(
        &self,
        id: UserId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .database
            .write("set_email_verified", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1",
                    )?
                    .execute(params![id.to_string(), to_unix(now)])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .database
            .read("count_users", |connection| {
                connection
                    .prepare_cached("SELECT COUNT(*) FROM users")?
                    .query_row([], |row| row.get(0))
            })
            .await?;
        u64::try_from(count)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("COUNT(*) returned {count}")))
    }

    async fn set_disabled(
        &self,
        id: UserId,
        disabled: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .database
            .write("set_disabled", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id.to_string(), disabled, to_unix(now)])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn list_users(&self, query: &UserQuery<'_>) -> Result<UserPage, StoreError> {
        let query = UserQueryRow::try_from(query)?;
        let (total, rows) = self
            .database
            .read("list_users", move |connection| {
                // One read transaction: the count and the page come from the same snapshot.
                let transaction = connection.unchecked_transaction()?;
                let total: i64 = transaction
                    .prepare_cached(COUNT_USERS_MATCHING)?
                    .query_row([&query.search], |row| row.get(0))?;
                let rows = transaction
                    .prepare_cached(LIST_USERS)?
                    .query_map(
                        params![query.search, query.offset, query.limit],
                        user_listing_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                transaction.commit()?;
                Ok((total, rows))
            })
            .await?;
        let users = rows
            .into_iter()
            .map(UserListing::try_from)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let total = u64::try_from(total)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("COUNT(*) returned {total}")))?;
        Ok(UserPage { users, total })
    }
}
