//! Rows as the database stores them, and their checked conversion into domain types.
//!
//! Both backends read columns into these plain structs and convert here, so a stored value that
//! no longer parses (a bad uuid, an unknown session state, an email that is not one) fails the
//! same way everywhere: as an error naming the row, never as a silently skipped record.
//! Numbers cross between the domain's unsigned types and the databases' signed ones only
//! through checked conversions: a value out of range is an error, never a wrapped number.

use anyhow::{Context, anyhow};
use time::OffsetDateTime;
use twofold_core::session::{SessionIdHash, SessionRecord, SessionState};
use twofold_core::store::{
    FailureCount, NewTotp, PhoneFactor, SealedSecret, SendLimit, StoredPolicy, TotpRecord,
};
use twofold_core::user::UserId;
use uuid::Uuid;

/// The `sessions` columns [`SessionRow`] is read from, in its field order.
macro_rules! session_columns {
    () => {
        "id_hash, user_id, state, created_at, last_seen_at"
    };
}
pub(crate) use session_columns;

/// The `totp_authenticators` columns [`TotpRow`] is read from, in its field order.
macro_rules! totp_columns {
    () => {
        "id, user_id, key_id, sealed_secret, algorithm, digits, period_seconds, active, \
         last_used_step, created_at, confirmed_at, last_used_at"
    };
}
pub(crate) use totp_columns;

/// The TOTP algorithms the schema accepts (its CHECK constraint lists the same names).
const TOTP_ALGORITHMS: [&str; 3] = ["SHA1", "SHA256", "SHA512"];

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

/// The values of a TOTP authenticator being inserted, owned so they can move to a database
/// thread.
#[derive(Debug)]
pub(crate) struct NewTotpRow {
    pub id: String,
    pub user_id: String,
    pub key_id: String,
    pub sealed_secret: Vec<u8>,
    pub algorithm: String,
    pub digits: i32,
    pub period_seconds: i32,
    pub created_at: i64,
}

impl TryFrom<&NewTotp> for NewTotpRow {
    type Error = anyhow::Error;

    fn try_from(totp: &NewTotp) -> anyhow::Result<NewTotpRow> {
        check_algorithm(&totp.algorithm)
            .with_context(|| format!("the new TOTP authenticator {}", totp.id))?;
        Ok(NewTotpRow {
            id: totp.id.to_string(),
            user_id: totp.user_id.to_string(),
            key_id: totp.secret.key_id.clone(),
            sealed_secret: totp.secret.ciphertext.clone(),
            algorithm: totp.algorithm.clone(),
            digits: i32::try_from(totp.digits)
                .with_context(|| format!("{} TOTP digits do not fit INTEGER", totp.digits))?,
            period_seconds: i32::try_from(totp.period_seconds).with_context(|| {
                format!(
                    "a TOTP period of {} seconds does not fit INTEGER",
                    totp.period_seconds
                )
            })?,
            created_at: to_unix(totp.created_at),
        })
    }
}

/// A `totp_authenticators` row.
#[derive(Debug)]
pub(crate) struct TotpRow {
    pub id: String,
    pub user_id: String,
    pub key_id: String,
    pub sealed_secret: Vec<u8>,
    pub algorithm: String,
    pub digits: i64,
    pub period_seconds: i64,
    pub active: bool,
    pub last_used_step: Option<i64>,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl TryFrom<TotpRow> for TotpRecord {
    type Error = anyhow::Error;

    fn try_from(row: TotpRow) -> anyhow::Result<TotpRecord> {
        let id: Uuid = row
            .id
            .parse()
            .with_context(|| format!("totp_authenticators.id {:?} is not a uuid", row.id))?;
        let user_id: UserId = row
            .user_id
            .parse()
            .with_context(|| format!("totp_authenticators.user_id of {id} is not a uuid"))?;
        check_algorithm(&row.algorithm)
            .with_context(|| format!("totp_authenticators.algorithm of {id}"))?;
        let unsigned = |column: &str, value: i64| {
            u32::try_from(value)
                .with_context(|| format!("totp_authenticators.{column} of {id} is {value}"))
        };
        Ok(TotpRecord {
            id,
            user_id,
            secret: SealedSecret {
                key_id: row.key_id,
                ciphertext: row.sealed_secret,
            },
            algorithm: row.algorithm,
            digits: unsigned("digits", row.digits)?,
            period_seconds: unsigned("period_seconds", row.period_seconds)?,
            active: row.active,
            last_used_step: row
                .last_used_step
                .map(step_from_db)
                .transpose()
                .with_context(|| format!("totp_authenticators.last_used_step of {id}"))?,
            created_at: from_unix(row.created_at)
                .with_context(|| format!("totp_authenticators.created_at of {id}"))?,
            confirmed_at: row
                .confirmed_at
                .map(from_unix)
                .transpose()
                .with_context(|| format!("totp_authenticators.confirmed_at of {id}"))?,
            last_used_at: row
                .last_used_at
                .map(from_unix)
                .transpose()
                .with_context(|| format!("totp_authenticators.last_used_at of {id}"))?,
        })
    }
}

fn check_algorithm(algorithm: &str) -> anyhow::Result<()> {
    if TOTP_ALGORITHMS.contains(&algorithm) {
        Ok(())
    } else {
        Err(anyhow!(
            "{algorithm:?} is not a TOTP algorithm Twofold knows"
        ))
    }
}

/// A TOTP time step as the database stores it (BIGINT). Steps are unix time divided by the
/// period, so a real one is far below `i64::MAX`; a larger one is a caller's bug, reported.
pub(crate) fn step_to_db(step: u64) -> anyhow::Result<i64> {
    i64::try_from(step).map_err(|_| anyhow!("the TOTP time step {step} does not fit BIGINT"))
}

fn step_from_db(step: i64) -> anyhow::Result<u64> {
    u64::try_from(step).map_err(|_| anyhow!("the stored TOTP time step {step} is negative"))
}

/// A `throttle_failures` row (without its key).
#[derive(Debug)]
pub(crate) struct FailureRow {
    pub failures: i64,
    pub last_failure_at: i64,
}

impl TryFrom<FailureRow> for FailureCount {
    type Error = anyhow::Error;

