//! The store traits: what the domain needs from a database, one trait per aggregate. The
//! `twofold-store` crate implements them for SQLite and PostgreSQL, and one conformance suite
//! holds both to the same behaviour.
//!
//! Every call that acknowledges a write returns only after the write is durable. Single-use
//! things change state with one conditional statement whose row count decides, so two requests
//! (or two instances) can never both win.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::email::Email;
use crate::session::{SessionIdHash, SessionRecord, SessionState};
use crate::user::{User, UserId};

mod audit;
mod deliveries;
mod messages;
mod overview;
mod throttle;

pub use audit::{
    AuditAnchor, AuditFilter, AuditRecord, AuditStore, ChainKey, NewAuditEvent, PolicyStore,
    StoredPolicy,
};
pub use deliveries::{
    Delivery, DeliveryCounts, DeliveryFailureState, DeliveryQueueStore, FailedDelivery,
    NewDelivery, PendingByChannel,
};
pub use messages::{
    AttachmentRecord, ErasedReason, InvitationRecord, MessageRecord, MessageStore, NewAttachment,
    NewInvitation, NewMessage, SealedContent,
};
pub use overview::{FactorOverview, TotpUse};
pub use throttle::{FailureCount, LockoutPolicy, ThrottleStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (e.g. the email address is taken).
    #[error("a record with the same key exists")]
    Conflict,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The fields of a user being created.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub password_hash: String,
    pub password_change_required: bool,
    pub is_admin: bool,
    pub require_2fa: bool,
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user; [`StoreError::Conflict`] when the email is taken.
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError>;

    /// Inserts `user` only when no user exists at all (first start). `false` when there were
    /// users already, or another instance created the first admin at the same moment.
    async fn insert_first_user(&self, user: &NewUser) -> Result<bool, StoreError>;

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Replaces the password hash and the "must change" flag, only while the stored hash is
    /// still `expected_hash`: of two concurrent password changes exactly one wins. `false` when
    /// there is no such user or the hash changed meanwhile.
    async fn set_password(
        &self,
        id: UserId,
        expected_hash: &str,
        password_hash: &str,
        change_required: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Replaces the hash only if it is still `old_hash` (rehash on login must not undo a password
    /// change that happened meanwhile).
    async fn replace_password_hash(
        &self,
        id: UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<bool, StoreError>;

    /// Requires (or stops requiring) 2FA. Turning it on records `now` as `require_2fa_since`
    /// unless it was on already (the earlier time stays); turning it off clears that time.
    /// `false` when there is no such user.
    async fn set_require_2fa(
        &self,
        id: UserId,
        required: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    async fn record_login(&self, id: UserId, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Marks the user's email address verified. `false` when there is no such user.
    async fn set_email_verified(&self, id: UserId, now: OffsetDateTime)
    -> Result<bool, StoreError>;

    async fn count_users(&self) -> Result<u64, StoreError>;

    /// Disables (or enables again) a user. `false` when there is no such user. Ending the
    /// user's sessions is the caller's job.
    async fn set_disabled(
        &self,
        id: UserId,
        disabled: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// One page of users for the administrators, ordered by email address, with the facts
    /// their two-factor status is derived from, and how many users match in all.
    async fn list_users(&self, query: &UserQuery<'_>) -> Result<UserPage, StoreError>;
}

/// Which users [`UserStore::list_users`] returns.
#[derive(Debug, Clone, Copy)]
pub struct UserQuery<'a> {
    /// Only users whose email address contains this text, ignoring ASCII case; the text is
    /// matched literally (`%` and `_` are not wildcards).
    pub search: Option<&'a str>,
    /// How many matching users to skip.
    pub offset: u64,
    pub limit: u32,
}

/// One user of a [`UserPage`], with the factors they have (whether or not the policy allows
/// them now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListing {
    pub user: User,
    pub has_totp: bool,
    pub has_phone: bool,
    pub has_email_factor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    pub users: Vec<UserListing>,
    /// How many users match the search, on every page.
    pub total: u64,
}

/// A session being created.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id_hash: SessionIdHash,
    pub user_id: UserId,
    pub state: SessionState,
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session whose `last_seen_at` is its `created_at`.
    async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError>;

    async fn session_by_id_hash(
        &self,
        id_hash: &SessionIdHash,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Moves a session to `new_state` under a new id, in one conditional update that succeeds
    /// only while the session still has id `old` and state `expected`. `false` means another
    /// request rotated or ended it first; the caller must then fail.
    async fn rotate_session(
        &self,
        old: &SessionIdHash,
        expected: SessionState,
        new: &SessionIdHash,
        new_state: SessionState,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Records activity for the idle timeout.
    async fn touch_session(
        &self,
        id_hash: &SessionIdHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// `true` when a session was deleted.
    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError>;

    /// Every stored session of a user (live or not yet purged), most recently used first.
    async fn sessions_of_user(&self, user_id: UserId) -> Result<Vec<SessionRecord>, StoreError>;

    /// Ends every session of a user but `keep`; returns how many ended.
    async fn delete_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<&SessionIdHash>,
    ) -> Result<u64, StoreError>;

    /// Deletes sessions idle since before `idle_before` or begun before `created_before`.
    async fn delete_expired_sessions(
        &self,
        idle_before: OffsetDateTime,
        created_before: OffsetDateTime,
    ) -> Result<u64, StoreError>;
}

/// A secret encrypted under a master key (see `crate::sealing`): the key's id, and the nonce
/// followed by the ciphertext and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

/// A TOTP authenticator being added.
#[derive(Debug, Clone)]
pub struct NewTotp {
    pub id: Uuid,
    pub user_id: UserId,
    pub secret: SealedSecret,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    pub digits: u32,
    pub period_seconds: u32,
    pub created_at: OffsetDateTime,
}

/// A stored TOTP authenticator: pending until its first code confirms it, then active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    pub id: Uuid,
    pub user_id: UserId,
    pub secret: SealedSecret,
    pub algorithm: String,
    pub digits: u32,
    pub period_seconds: u32,
    pub active: bool,
    /// The latest time step accepted; a code is accepted only for a later step.
    pub last_used_step: Option<u64>,
    pub created_at: OffsetDateTime,
    pub confirmed_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Stores a pending authenticator, replacing the user's previous pending one (an abandoned
    /// enrollment). The active one, if any, is untouched.
    async fn insert_pending_totp(&self, totp: &NewTotp) -> Result<(), StoreError>;

    async fn pending_totp(&self, user_id: UserId) -> Result<Option<TotpRecord>, StoreError>;

    async fn active_totp(&self, user_id: UserId) -> Result<Option<TotpRecord>, StoreError>;

    /// In one transaction: makes pending authenticator `id` of `user_id` active with `step` as its
    /// last used step (and the time as its last use), and deletes the user's previously active one. `false` (and no change) when
    /// `id` is not a pending authenticator of that user any more (e.g. a concurrent confirm won).
    async fn activate_totp(
        &self,
        user_id: UserId,
        id: Uuid,
        step: u64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// [`FactorStore::activate_totp`], and in the same transaction replaces the user's recovery
    /// codes (when `activation.recovery_codes` is given) and appends `activation.audit` to the
    /// audit log: a crash leaves the enrollment whole (authenticator, codes, audit entry) or
    /// absent. `false` (and no change at all) when `id` is not pending any more.
    async fn activate_totp_enrollment(
        &self,
        activation: &TotpActivation<'_>,
    ) -> Result<bool, StoreError>;

    /// Accepts time step `step` for active authenticator `id` only if it is later than its last
    /// used step: one conditional UPDATE, so of concurrent callers with the same code exactly one
    /// wins. Sets `last_used_at`.
    async fn consume_totp_step(
        &self,
        id: Uuid,
        step: u64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Replaces the user's recovery codes (every earlier one stops working) with these hashes.
    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        code_hashes: &[[u8; 32]],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Marks the unused code with this hash as used; one conditional UPDATE, exactly one winner.
    async fn consume_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Puts back a code spent at `used_at` by a sign-in that then lost its session (another
    /// request of the same session won the rotation): one conditional UPDATE, matching only
    /// that use. `false` when the code is gone or was used at another time.
    async fn release_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &[u8; 32],
        used_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    async fn recovery_codes_left(&self, user_id: UserId) -> Result<u32, StoreError>;

    /// Every factor the user has, in one read.
    async fn factor_overview(&self, user_id: UserId) -> Result<FactorOverview, StoreError>;

    /// The ids of the master keys that sealed the stored authenticators, queued deliveries and
    /// secure messages' data keys, so that start-up can refuse to run without a key the database needs.
    async fn sealed_key_ids(&self) -> Result<Vec<String>, StoreError>;

    // Sealed secrets across tables, for master-key rotation (`twofold keys rotate`).

    /// Up to `limit` sealed rows (authenticators, pending queued deliveries, data keys of secure
    /// messages not erased) whose key id is
    /// not `key_id`, each with what its associated data is built from.
    async fn sealed_rows_not_under(
        &self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError>;

    /// Compare-and-swap: replaces the sealed secret of `row` with `new` in one conditional
    /// UPDATE, only while the row still holds exactly `row.secret` (same key id and bytes).
    /// `false` (and no change) when the row changed or went meanwhile, so a concurrent write
    /// of a running server is never overwritten.
    async fn replace_sealed(&self, row: &SealedRow, new: &SealedSecret)
    -> Result<bool, StoreError>;

    /// How many sealed rows (authenticators, queued deliveries, message keys) each key id holds.
    async fn sealed_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// The user's verified phone: the SMS factor and the fallback phone for a reset.
    async fn phone_factor(&self, user_id: UserId) -> Result<Option<PhoneFactor>, StoreError>;

    /// Makes `phone` (E.164) the user's verified phone, replacing an earlier one.
    async fn set_phone_factor(
        &self,
        user_id: UserId,
        phone: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// When email codes were enabled as the user's second factor, if they are.
    async fn email_factor(&self, user_id: UserId) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Enables email codes as a second factor (idempotent: an earlier time is kept).
    async fn enable_email_factor(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Removes every second factor of the user in one transaction: authenticators (pending and
    /// active), recovery codes, the phone, email codes and a pending inbound phone check.
    async fn delete_all_factors(&self, user_id: UserId) -> Result<(), StoreError>;
}

/// What [`FactorStore::activate_totp_enrollment`] writes in one transaction.
#[derive(Clone, Copy)]
pub struct TotpActivation<'a> {
    pub user_id: UserId,
    /// The pending authenticator to make active.
    pub id: Uuid,
    /// The time step its confirmation code used.
    pub step: u64,
    pub now: OffsetDateTime,
    /// The hashes of the user's new recovery codes (a first factor), replacing any earlier.
    pub recovery_codes: Option<&'a [[u8; 32]]>,
    pub audit: &'a NewAuditEvent,
    pub key: ChainKey<'a>,
}

impl std::fmt::Debug for TotpActivation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpActivation")
            .field("user_id", &self.user_id)
            .field("id", &self.id)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// One sealed secret of the database, as master-key rotation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRow {
    /// The row's id in its table.
    pub id: Uuid,
    pub owner: SealedOwner,
    pub secret: SealedSecret,
}

/// Which table a [`SealedRow`] is in, with the columns its associated data names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedOwner {
    /// A TOTP authenticator (`totp_authenticators`) of this user.
    Totp { user_id: UserId },
    /// A pending queued message (`deliveries`).
    Delivery {
        channel: crate::delivery::DeliveryChannel,
        recipient: String,
    },
    /// The data key of a secure message (`messages.wrapped_key`); the row id is the message's.
    Message,
}

/// A user's verified phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneFactor {
    /// E.164, e.g. `+447700900123`.
    pub phone: String,
    pub verified_at: OffsetDateTime,
}

/// A one-time code being sent by email or SMS (see `crate::codes`). Only its hash is stored.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub user_id: UserId,
    /// What the code is for (`email_verify`, `login_sms`, ...): a user holds one code per
    /// purpose.
    pub purpose: &'a str,
    /// Where it was sent: the email address, or the phone number in E.164.
    pub destination: String,
    pub code_hash: [u8; 32],
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// The outcome of checking a one-time code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// The right code: it is now used, and this is where it had been sent.
    Accepted { destination: String },
    /// A wrong code, counted as a try against the live code; `tries_left` more are allowed
    /// (0: the code is dead).
    Wrong { tries_left: u32 },
    /// There is no live code: never sent, replaced, expired, used, or out of tries.
    NoCode,
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores the user's code for `code.purpose`, replacing any earlier one (which stops
    /// working) with a fresh count of tries.
    async fn replace_code(&self, code: &NewCode<'_>) -> Result<(), StoreError>;

    /// Checks a code against the user's live code for `purpose`. The right one is accepted by
    /// one conditional UPDATE (unused, unexpired, fewer than [`crate::codes::MAX_TRIES`]
    /// tries), so of concurrent callers with it exactly one wins; a wrong one adds a try by
    /// another conditional UPDATE, so no try is lost. Once the tries are spent even the right
    /// code gets [`CodeCheck::NoCode`].
    async fn consume_code(
        &self,
        user_id: UserId,
        purpose: &str,
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<CodeCheck, StoreError>;

    /// Records one send under `key` (e.g. `user:<id>:<purpose>`, `dest:<destination>`) for
    /// the resend throttle.
    async fn record_send(&self, key: &str, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Admits one send only if, for every limit, fewer than `limit.max` sends are recorded
    /// under `limit.key` at or after `limit.since`; then records one send at `now` under each
    /// distinct key of `limits`. Check and record are one atomic step (SQLite: one IMMEDIATE
    /// transaction; PostgreSQL: a transaction holding an advisory lock per key), so concurrent
    /// callers, on any instance, never together exceed a limit. `false`: refused, nothing
    /// recorded.
    async fn admit_send(
        &self,
        limits: &[SendLimit<'_>],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// How many sends under `key` were recorded at or after `since`.
    async fn sends_since(&self, key: &str, since: OffsetDateTime) -> Result<u32, StoreError>;

    /// The earliest send under `key` at or after `since`, if any: when the throttle refuses,
    /// this says when its window will have moved past that send.
    async fn earliest_send_since(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Forgets sends recorded before `cutoff` (older than any throttle window); returns how
    /// many.
    async fn delete_sends_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError>;

    /// Stores the user's inbound phone check (the user texts a shown code from `phone` to the
    /// system number), replacing an earlier one, not yet received.
    async fn replace_inbound_check(&self, check: &NewInboundCheck) -> Result<(), StoreError>;

    /// Records that a text with the code whose hash is `code_hash` arrived from `phone`: one
    /// conditional UPDATE on the live (unexpired, not yet received) checks of that phone with
    /// that hash. Returns how many checks it completed (0 for an unknown or stale code).
    async fn mark_inbound_received(
        &self,
        phone: &str,
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Takes the user's received, unexpired inbound check: deletes it in one statement and
    /// returns its phone, so it completes once. `None` while nothing was received.
    async fn take_received_inbound(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError>;
}

/// One limit on sends (see [`CodeStore::admit_send`]).
#[derive(Debug, Clone, Copy)]
pub struct SendLimit<'a> {
    pub key: &'a str,
    pub since: OffsetDateTime,
    pub max: u32,
}

/// An inbound phone check being started (see [`CodeStore::replace_inbound_check`]).
#[derive(Debug, Clone)]
pub struct NewInboundCheck {
    pub user_id: UserId,
    /// E.164: only a text from this number completes the check.
    pub phone: String,
    /// SHA-256 of the phone and the code (the webhook knows the phone, not the user).
    pub code_hash: [u8; 32],
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// The schema version a database is at, beside the one this build migrates it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// The newest migration recorded in the database; `None` when none is.
    pub applied: Option<i32>,
    /// The newest migration this build knows.
    pub expected: i32,
}

impl SchemaVersion {
    /// Whether the database is at exactly the version this build expects: not behind (not yet
    /// migrated), and not ahead (migrated by a newer build while this one runs).
    pub fn is_current(&self) -> bool {
        self.applied == Some(self.expected)
    }
}

#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Reads the newest migration the database records (an error when it does not answer or
    /// has no `schema_migrations`): the readiness probe compares it with [`SchemaVersion::expected`].
    async fn schema_version(&self) -> Result<SchemaVersion, StoreError>;
}

/// The stores of one database, shared by the whole process.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub factors: Arc<dyn FactorStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub codes: Arc<dyn CodeStore>,
    pub deliveries: Arc<dyn DeliveryQueueStore>,
    pub policy: Arc<dyn PolicyStore>,
    pub audit: Arc<dyn AuditStore>,
    pub messages: Arc<dyn MessageStore>,
    pub health: Arc<dyn HealthCheck>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}
