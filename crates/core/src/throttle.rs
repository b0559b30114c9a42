//! Lockouts after repeated failures, counted in the database (so they hold across sessions and
//! instances). Soft and growing, never permanent, and far below NIST SP 800-63B's limit of 100
//! consecutive failures: by default 5 free attempts, then a wait of 30 s that doubles with each
//! further failure up to 15 minutes (the security policy can change all three). During a wait
//! even the right answer is refused (429), so a lockout cannot be probed.
//!
//! Three kinds of key:
//! - `second_factor:{user}`: every code a user types (sign-in, enrollment, reset, verifying
//!   an address), taken in advance (see `factors`).
//! - `password:{user}`, or `password:email:{sha256}` for an address without an account (so
//!   that unknown addresses answer exactly like known ones): the password step and every
//!   password typed again to confirm a change, under the same policy, taken in advance. Never
//!   the second-factor key: a password guesser cannot lock the owner's second factor.
//! - `ip:{address}` (IPv6 by its /64): every failed check from one client, whatever the
//!   account, under [`crate::ServiceSettings::ip_lockout`]. Only failures are written; a
//!   success neither counts nor is counted, so a whole office behind one NAT address can sign
//!   in at once. Forgotten after a quiet hour.

use std::net::IpAddr;

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::audit::{Event, EventKind, current_context};
use crate::email::Email;
use crate::factors::FactorError;
use crate::hasher::{HashError, Verification};
use crate::metrics::LockoutStep;
use crate::password::LoginPassword;
use crate::service::Service;
use crate::store::{FailureCount, LockoutPolicy, StoreError};
use crate::user::{User, UserId};

pub const FREE_FAILURES: u32 = 5;
const FIRST_WAIT_SECONDS: i64 = 30;
const LONGEST_WAIT_SECONDS: i64 = 15 * 60;

/// The rule [`remaining_lockout`] computes, as the store applies it atomically.
pub const LOCKOUT_POLICY: LockoutPolicy = LockoutPolicy {
    free_failures: FREE_FAILURES,
    first_wait_seconds: FIRST_WAIT_SECONDS,
    longest_wait_seconds: LONGEST_WAIT_SECONDS,
    forget_after_seconds: 0,
};

/// The default per-client-IP rule: 100 failures free (a busy office behind one address),
/// then 1 s doubling up to 15 minutes, all forgotten after an hour without a failure.
pub const IP_LOCKOUT_POLICY: LockoutPolicy = LockoutPolicy {
    free_failures: 100,
    first_wait_seconds: 1,
    longest_wait_seconds: LONGEST_WAIT_SECONDS,
    forget_after_seconds: 60 * 60,
};

/// The throttle key of second-factor codes (TOTP, recovery codes) for one user.
pub fn second_factor_key(user_id: UserId) -> String {
    format!("second_factor:{user_id}")
}

/// The throttle key of the password of one user.
pub fn password_key(user_id: UserId) -> String {
    format!("password:{user_id}")
}

/// The throttle key of a password typed for an address without an account (or for text that
/// is no address): a hash of the address as typed, trimmed and lower-cased, so the key holds
/// no address and the same address always meets the same count.
pub fn typed_email_key(typed_email: &str) -> String {
    // An address that parses is keyed as parsed (NFKC, lower case), exactly as an account's
    // address is found: otherwise a compatibility spelling ("bob＠example.com") would share
    // the lock of an existing account but not of a missing one, telling them apart.
    let normalised = match Email::parse(typed_email) {
        Ok(email) => email.as_str().to_owned(),
        Err(_) => typed_email.trim().to_lowercase(),
    };
    let digest = Sha256::digest(normalised.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("password:email:{hex}")
}

/// The throttle key of a client address; IPv6 clients by their /64 (one subscriber's
/// network), since anyone with one address has the whole /64 to hop through.
pub fn client_ip_key(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V6(ip)) => {
            let network = u128::from(ip) & !(u128::MAX >> 64);
            format!("ip:{}/64", std::net::Ipv6Addr::from(network))
        }
        Ok(IpAddr::V4(ip)) => format!("ip:{ip}"),
        Err(_) => format!("ip:{ip}"),
    }
}

/// How long the subject must still wait under `policy`, if at all.
pub fn remaining_lockout(
    count: Option<FailureCount>,
    now: OffsetDateTime,
    policy: &LockoutPolicy,
) -> Option<Duration> {
    let count = count?;
    if count.failures < policy.free_failures {
        return None;
    }
    if policy.forget_after_seconds > 0
        && now - count.last_failure_at >= Duration::seconds(policy.forget_after_seconds)
    {
        return None;
    }
    let doublings = (count.failures - policy.free_failures).min(16);
    let wait = (policy.first_wait_seconds << doublings).min(policy.longest_wait_seconds);
    let remaining = count.last_failure_at + Duration::seconds(wait) - now;
    remaining.is_positive().then_some(remaining)
}

/// Seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0);
    u64::try_from(whole.max(1)).unwrap_or(1)
}

