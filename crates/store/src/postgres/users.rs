//! [`UserStore`] on PostgreSQL.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};
use twofold_core::email::Email;
use twofold_core::store::{NewUser, StoreError, UserListing, UserPage, UserQuery, UserStore};
use twofold_core::user::{User, UserId};

use super::{PostgresStore, locked_transaction, store_error};
use crate::rows::to_unix;
use crate::user_rows::{NewUserRow, UserListingRow, UserQueryRow, UserRow, user_columns};

const INSERT_USER: &str = "INSERT INTO users (id, email, password_hash, password_change_required, is_admin, \
     require_2fa, created_at, updated_at, require_2fa_since) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)";

// Why no two instances can both create a first user, under READ COMMITTED:
// - Without any lock, two concurrent inserts could both see an empty table. Given the same
//   admin email (the usual case: instances share their configuration) they collide on the
//   unique index; the second waits for the first to commit, and ON CONFLICT DO NOTHING then
//   makes it insert nothing, so its row count is 0.
// - With different emails the index would not collide, so the statement runs under an advisory
//   lock: the second instance waits for the first to commit, and the INSERT's fresh statement
//   snapshot then sees the first user, so NOT EXISTS fails.
const INSERT_FIRST_USER: &str = "INSERT INTO users (id, email, password_hash, password_change_required, is_admin, \
     require_2fa, created_at, updated_at, require_2fa_since) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $7, $8 \
     WHERE NOT EXISTS (SELECT 1 FROM users) ON CONFLICT (email) DO NOTHING";

/// Serialises first-user creation across instances ("twofold" + 2).
const FIRST_USER_LOCK_KEY: i64 = 0x7477_6f66_6f6c_6402;

const USER_BY_EMAIL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
const USER_BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");

/// The search is a plain substring test (`strpos`), so `%` and `_` match only themselves; `$1`
/// is NULL for no search. The factor facts are subqueries of the same statement, each served by
/// an index on `user_id`. The order is by bytes (`COLLATE "C"`), as SQLite's, whatever the
/// database's locale, so both backends page alike.
macro_rules! matching_users {
    () => {
        "FROM users WHERE $1::TEXT IS NULL OR strpos(lower(email), $1::TEXT) > 0"
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
    " ORDER BY email COLLATE \"C\" LIMIT $3 OFFSET $2"
);

fn user_row(row: &Row) -> Result<UserRow, tokio_postgres::Error> {
    Ok(UserRow {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        password_change_required: row.try_get(3)?,
        is_admin: row.try_get(4)?,
        require_2fa: row.try_get(5)?,
        email_verified: row.try_get(6)?,
        disabled: row.try_get(7)?,
        created_at: row.try_get(8)?,
        last_login_at: row.try_get(9)?,
        require_2fa_since: row.try_get(10)?,
    })
}

fn user_listing_row(row: &Row) -> Result<UserListingRow, tokio_postgres::Error> {
    Ok(UserListingRow {
        user: user_row(row)?,
        has_totp: row.try_get(11)?,
        has_phone: row.try_get(12)?,
        has_email_factor: row.try_get(13)?,
    })
}

/// Counts the matching users and reads one page of them in one REPEATABLE READ, read-only
/// transaction, so that the total and the page come from the same snapshot.
async fn list_users(
    client: &mut deadpool_postgres::Client,
    query: &UserQueryRow,
) -> Result<(i64, Vec<UserListingRow>), tokio_postgres::Error> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let count = transaction.prepare_cached(COUNT_USERS_MATCHING).await?;
    let total: i64 = transaction
        .query_one(&count, &[&query.search])
        .await?
        .try_get(0)?;
    let list = transaction.prepare_cached(LIST_USERS).await?;
    let rows = transaction
        .query(&list, &[&query.search, &query.offset, &query.limit])
        .await?
        .iter()
        .map(user_listing_row)
        .collect::<Result<Vec<_>, _>>()?;
    transaction.commit().await?;
    Ok((total, rows))
}

fn to_user(operation: &'static str, row: Option<Row>) -> Result<Option<User>, StoreError> {
    let Some(row) = row else { return Ok(None) };
    let row = user_row(&row).map_err(|error| store_error(operation, error))?;
    User::try_from(row)
        .map(Some)
        .map_err(StoreError::Unexpected)
}

