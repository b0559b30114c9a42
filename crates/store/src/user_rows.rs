//! User rows as both backends read and write them, and their checked conversion into the
//! domain's types (see `rows.rs` for the rules every conversion keeps), with what
//! `list_users` binds.

use anyhow::{Context, anyhow};
use twofold_core::email::Email;
use twofold_core::store::{NewUser, UserListing, UserQuery};
use twofold_core::user::{User, UserId};

use crate::rows::{from_unix, to_unix};

/// The `users` columns [`UserRow`] is read from, in its field order.
macro_rules! user_columns {
    () => {
        "id, email, password_hash, password_change_required, is_admin, require_2fa, \
         email_verified, disabled, created_at, last_login_at, require_2fa_since"
    };
}
pub(crate) use user_columns;

/// The values of a user being inserted, owned so they can move to a database thread.
#[derive(Debug)]
pub(crate) struct NewUserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub password_change_required: bool,
    pub is_admin: bool,
    pub require_2fa: bool,
    /// `created_at` when 2FA is required from the start.
    pub require_2fa_since: Option<i64>,
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
            require_2fa_since: user.require_2fa.then(|| to_unix(user.created_at)),
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
    pub require_2fa_since: Option<i64>,
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
            require_2fa_since: row
                .require_2fa_since
                .map(from_unix)
                .transpose()
                .with_context(|| format!("users.require_2fa_since of user {id}"))?,
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

/// A `users` row with the factor facts `list_users` reads beside it.
#[derive(Debug)]
pub(crate) struct UserListingRow {
    pub user: UserRow,
    pub has_totp: bool,
    pub has_phone: bool,
    pub has_email_factor: bool,
}

impl TryFrom<UserListingRow> for UserListing {
    type Error = anyhow::Error;

    fn try_from(row: UserListingRow) -> anyhow::Result<UserListing> {
        Ok(UserListing {
            user: User::try_from(row.user)?,
            has_totp: row.has_totp,
            has_phone: row.has_phone,
            has_email_factor: row.has_email_factor,
        })
    }
}

/// A [`UserQuery`] as both backends bind it. The search is matched as a plain substring
/// (`instr` / `strpos`, never `LIKE`, so `%` and `_` are literal) against the stored address,
/// which is already lower-case; only the search text needs folding, and only ASCII letters
/// fold, as the trait promises, so both backends agree whatever their locale.
#[derive(Debug)]
pub(crate) struct UserQueryRow {
    pub search: Option<String>,
    pub offset: i64,
    pub limit: i64,
}

impl TryFrom<&UserQuery<'_>> for UserQueryRow {
    type Error = anyhow::Error;

    fn try_from(query: &UserQuery<'_>) -> anyhow::Result<UserQueryRow> {
        Ok(UserQueryRow {
            search: query.search.map(str::to_ascii_lowercase),
            offset: i64::try_from(query.offset).map_err(|_| {
                anyhow!("the user list offset {} does not fit BIGINT", query.offset)
            })?,
            limit: i64::from(query.limit),
        })
    }
}

#[cfg(test)]
mod tests {
    use twofold_core::store::UserQuery;

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
            require_2fa_since: None,
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
    fn since_is_set_only_when_required_from_the_start() {
        let user = NewUser {
            id: UserId::random(),
            email: Email::parse("alice@example.com").unwrap(),
            password_hash: "hash".to_owned(),
            password_change_required: false,
            is_admin: false,
            require_2fa: true,
            created_at: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        };
        assert_eq!(
            NewUserRow::from(&user).require_2fa_since,
            Some(1_700_000_000)
        );
        let optional = NewUser {
            require_2fa: false,
            ..user
        };
        assert_eq!(NewUserRow::from(&optional).require_2fa_since, None);
    }

    #[test]
    fn the_search_folds_ascii_only_and_offsets_are_checked() {
        let query = UserQuery {
            search: Some("AL%_Ü"),
            offset: 3,
            limit: 10,
        };
        let row = UserQueryRow::try_from(&query).unwrap();
        assert_eq!(row.search.as_deref(), Some("al%_Ü"));
        assert_eq!((row.offset, row.limit), (3, 10));
        let huge = UserQuery {
            offset: u64::MAX,
            ..query
        };
        assert!(UserQueryRow::try_from(&huge).is_err());
    }
}
