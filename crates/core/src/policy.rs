//! The organisation's security policy (seed 002's "Security Policy"): who must use a second
//! factor, which methods are allowed, the grace period, recovery-code count, TOTP skew,
//! session timeouts and lockout thresholds.
//!
//! It lives in the database, so every instance applies the same one. Each instance reads it
//! again at most [`ServiceSettings::policy_refresh`](crate::ServiceSettings) after its last
//! read (one second by default), and at once after a change it made itself. Until an
//! administrator saves one, the policy is the configuration's values.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::audit::{Event, EventKind};
use crate::service::{Service, ServiceSettings};
use crate::store::{LockoutPolicy, StoreError};
use crate::throttle;
use crate::user::{Method, User, UserId};

/// Who must use a second factor. Administrators always must; there is no setting that lets
/// an administrator go without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwoFactorRule {
    /// Required for administrators and for the users an administrator picked; optional for
    /// everyone else.
    Admins,
    /// Required for everyone.
    Everyone,
}

/// The settings an administrator edits. Every field is checked by [`SecurityPolicy::check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityPolicy {
    pub two_factor: TwoFactorRule,
    /// The methods users may enroll and sign in with (recovery codes always go with them).
    pub allowed_methods: Vec<Method>,
    /// Days a user may still sign in without 2FA after `two_factor` became `everyone` (or
    /// after their account was made, if later); 0: enroll at the next sign-in. Users an
    /// administrator picked, and administrators, get no grace (seed 004).
    pub grace_period_days: u32,
    pub recovery_code_count: u32,
    /// TOTP codes are accepted this many 30-second steps either side of now.
    pub totp_skew_steps: u32,
    pub session_idle_timeout_minutes: u32,
    pub session_absolute_timeout_minutes: u32,
    /// Failed second-factor attempts allowed before the first wait.
    pub lockout_free_failures: u32,
    pub lockout_first_wait_seconds: u32,
    /// The wait doubles with each further failure up to this.
    pub lockout_longest_wait_seconds: u32,
}

/// A change of some settings; absent ones stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    pub two_factor: Option<TwoFactorRule>,
    pub allowed_methods: Option<Vec<Method>>,
    pub grace_period_days: Option<u32>,
    pub recovery_code_count: Option<u32>,
    pub totp_skew_steps: Option<u32>,
    pub session_idle_timeout_minutes: Option<u32>,
    pub session_absolute_timeout_minutes: Option<u32>,
    pub lockout_free_failures: Option<u32>,
    pub lockout_first_wait_seconds: Option<u32>,
    pub lockout_longest_wait_seconds: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A setting is out of its range; the text says which and why.
    #[error("{0}")]
    Invalid(String),
    /// Someone else saved the policy since it was read.
    #[error("the policy was changed by someone else meanwhile; reload it and try again")]
    Conflict,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for PolicyError {
    fn from(error: StoreError) -> Self {
        PolicyError::Unexpected(anyhow::Error::new(error))
    }
}

fn within(name: &str, value: u32, low: u32, high: u32) -> Result<(), PolicyError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(PolicyError::Invalid(format!(
            "{name} must be between {low} and {high}"
        )))
    }
}

impl SecurityPolicy {
    /// The policy before anyone saved one: the configuration's values.
    pub fn from_settings(settings: &ServiceSettings) -> Self {
        let minutes = |duration: Duration| u32::try_from(duration.whole_minutes()).unwrap_or(1);
        Self {
            two_factor: TwoFactorRule::Admins,
            allowed_methods: settings.allowed_methods.clone(),
            grace_period_days: 0,
            recovery_code_count: u32::try_from(settings.recovery_code_count).unwrap_or(10),
            totp_skew_steps: u32::try_from(settings.totp_skew_steps).unwrap_or(1),
            session_idle_timeout_minutes: minutes(settings.session_idle_timeout),
            session_absolute_timeout_minutes: minutes(settings.session_absolute_timeout),
            lockout_free_failures: throttle::LOCKOUT_POLICY.free_failures,
            lockout_first_wait_seconds: throttle::LOCKOUT_POLICY.first_wait_seconds as u32,
            lockout_longest_wait_seconds: throttle::LOCKOUT_POLICY.longest_wait_seconds as u32,
        }
    }

