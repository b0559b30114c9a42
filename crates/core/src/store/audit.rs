//! The store traits of the security policy and the audit log (see `crate::policy` and
//! `crate::audit`).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::user::UserId;

/// The organisation's security policy as stored: a JSON document (see `crate::policy`), so
/// that new settings need no migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub document: String,
    /// Incremented by every save, starting at 1.
    pub version: u64,
    pub updated_at: OffsetDateTime,
    pub updated_by: Option<UserId>,
}

#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The saved policy; `None` until one was saved.
    async fn load_policy(&self) -> Result<Option<StoredPolicy>, StoreError>;

    /// Saves the policy only while the stored version is still `expected_version` (0: none
    /// saved yet), and returns the new version; `None` (and no change) when another save came
    /// first. Of two concurrent saves from the same version exactly one wins.
    async fn save_policy(
        &self,
        document: &str,
        expected_version: u64,
        updated_by: Option<UserId>,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError>;
}

/// A security event being appended to the audit log (see `crate::audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// Whole milliseconds (the stored precision, which the chain hash covers).
    pub at: OffsetDateTime,
    /// `sign_in_failed`, `factor_added`, ...
    pub kind: String,
    /// Who did it: the signed-in user or administrator; `None` for the system or someone
    /// unknown.
    pub actor: Option<UserId>,
    /// Whose account it concerns.
    pub subject: Option<UserId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object with the details (never a secret).
    pub detail: String,
}

/// A stored audit entry: the event, its place in the chain and the chain's hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1, 2, 3, ...: assigned on append, without gaps.
    pub seq: u64,
    pub event: NewAuditEvent,
    /// The id of the master key whose derived chain key made `hash`.
    pub key_id: String,
    /// The hash of the entry before (or of the anchor; all zeros for the first entry ever).
    pub prev_hash: [u8; 32],
    /// `crate::audit::link_hash` of this entry under the chain key.
    pub hash: [u8; 32],
    /// The current email addresses of actor and subject, for people reading the log (not part
    /// of the chain).
    pub actor_email: Option<String>,
    pub subject_email: Option<String>,
}

/// The key the chain hashes are made with.
#[derive(Clone, Copy)]
pub struct ChainKey<'a> {
    pub id: &'a str,
    pub key: &'a [u8; 32],
}

impl std::fmt::Debug for ChainKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Which audit entries [`AuditStore::audit_events`] returns, newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFilter<'a> {
    /// Only entries whose actor or subject is this user.
    pub user: Option<UserId>,
    /// Only entries about this user's account.
    pub subject: Option<UserId>,
    pub kind: Option<&'a str>,
    /// At or after.
    pub since: Option<OffsetDateTime>,
    /// Before.
    pub until: Option<OffsetDateTime>,
    /// Only entries with a smaller sequence number (the next page).
    pub before_seq: Option<u64>,
    pub limit: u32,
}

/// Where the chain starts after retention removed its oldest entries: the last removed
/// entry's number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditAnchor {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// The append-only audit log. Nothing updates or deletes an entry but retention, which
/// removes the oldest ones and moves the anchor in the same transaction.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `event` as the next entry: in one serialised step (SQLite: an IMMEDIATE
    /// transaction; PostgreSQL: a transaction holding an advisory lock) reads the last entry's
    /// seq and hash (or the anchor's, or 0 and zeros), and inserts seq + 1 with `prev_hash` and
    /// `hash = crate::audit::link_hash(key.key, &prev_hash, seq, event)`, so that instances
    /// appending at once still make one chain. Returns the seq.
    async fn append_audit(
        &self,
        event: &NewAuditEvent,
        key: ChainKey<'_>,
    ) -> Result<u64, StoreError>;

    /// Entries matching `filter`, newest first, at most `filter.limit`.
    async fn audit_events(&self, filter: &AuditFilter<'_>) -> Result<Vec<AuditRecord>, StoreError>;

    /// Up to `limit` entries with seq greater than `after_seq`, oldest first (export, verify).
    async fn audit_chain(&self, after_seq: u64, limit: u32)
    -> Result<Vec<AuditRecord>, StoreError>;

    async fn audit_anchor(&self) -> Result<Option<AuditAnchor>, StoreError>;

    /// Retention: deletes the oldest entries, up to and including the newest one from before
    /// `cutoff` (always a prefix of the chain, so no gap opens even if instances' clocks
    /// differ), and in the same transaction makes the last deleted one the anchor. Returns how
    /// many were deleted.
    async fn purge_audit_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError>;
}