/// What a password check under the limits found.
#[derive(Debug)]
pub(crate) enum PasswordCheck {
    /// The right password (its count is cleared), with the hasher's verdict on the hash.
    Right(Verification),
    /// A wrong password, an unknown address or a disabled account: counted.
    Wrong,
    /// Refused unchecked: the account key or the client address is locked this long.
    Throttled(Duration),
}

/// The account a password is checked against.
pub(crate) struct PasswordSubject<'a> {
    /// [`password_key`] or [`typed_email_key`].
    pub key: String,
    /// The user the key is about, for the lockout entry in the audit log.
    pub user_id: Option<UserId>,
    /// The stored hash; `None` (no account, a disabled one) checks against the dummy hash and
    /// is always wrong, at the same cost.
    pub password_hash: Option<&'a str>,
}

impl Service {
    /// Checks a typed password under the per-client-IP limit and the account's lockout: an
    /// attempt is taken before any hashing (so a locked account costs no Argon2 and the right
    /// password is refused too), the right password clears the account's count, a wrong one
    /// stays counted and counts against the client address. `refused` is appended to the audit
    /// log for a wrong password, followed by a `locked_out` entry when this failure starts a
    /// lockout of a known user. Nothing is recorded for an attempt refused unchecked.
    pub(crate) async fn check_password_limited<E>(
        &self,
        subject: PasswordSubject<'_>,
        password: &SecretString,
        refused: Option<Event>,
    ) -> Result<PasswordCheck, E>
    where
        E: From<StoreError> + From<HashError>,
    {
        let lockout = self.policy().await?.policy.lockout();
        let now = self.clock.now();
        let throttle = &self.stores.throttle;
        // A standing lockout is seen on a read (refusals cost no write); the conditional write
        // that takes the attempt stays the authority.
        let standing = throttle.failures(&subject.key).await?;
        let taken = match remaining_lockout(standing, now, &lockout) {
            Some(_) => None,
            None => throttle.take_attempt(&subject.key, now, &lockout).await?,
        };
        let Some(taken) = taken else {
            let count = throttle.failures(&subject.key).await?;
            let wait = remaining_lockout(count, now, &lockout).unwrap_or(Duration::seconds(1));
            tracing::info!(user_id = ?subject.user_id, "password refused unchecked: locked");
            return Ok(PasswordCheck::Throttled(wait));
        };
        let verification = match LoginPassword::parse(password) {
            // Too long to be anyone's password: no hashing needed to know.
            None => None,
            Some(password) => {
                let verified =
                    match subject.password_hash {
                        Some(hash) => self.hasher.verify(password.secret(), hash).await,
                        None => self.hasher.verify_dummy(password.secret()).await.map(|()| {
                            Verification {
                                matches: false,
                                needs_rehash: false,
                            }
                        }),
                    };
                match verified {
                    Ok(verification) => Some(verification).filter(|found| found.matches),
                    Err(error) => {
                        // No check took place (the pool is full): not a guess.
                        throttle.give_back_attempt(&subject.key).await?;
                        return Err(error.into());
                    }
                }
            }
        };
        if let Some(verification) = verification {
            throttle.clear_failures(&subject.key).await?;
            return Ok(PasswordCheck::Right(verification));
        }
        let address_wait = self.count_client_ip_failure().await?;
        if let Some(refused) = refused {
            self.audit(refused).await?;
        }
        if let Some(user_id) = subject.user_id
            && taken.failures == lockout.free_failures
        {
            tracing::info!(user_id = %user_id, "password lockout begins");
            self.count_lockout(LockoutStep::Password);
            self.audit(
                Event::by(EventKind::LockedOut, None, Some(user_id))
                    .with("step", "password")
                    .with("failures", lockout.free_failures),
            )
            .await?;
        }
        Ok(match address_wait {
            Some(wait) => PasswordCheck::Throttled(wait),
            None => PasswordCheck::Wrong,
        })
    }

    /// Checks the current password (re-authentication for sensitive changes), under the same
    /// limits as the password step of a login and counted under the same key: a stolen session
    /// buys no extra password guesses.
    pub(crate) async fn check_password(
        &self,
        user: &User,
        password: &SecretString,
    ) -> Result<(), FactorError> {
        let subject = PasswordSubject {
            key: password_key(user.id),
            user_id: Some(user.id),
            password_hash: Some(&user.password_hash),
        };
        match self
            .check_password_limited::<FactorError>(subject, password, None)
            .await?
        {
            PasswordCheck::Right(_) => Ok(()),
            PasswordCheck::Wrong => Err(FactorError::InvalidPassword),
            PasswordCheck::Throttled(retry_after) => Err(FactorError::Throttled { retry_after }),
        }
    }