    fn try_from(row: FailureRow) -> anyhow::Result<FailureCount> {
        Ok(FailureCount {
            failures: u32::try_from(row.failures)
                .with_context(|| format!("throttle_failures.failures is {}", row.failures))?,
            last_failure_at: from_unix(row.last_failure_at)
                .context("throttle_failures.last_failure_at")?,
        })
    }
}

/// A `phone_factors` row (without its user).
#[derive(Debug)]
pub(crate) struct PhoneFactorRow {
    pub phone: String,
    pub verified_at: i64,
}

impl TryFrom<PhoneFactorRow> for PhoneFactor {
    type Error = anyhow::Error;

    fn try_from(row: PhoneFactorRow) -> anyhow::Result<PhoneFactor> {
        Ok(PhoneFactor {
            verified_at: from_unix(row.verified_at).context("phone_factors.verified_at")?,
            phone: row.phone,
        })
    }
}

/// The tries a one-time code has left after `tries` wrong ones (as `one_time_codes.tries`).
pub(crate) fn code_tries_left(tries: i64) -> anyhow::Result<u32> {
    let tries =
        u32::try_from(tries).map_err(|_| anyhow!("one_time_codes.tries is {tries}, negative"))?;
    Ok(twofold_core::codes::MAX_TRIES.saturating_sub(tries))
}

/// A `COUNT(*)` as the `u32` the traits count in.
pub(crate) fn count_to_u32(count: i64) -> anyhow::Result<u32> {
    u32::try_from(count).map_err(|_| anyhow!("COUNT(*) returned {count}, beyond u32"))
}

/// A [`SendLimit`] as both backends bind it: `since` in unix seconds, `max` widened to the
/// `COUNT(*)` it is compared with.
pub(crate) struct SendLimitRow {
    pub key: String,
    pub since: i64,
    pub max: i64,
}

impl From<&SendLimit<'_>> for SendLimitRow {
    fn from(limit: &SendLimit<'_>) -> Self {
        SendLimitRow {
            key: limit.key.to_owned(),
            since: to_unix(limit.since),
            max: i64::from(limit.max),
        }
    }
}

/// The keys of `limits`, each once, in the order they first appear: an admitted send records one
/// row per key, however many limits name it.
pub(crate) fn distinct_send_keys(limits: &[SendLimitRow]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(limits.len());
    for limit in limits {
        if !keys.contains(&limit.key) {
            keys.push(limit.key.clone());
        }
    }
    keys
}

/// A `security_policy` row.
#[derive(Debug)]
pub(crate) struct PolicyRow {
    pub document: String,
    pub version: i64,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

impl TryFrom<PolicyRow> for StoredPolicy {
    type Error = anyhow::Error;