    /// Checks every setting against its range (NIST SP 800-63B: at most 100 consecutive
    /// failures; a session is re-authenticated at least every 30 days).
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.allowed_methods.is_empty() {
            return Err(PolicyError::Invalid(
                "allowed_methods must name at least one of totp, sms, email".to_owned(),
            ));
        }
        if self.allowed_methods.contains(&Method::RecoveryCode) {
            return Err(PolicyError::Invalid(
                "allowed_methods takes totp, sms and email; recovery codes always go with them"
                    .to_owned(),
            ));
        }
        within("grace_period_days", self.grace_period_days, 0, 90)?;
        within("recovery_code_count", self.recovery_code_count, 5, 16)?;
        within("totp_skew_steps", self.totp_skew_steps, 0, 2)?;
        within(
            "session_idle_timeout_minutes",
            self.session_idle_timeout_minutes,
            1,
            24 * 60,
        )?;
        within(
            "session_absolute_timeout_minutes",
            self.session_absolute_timeout_minutes,
            self.session_idle_timeout_minutes,
            30 * 24 * 60,
        )?;
        within("lockout_free_failures", self.lockout_free_failures, 1, 100)?;
        within(
            "lockout_first_wait_seconds",
            self.lockout_first_wait_seconds,
            1,
            3600,
        )?;
        within(
            "lockout_longest_wait_seconds",
            self.lockout_longest_wait_seconds,
            self.lockout_first_wait_seconds,
            24 * 3600,
        )?;
        Ok(())
    }

    /// This policy with the settings `change` gives replaced (unchecked: see [`Self::check`]).
    pub fn apply(&self, change: &PolicyChange) -> Self {
        let mut next = self.clone();
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(value) = &change.$field {
                    next.$field = value.clone();
                }
            )*};
        }
        take!(
            two_factor,
            allowed_methods,
            grace_period_days,
            recovery_code_count,
            totp_skew_steps,
            session_idle_timeout_minutes,
            session_absolute_timeout_minutes,
            lockout_free_failures,
            lockout_first_wait_seconds,
            lockout_longest_wait_seconds
        );
        next.allowed_methods.sort();
        next.allowed_methods.dedup();
        next
    }

    pub fn allows(&self, method: Method) -> bool {
        method == Method::RecoveryCode || self.allowed_methods.contains(&method)
    }

    pub fn lockout(&self) -> LockoutPolicy {
        LockoutPolicy {
            free_failures: self.lockout_free_failures,
            first_wait_seconds: i64::from(self.lockout_first_wait_seconds),
            longest_wait_seconds: i64::from(self.lockout_longest_wait_seconds),
            forget_after_seconds: 0,
        }
    }

    pub fn session_idle_timeout(&self) -> Duration {
        Duration::minutes(i64::from(self.session_idle_timeout_minutes))
    }

    pub fn session_absolute_timeout(&self) -> Duration {
        Duration::minutes(i64::from(self.session_absolute_timeout_minutes))
    }
}

/// The stored document: the settings and when `two_factor` last became `everyone`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PolicyDocument {
    policy: SecurityPolicy,
    #[serde(default, with = "time::serde::timestamp::option")]
    everyone_since: Option<OffsetDateTime>,
}

/// The policy in force, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentPolicy {
    pub policy: SecurityPolicy,
    /// When 2FA became required for everyone (the grace period counts from here).
    pub everyone_since: Option<OffsetDateTime>,
    /// 0 while the configuration's values apply.
    pub version: u64,
    pub updated_at: Option<OffsetDateTime>,
    pub updated_by: Option<UserId>,
}

impl CurrentPolicy {
    /// Whether `user` must have a second factor (their status is `pending` without one).
    pub fn requires_two_factor(&self, user: &User) -> bool {
        user.is_admin || user.require_2fa || self.policy.two_factor == TwoFactorRule::Everyone
    }

    /// Whether `user`, with no second factor, must enroll before signing in at `now`:
    /// administrators and users an administrator picked always (seed 004: "they will be
    /// required to set it up upon login"); everyone else once the policy requires it of
    /// everyone and the grace period since then (or since the account was made, if later) is
    /// over.
    pub fn enrollment_due(&self, user: &User, now: OffsetDateTime) -> bool {
        if user.is_admin || user.require_2fa {
            return true;
        }
        if self.policy.two_factor != TwoFactorRule::Everyone {
            return false;
        }
        let since = self
            .everyone_since
            .unwrap_or(user.created_at)
            .max(user.created_at);
        now >= since + Duration::days(i64::from(self.policy.grace_period_days))
    }
}

/// The last policy read, and when.
#[derive(Debug, Default)]
pub(crate) struct PolicyCache {
    entry: Mutex<Option<(Instant, Arc<CurrentPolicy>)>>,
}