    /// Counts a failed check against the client address of the request at hand, and returns
    /// the wait to answer with (429) when the address had already spent its budget. Only
    /// failures come here: the contract has it that successful requests are never throttled
    /// per address, so a right password or code is never refused for its address, and a
    /// success never writes to the address's key. The per-address limit therefore turns an
    /// address's wrong answers into 429s with a growing wait; the per-account lockouts, taken
    /// in advance, are what bound the guesses at any one account.
    pub(crate) async fn count_client_ip_failure(&self) -> Result<Option<Duration>, StoreError> {
        let (Some(policy), Some(key)) = (self.settings.ip_lockout, request_ip_key()) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let throttle = &self.stores.throttle;
        let was_locked = remaining_lockout(throttle.failures(&key).await?, now, &policy).is_some();
        let count = throttle
            .record_failure(&key, now, policy.forget_after_seconds)
            .await?;
        if count.failures == policy.free_failures {
            tracing::warn!(key = %key, failures = count.failures, "client address locked");
            self.count_lockout(LockoutStep::ClientAddress);
        }
        if !was_locked {
            return Ok(None);
        }
        tracing::info!(key = %key, "failure from a locked client address");
        Ok(Some(
            remaining_lockout(Some(count), now, &policy).unwrap_or(Duration::seconds(1)),
        ))
    }
}

/// The throttle key of the client address of the request at hand, if it came over HTTP.
fn request_ip_key() -> Option<String> {
    current_context().ip.as_deref().map(client_ip_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    fn remaining_lockout_default(
        count: Option<FailureCount>,
        now: OffsetDateTime,
    ) -> Option<Duration> {
        remaining_lockout(count, now, &LOCKOUT_POLICY)
    }

    fn count(failures: u32, last: i64) -> Option<FailureCount> {
        Some(FailureCount {
            failures,
            last_failure_at: at(last),
        })
    }

    #[test]
    fn five_failures_are_free_then_the_wait_grows_to_fifteen_minutes() {
        assert_eq!(remaining_lockout_default(None, at(0)), None);
        assert_eq!(remaining_lockout_default(count(4, 0), at(0)), None);
        assert_eq!(
            remaining_lockout_default(count(5, 0), at(0)),
            Some(Duration::seconds(30))
        );
        assert_eq!(
            remaining_lockout_default(count(6, 0), at(0)),
            Some(Duration::seconds(60))
        );
        assert_eq!(
            remaining_lockout_default(count(9, 0), at(0)),
            Some(Duration::seconds(480))
        );
        assert_eq!(
            remaining_lockout_default(count(10, 0), at(0)),
            Some(Duration::seconds(900))
        );
        assert_eq!(
            remaining_lockout_default(count(99, 0), at(0)),
            Some(Duration::seconds(900))
        );
    }

    #[test]
    fn the_wait_ends() {
        assert_eq!(
            remaining_lockout_default(count(5, 0), at(29)),
            Some(Duration::seconds(1))
        );
        assert_eq!(remaining_lockout_default(count(5, 0), at(30)), None);
        assert_eq!(remaining_lockout_default(count(50, 0), at(900)), None);
    }

    #[test]
    fn a_quiet_spell_forgets_a_lockout() {
        let policy = LockoutPolicy {
            free_failures: 2,
            first_wait_seconds: 600,
            longest_wait_seconds: 600,
            forget_after_seconds: 60,
        };
        assert_eq!(
            remaining_lockout(count(2, 0), at(59), &policy),
            Some(Duration::seconds(541))
        );
        assert_eq!(remaining_lockout(count(2, 0), at(60), &policy), None);
        let never = LockoutPolicy {
            forget_after_seconds: 0,
            ..policy
        };
        assert!(remaining_lockout(count(2, 0), at(60), &never).is_some());
    }

    #[test]
    fn password_keys_hide_the_address_and_ignore_case_and_spaces() {
        let key = typed_email_key(" Alice@Example.COM ");
        assert_eq!(key, typed_email_key("alice@example.com"));
        assert_ne!(key, typed_email_key("bob@example.com"));
        // Compatibility spellings count as the address they normalise to, as for an account.
        assert_eq!(key, typed_email_key("alice\u{FF20}example.com"));
        assert_eq!(key, typed_email_key("ALICE@\u{FF45}xample.com"));
        assert!(key.starts_with("password:email:") && !key.contains("alice"));
        assert_eq!(key.len(), "password:email:".len() + 64);
        let user = UserId::random();
        assert_eq!(password_key(user), format!("password:{user}"));
        assert_ne!(password_key(user), second_factor_key(user));
    }

    #[test]
    fn client_keys_group_ipv6_by_its_64() {
        assert_eq!(client_ip_key("192.0.2.1"), "ip:192.0.2.1");
        assert_eq!(client_ip_key("::ffff:192.0.2.1"), "ip:192.0.2.1");
        assert_eq!(
            client_ip_key("2001:db8:1:2:3:4:5:6"),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            client_ip_key("2001:db8:1:2:ffff::1"),
            client_ip_key("2001:db8:1:2::9")
        );
        assert_ne!(
            client_ip_key("2001:db8:1:3::1"),
            client_ip_key("2001:db8:1:2::1")
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::milliseconds(1)), 1);
        assert_eq!(retry_after_seconds(Duration::milliseconds(30_001)), 31);
        assert_eq!(retry_after_seconds(Duration::seconds(30)), 30);
    }
}