    fn try_from(row: PolicyRow) -> anyhow::Result<StoredPolicy> {
        Ok(StoredPolicy {
            document: row.document,
            version: u64::try_from(row.version)
                .with_context(|| format!("security_policy.version is {}", row.version))?,
            updated_at: from_unix(row.updated_at).context("security_policy.updated_at")?,
            updated_by: row
                .updated_by
                .map(|id| {
                    id.parse::<UserId>()
                        .with_context(|| format!("security_policy.updated_by {id:?} is not a uuid"))
                })
                .transpose()?,
        })
    }
}

/// A policy version as the database stores it (BIGINT).
pub(crate) fn policy_version_to_db(version: u64) -> anyhow::Result<i64> {
    i64::try_from(version).map_err(|_| anyhow!("the policy version {version} does not fit BIGINT"))
}

/// Timestamps are stored as unix seconds: portable across both backends and free of time zones.
pub(crate) fn to_unix(instant: OffsetDateTime) -> i64 {
    instant.unix_timestamp()
}

pub(crate) fn from_unix(seconds: i64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .with_context(|| format!("{seconds} is not a valid unix time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp_row() -> TotpRow {
        TotpRow {
            id: "0b9f3a52-4c1e-4d7a-8f26-3e5d9c7b1a04".to_owned(),
            user_id: "6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22".to_owned(),
            key_id: "k1".to_owned(),
            sealed_secret: vec![0x00, 0x7f, 0xff],
            algorithm: "SHA256".to_owned(),
            digits: 8,
            period_seconds: 30,
            active: true,
            last_used_step: Some(56_666_666),
            created_at: 1_700_000_000,
            confirmed_at: Some(1_700_000_030),
            last_used_at: None,
        }
    }

    #[test]
    fn a_good_totp_row_converts() {
        let record = TotpRecord::try_from(totp_row()).unwrap();
        assert_eq!(record.secret.ciphertext, [0x00, 0x7f, 0xff]);
        assert_eq!(record.algorithm, "SHA256");
        assert_eq!((record.digits, record.period_seconds), (8, 30));
        assert_eq!(record.last_used_step, Some(56_666_666));
        assert_eq!(record.last_used_at, None);
    }

    #[test]
    fn bad_totp_rows_are_errors() {
        let rows = [
            TotpRow {
                id: "x".to_owned(),
                ..totp_row()
            },
            TotpRow {
                user_id: "x".to_owned(),
                ..totp_row()
            },
            TotpRow {
                algorithm: "MD5".to_owned(),
                ..totp_row()
            },
            TotpRow {
                algorithm: "sha1".to_owned(),
                ..totp_row()
            },
            TotpRow {
                digits: -6,
                ..totp_row()
            },
            TotpRow {
                period_seconds: i64::from(u32::MAX) + 1,
                ..totp_row()
            },
            TotpRow {
                last_used_step: Some(-1),
                ..totp_row()
            },
            TotpRow {
                confirmed_at: Some(i64::MAX),
                ..totp_row()
            },
        ];
        for row in rows {
            let shown = format!("{row:?}");
            assert!(TotpRecord::try_from(row).is_err(), "{shown}");
        }
    }

    #[test]
    fn steps_convert_only_within_range() {
        assert_eq!(step_to_db(0).unwrap(), 0);
        assert_eq!(step_to_db(i64::MAX as u64).unwrap(), i64::MAX);
        assert!(step_to_db(i64::MAX as u64 + 1).is_err());
        assert!(step_to_db(u64::MAX).is_err());
        assert_eq!(step_from_db(i64::MAX).unwrap(), i64::MAX as u64);
        assert!(step_from_db(i64::MIN).is_err());
    }

    #[test]
    fn new_totp_with_an_unknown_algorithm_is_refused() {
        let new = NewTotp {
            id: Uuid::new_v4(),
            user_id: UserId::random(),
            secret: SealedSecret {
                key_id: "k1".to_owned(),
                ciphertext: vec![1, 2, 3],
            },
            algorithm: "SHA1".to_owned(),
            digits: 6,
            period_seconds: 30,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(NewTotpRow::try_from(&new).is_ok());
        let md5 = NewTotp {
            algorithm: "MD5".to_owned(),
            ..new.clone()
        };
        let huge = NewTotp {
            digits: u32::MAX,
            ..new
        };
        assert!(NewTotpRow::try_from(&md5).is_err());
        assert!(NewTotpRow::try_from(&huge).is_err());
    }

    #[test]
    fn failure_rows_and_counts_convert_checked() {
        let count = FailureCount::try_from(FailureRow {
            failures: 3,
            last_failure_at: 1_700_000_000,
        })
        .unwrap();
        assert_eq!(count.failures, 3);
        assert!(
            FailureCount::try_from(FailureRow {
                failures: -1,
                last_failure_at: 0
            })
            .is_err()
        );
        assert_eq!(count_to_u32(10).unwrap(), 10);
        assert!(count_to_u32(-1).is_err());
        assert!(count_to_u32(i64::from(u32::MAX) + 1).is_err());
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