fn new_user_params(row: &NewUserRow) -> [&(dyn ToSql + Sync); 8] {
    [
        &row.id,
        &row.email,
        &row.password_hash,
        &row.password_change_required,
        &row.is_admin,
        &row.require_2fa,
        &row.created_at,
        &row.require_2fa_since,
    ]
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        let row = NewUserRow::from(user);
        self.execute("insert_user", INSERT_USER, &new_user_params(&row))
            .await
            .map(drop)
    }

    async fn insert_first_user(&self, user: &NewUser) -> Result<bool, StoreError> {
        const OPERATION: &str = "insert_first_user";
        let row = NewUserRow::from(user);
        let mut client = self.client(OPERATION).await?;
        let transaction = locked_transaction(&mut client, FIRST_USER_LOCK_KEY)
            .await
            .map_err(|error| store_error(OPERATION, error))?;
        let statement = transaction
            .prepare_cached(INSERT_FIRST_USER)
            .await
            .map_err(|error| store_error(OPERATION, error))?;
        let inserted = transaction
            .execute(&statement, &new_user_params(&row))
            .await
            .map_err(|error| store_error(OPERATION, error))?;
        transaction
            .commit()
            .await
            .map_err(|error| store_error(OPERATION, error))?;
        Ok(inserted == 1)
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = self
            .query_opt("user_by_email", USER_BY_EMAIL, &[&email.as_str()])
            .await?;
        to_user("user_by_email", row)
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = self
            .query_opt("user_by_id", USER_BY_ID, &[&id.to_string()])
            .await?;
        to_user("user_by_id", row)
    }

    async fn set_password(
        &self,
        id: UserId,
        expected_hash: &str,
        password_hash: &str,
        change_required: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "set_password",
                "UPDATE users SET password_hash = $2, password_change_required = $3, updated_at = $4 \
                 WHERE id = $1 AND password_hash = $5",
                &[&id.to_string(), &password_hash, &change_required, &to_unix(now), &expected_hash],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "replace_password_hash",
                "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                &[&id.to_string(), &old_hash, &new_hash],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn set_require_2fa(
        &self,
        id: UserId,
        required: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement reads the old flag and writes the new one (concurrent ones queue on the
        // row lock and see each other's result): turning it on keeps an earlier time, turning
        // it off clears it.
        let changed = self
            .execute(
                "set_require_2fa",
                "UPDATE users SET require_2fa = $2, \
                 require_2fa_since = CASE WHEN NOT $2 THEN NULL \
                 WHEN require_2fa THEN COALESCE(require_2fa_since, $3) ELSE $3 END, \
                 updated_at = $3 WHERE id = $1",
                &[&id.to_string(), &required, &to_unix(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn record_login(&self, id: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
        self.execute(
            "record_login",
            "UPDATE users SET last_login_at = $2 WHERE id = $1",
            &[&id.to_string(), &to_unix(now)],
        )
        .await
        .map(drop)
    }

    async fn set_email_verified(
        &self,
        id: UserId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "set_email_verified",
                "UPDATE users SET email_verified = TRUE, updated_at = $2 WHERE id = $1",
                &[&id.to_string(), &to_unix(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let row = self
            .query_opt("count_users", "SELECT COUNT(*) FROM users", &[])
            .await?;
        let count: i64 = match row {
            Some(row) => row
                .try_get(0)
                .map_err(|error| store_error("count_users", error))?,
            None => 0,
        };
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
            .execute(
                "set_disabled",
                "UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1",
                &[&id.to_string(), &disabled, &to_unix(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn list_users(&self, query: &UserQuery<'_>) -> Result<UserPage, StoreError> {
        const OPERATION: &str = "list_users";
        let query = UserQueryRow::try_from(query)?;
        let mut client = self.client(OPERATION).await?;
        let (total, rows) = list_users(&mut client, &query)
            .await
            .map_err(|error| store_error(OPERATION, error))?;
        let users = rows
            .into_iter()
            .map(UserListing::try_from)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let total = u64::try_from(total)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("COUNT(*) returned {total}")))?;
        Ok(UserPage { users, total })
    }
}
