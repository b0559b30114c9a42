//! Lockouts after repeated failures, counted in the database (so they hold across sessions and
//! instances). Soft and growing, never permanent, and far below NIST SP 800-63B's limit of 100
//! consecutive failures: by default 5 free attempts, then a wait of 30 s that doubles with each
//! further failure up to 15 minutes (the security policy can change all three). During a wait even the right answer is refused (429), so a lockout
//! cannot be probed.

use time::{Duration, OffsetDateTime};

use crate::store::{FailureCount, LockoutPolicy};
use crate::user::UserId;

pub const FREE_FAILURES: u32 = 5;
const FIRST_WAIT_SECONDS: i64 = 30;
const LONGEST_WAIT_SECONDS: i64 = 15 * 60;

/// The rule [`remaining_lockout`] computes, as the store applies it atomically.
pub const LOCKOUT_POLICY: LockoutPolicy = LockoutPolicy {
    free_failures: FREE_FAILURES,
    first_wait_seconds: FIRST_WAIT_SECONDS,
    longest_wait_seconds: LONGEST_WAIT_SECONDS,
};

/// The throttle key of second-factor codes (TOTP, recovery codes) for one user.
pub fn second_factor_key(user_id: UserId) -> String {
    format!("second_factor:{user_id}")
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
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::milliseconds(1)), 1);
        assert_eq!(retry_after_seconds(Duration::milliseconds(30_001)), 31);
        assert_eq!(retry_after_seconds(Duration::seconds(30)), 30);
    }
}