impl PolicyCache {
    fn fresh(&self, max_age: std::time::Duration) -> Option<Arc<CurrentPolicy>> {
        let entry = self
            .entry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entry
            .as_ref()
            .filter(|(read_at, _)| read_at.elapsed() < max_age)
            .map(|(_, policy)| Arc::clone(policy))
    }

    fn put(&self, policy: Arc<CurrentPolicy>) {
        let mut entry = self
            .entry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *entry = Some((Instant::now(), policy));
    }
}

impl Service {
    /// The policy in force (read from the database at most once per refresh interval).
    pub async fn policy(&self) -> Result<Arc<CurrentPolicy>, StoreError> {
        if let Some(policy) = self.policy_cache.fresh(self.settings.policy_refresh) {
            return Ok(policy);
        }
        let current = Arc::new(self.load_policy().await?);
        self.policy_cache.put(Arc::clone(&current));
        Ok(current)
    }

    /// Whether `user` must have a second factor (so cannot turn 2FA off): an administrator
    /// picked them, they are one, or the policy requires it of everyone.
    pub async fn two_factor_required(&self, user: &User) -> Result<bool, StoreError> {
        Ok(self.policy().await?.requires_two_factor(user))
    }

    /// The second-factor methods the policy allows now.
    pub async fn allowed_methods(&self) -> Result<Vec<Method>, StoreError> {
        Ok(self.policy().await?.policy.allowed_methods.clone())
    }

    async fn load_policy(&self) -> Result<CurrentPolicy, StoreError> {
        let Some(stored) = self.stores.policy.load_policy().await? else {
            return Ok(CurrentPolicy {
                policy: SecurityPolicy::from_settings(&self.settings),
                everyone_since: None,
                version: 0,
                updated_at: None,
                updated_by: None,
            });
        };
        let document: PolicyDocument = serde_json::from_str(&stored.document)
            .map_err(|error| StoreError::Unexpected(anyhow::anyhow!("stored policy: {error}")))?;
        Ok(CurrentPolicy {
            policy: document.policy,
            everyone_since: document.everyone_since,
            version: stored.version,
            updated_at: Some(stored.updated_at),
            updated_by: stored.updated_by,
        })
    }

    /// Applies `change` to the policy read at `expected_version` (`None`: the current one) and
    /// saves it, recording who did it (`None`: the command line). Every instance applies it
    /// within its refresh interval; this one at once.
    #[tracing::instrument(skip(self, change))]
    pub async fn change_policy(
        &self,
        actor: Option<UserId>,
        change: &PolicyChange,
        expected_version: Option<u64>,
    ) -> Result<Arc<CurrentPolicy>, PolicyError> {
        let current = self.load_policy().await?;
        if expected_version.is_some_and(|expected| expected != current.version) {
            return Err(PolicyError::Conflict);
        }
        let next = current.policy.apply(change);
        next.check()?;
        self.refuse_locking_out(actor, &next).await?;
        // Whole seconds: the precision the store keeps, so the answer equals a later read.
        let now = self
            .clock
            .now()
            .replace_nanosecond(0)
            .unwrap_or(self.clock.now());
        let everyone_since = match (current.policy.two_factor, next.two_factor) {
            (TwoFactorRule::Everyone, TwoFactorRule::Everyone) => current.everyone_since,
            (_, TwoFactorRule::Everyone) => Some(now),
            (_, TwoFactorRule::Admins) => None,
        };
        let document = serde_json::to_string(&PolicyDocument {
            policy: next.clone(),
            everyone_since,
        })
        .map_err(anyhow::Error::new)?;
        // Recorded before it is saved: a change that cannot be recorded is not made.
        self.audit(
            Event::by(EventKind::PolicyChanged, actor, None)
                .with("version", current.version + 1)
                .with("changed", changed_fields(&current.policy, &next)),
        )
        .await?;
        let Some(version) = self
            .stores
            .policy
            .save_policy(&document, current.version, actor, now)
            .await?
        else {
            return Err(PolicyError::Conflict);
        };
        tracing::info!(version, "security policy changed");
        let saved = Arc::new(CurrentPolicy {
            policy: next,
            everyone_since,
            version,
            updated_at: Some(now),
            updated_by: actor,
        });
        self.policy_cache.put(Arc::clone(&saved));
        Ok(saved)
    }
}

