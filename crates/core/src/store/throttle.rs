//! The failure counts behind every lockout and the per-address limit (see `crate::throttle`).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// Consecutive failures of one kind for one subject (e.g. second-factor codes of one user),
/// kept in the database so that limits hold across sessions and instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: u32,
    pub last_failure_at: OffsetDateTime,
}

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Adds one failure under `key` atomically and returns the new state. A failure that comes
    /// `forget_after_seconds` or more after the last one starts the count again at 1 (`0`: never
    /// forget), in the same statement.
    async fn record_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
        forget_after_seconds: i64,
    ) -> Result<FailureCount, StoreError>;

    async fn failures(&self, key: &str) -> Result<Option<FailureCount>, StoreError>;

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError>;

    /// Takes one attempt under `key` in advance, counted as a failure until the caller learns
    /// otherwise: unless `key` is locked at `now`, adds one failure (last at `now`) and returns
    /// the new count; when locked, changes nothing and returns `None`. Locked means `failures
    /// >= policy.free_failures` and `last_failure_at + wait > now`, where `wait` is
    /// `policy.first_wait_seconds << min(failures - free_failures, 16)`, capped at
    /// `policy.longest_wait_seconds` (the rule of `crate::throttle::remaining_lockout`). A key
    /// whose last failure is `policy.forget_after_seconds` (when not 0) or more before `now` is
    /// never locked, and its count starts again at 1. One conditional upsert decides, so of
    /// concurrent callers no more get an attempt than the policy allows, on any instance.
    async fn take_attempt(
        &self,
        key: &str,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<FailureCount>, StoreError>;

    /// Gives back an attempt taken by [`ThrottleStore::take_attempt`] that turned out not to be
    /// a guess (a replayed code, a code that no longer exists): one failure fewer, and no row
    /// once none is left. Never goes below zero.
    async fn give_back_attempt(&self, key: &str) -> Result<(), StoreError>;
}

/// The lockout rule [`ThrottleStore::take_attempt`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub free_failures: u32,
    pub first_wait_seconds: i64,
    pub longest_wait_seconds: i64,
    /// Failures are forgotten once none has come for this long (`0`: kept until cleared).
    pub forget_after_seconds: i64,
}