impl Service {
    /// Refuses a policy that would leave the administrator saving it without a second factor
    /// they can use: their very next request would be refused, and with every administrator in
    /// that position only the command line could undo it.
    async fn refuse_locking_out(
        &self,
        actor: Option<UserId>,
        next: &SecurityPolicy,
    ) -> Result<(), PolicyError> {
        let Some(actor) = actor else {
            return Ok(());
        };
        let Some(user) = self.stores.users.user_by_id(actor).await? else {
            return Ok(());
        };
        let enrolled = self
            .enrolled_methods(&user)
            .await
            .map_err(|error| PolicyError::Unexpected(anyhow::Error::new(error)))?;
        let usable = enrolled
            .iter()
            .any(|method| *method != Method::RecoveryCode && next.allows(*method));
        if usable || enrolled.is_empty() {
            return Ok(());
        }
        Err(PolicyError::Invalid(
            "keep a method you have set up among the allowed methods, or you could not use the \
             administration any more: set up one of the others first"
                .to_owned(),
        ))
    }
}

/// The names and new values of the settings that differ.
fn changed_fields(before: &SecurityPolicy, after: &SecurityPolicy) -> serde_json::Value {
    let before = serde_json::to_value(before).unwrap_or_default();
    let after = serde_json::to_value(after).unwrap_or_default();
    let mut changed = serde_json::Map::new();
    if let (Some(before), Some(after)) = (before.as_object(), after.as_object()) {
        for (name, value) in after {
            if before.get(name) != Some(value) {
                changed.insert(name.clone(), value.clone());
            }
        }
    }
    serde_json::Value::Object(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::Email;

    fn policy() -> CurrentPolicy {
        CurrentPolicy {
            policy: SecurityPolicy::from_settings(&ServiceSettings::default()),
            everyone_since: None,
            version: 0,
            updated_at: None,
            updated_by: None,
        }
    }

    fn day(n: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap() + Duration::days(n)
    }

    fn user(is_admin: bool, required_since: Option<i64>) -> User {
        User {
            id: UserId::random(),
            email: Email::parse("ann@example.com").unwrap(),
            password_hash: String::new(),
            password_change_required: false,
            is_admin,
            require_2fa: required_since.is_some(),
            require_2fa_since: required_since.map(day),
            email_verified: false,
            disabled: false,
            created_at: day(0),
            last_login_at: None,
        }
    }

    #[test]
    fn the_defaults_pass_the_checks_and_ranges_are_enforced() {
        let base = policy().policy;
        base.check().unwrap();
        let bad = [
            PolicyChange {
                allowed_methods: Some(vec![]),
                ..Default::default()
            },
            PolicyChange {
                allowed_methods: Some(vec![Method::RecoveryCode]),
                ..Default::default()
            },
            PolicyChange {
                lockout_free_failures: Some(101),
                ..Default::default()
            },
            PolicyChange {
                session_idle_timeout_minutes: Some(600),
                session_absolute_timeout_minutes: Some(60),
                ..Default::default()
            },
            PolicyChange {
                recovery_code_count: Some(2),
                ..Default::default()
            },
        ];
        for change in bad {
            assert!(
                matches!(base.apply(&change).check(), Err(PolicyError::Invalid(_))),
                "{change:?}"
            );
        }
        let methods = base.apply(&PolicyChange {
            allowed_methods: Some(vec![Method::Sms, Method::Totp, Method::Sms]),
            ..Default::default()
        });
        assert_eq!(methods.allowed_methods, vec![Method::Totp, Method::Sms]);
        assert!(methods.allows(Method::RecoveryCode) && !methods.allows(Method::Email));
    }

    #[test]
    fn who_must_enroll_and_when() {
        let mut current = policy();
        let plain = user(false, None);
        assert!(!current.requires_two_factor(&plain));
        assert!(!current.enrollment_due(&plain, day(100)));
        let admin = user(true, None);
        assert!(current.requires_two_factor(&admin) && current.enrollment_due(&admin, day(0)));
        let picked = user(false, Some(3));
        assert!(current.enrollment_due(&picked, day(3)));

        current.policy.grace_period_days = 7;
        assert!(
            current.enrollment_due(&picked, day(3)),
            "no grace for picked users"
        );
        assert!(
            current.enrollment_due(&admin, day(0)),
            "no grace for admins"
        );
        assert!(!current.enrollment_due(&plain, day(100)));

        current.policy.two_factor = TwoFactorRule::Everyone;
        current.everyone_since = Some(day(20));
        assert!(current.requires_two_factor(&plain));
        assert!(!current.enrollment_due(&plain, day(26)));
        assert!(current.enrollment_due(&plain, day(27)));
        let mut newcomer = user(false, None);
        newcomer.created_at = day(30);
        assert!(
            !current.enrollment_due(&newcomer, day(36)),
            "grace from creation"
        );
        assert!(current.enrollment_due(&newcomer, day(37)));
    }
}
