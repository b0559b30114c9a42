//! The audit log: every security event (sign-ins, factors, codes, administrators' actions,
//! policy changes, lockouts), with time, actor, subject, IP address and user agent.
//!
//! Entries are append-only and chained: each carries an HMAC-SHA256, under a key derived from
//! the master key, of its content and of the entry before. Changing, removing or inserting an
//! entry anywhere but at the newest end breaks the chain, and someone with write access to the
//! database but not the master key cannot forge a chain that verifies
//! (`twofold audit verify`). Retention removes the oldest entries and keeps the last removed
//! one's hash as the anchor the remaining chain must start from; before it removes anything it
//! appends an `audit_purged` entry naming that anchor, so an anchor moved by anyone else (to
//! hide the start of the log) no longer matches what the chain itself recorded.

mod chain;

use std::future::Future;

pub(crate) use chain::hmac_sha256;
pub use chain::{ChainBreak, ChainVerifier, link_hash, to_hex, to_millis, unix_millis};

use crate::service::Service;
use crate::store::{AuditAnchor, AuditFilter, AuditRecord, ChainKey, NewAuditEvent, StoreError};
use crate::user::UserId;

/// Where a request came from, for the entries it causes. The server sets it around each
/// request; flows read it when they append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// Runs `future` with `context` as the origin of the audit entries it appends.
pub async fn with_context<F: Future>(context: RequestContext, future: F) -> F::Output {
    CONTEXT.scope(context, future).await
}

pub(crate) fn current_context() -> RequestContext {
    CONTEXT.try_with(Clone::clone).unwrap_or_default()
}

/// The longest user agent kept (the rest is cut off).
const USER_AGENT_LIMIT: usize = 256;

/// What happened. The names are the `kind` of the stored entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    SignInSucceeded,
    SignInFailed,
    SignedOut,
    PasswordChanged,
    FactorAdded,
    FactorRemoved,
    TwoFactorDisabled,
    TwoFactorReset,
    CodeSent,
    RecoveryCodeUsed,
    RecoveryCodesRenewed,
    EmailVerified,
    LockedOut,
    UserCreated,
    UserUpdated,
    UserDisabled,
    UserEnabled,
    InvitationSent,
    PolicyChanged,
    AuditPurged,
    MessageSent,
    MessageRead,
    MessageDownloaded,
    MessageExpired,
    MessageDeleted,
    InvitationAccepted,
}

impl EventKind {
    pub const ALL: [EventKind; 26] = [
        EventKind::SignInSucceeded,
        EventKind::SignInFailed,
        EventKind::SignedOut,
        EventKind::PasswordChanged,
        EventKind::FactorAdded,
        EventKind::FactorRemoved,
        EventKind::TwoFactorDisabled,
        EventKind::TwoFactorReset,
        EventKind::CodeSent,
        EventKind::RecoveryCodeUsed,
        EventKind::RecoveryCodesRenewed,
        EventKind::EmailVerified,
        EventKind::LockedOut,
        EventKind::UserCreated,
        EventKind::UserUpdated,
        EventKind::UserDisabled,
        EventKind::UserEnabled,
        EventKind::InvitationSent,
        EventKind::PolicyChanged,
        EventKind::AuditPurged,
        EventKind::MessageSent,
        EventKind::MessageRead,
        EventKind::MessageDownloaded,
        EventKind::MessageExpired,
        EventKind::MessageDeleted,
        EventKind::InvitationAccepted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SignInSucceeded => "sign_in_succeeded",
            EventKind::SignInFailed => "sign_in_failed",
            EventKind::SignedOut => "signed_out",
            EventKind::PasswordChanged => "password_changed",
            EventKind::FactorAdded => "factor_added",
            EventKind::FactorRemoved => "factor_removed",
            EventKind::TwoFactorDisabled => "two_factor_disabled",
            EventKind::TwoFactorReset => "two_factor_reset",
            EventKind::CodeSent => "code_sent",
            EventKind::RecoveryCodeUsed => "recovery_code_used",
            EventKind::RecoveryCodesRenewed => "recovery_codes_renewed",
            EventKind::EmailVerified => "email_verified",
            EventKind::LockedOut => "locked_out",
            EventKind::UserCreated => "user_created",
            EventKind::UserUpdated => "user_updated",
            EventKind::UserDisabled => "user_disabled",
            EventKind::UserEnabled => "user_enabled",
            EventKind::InvitationSent => "invitation_sent",
            EventKind::PolicyChanged => "policy_changed",
            EventKind::AuditPurged => "audit_purged",
            EventKind::MessageSent => "message_sent",
            EventKind::MessageRead => "message_read",
            EventKind::MessageDownloaded => "message_downloaded",
            EventKind::MessageExpired => "message_expired",
            EventKind::MessageDeleted => "message_deleted",
            EventKind::InvitationAccepted => "invitation_accepted",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// A short sentence for the pages ("Signed in", "A second factor was added", ...).
    pub fn describe(self) -> &'static str {
        match self {
            EventKind::SignInSucceeded => "Signed in",
            EventKind::SignInFailed => "Failed sign-in",
            EventKind::SignedOut => "Signed out",
            EventKind::PasswordChanged => "Password changed",
            EventKind::FactorAdded => "Second factor added",
            EventKind::FactorRemoved => "Second factor removed",
            EventKind::TwoFactorDisabled => "Two-factor authentication turned off",
            EventKind::TwoFactorReset => "Two-factor authentication reset",
            EventKind::CodeSent => "One-time code sent",
            EventKind::RecoveryCodeUsed => "Recovery code used",
            EventKind::RecoveryCodesRenewed => "New recovery codes made",
            EventKind::EmailVerified => "Email address verified",
            EventKind::LockedOut => "Locked out after failed attempts",
            EventKind::UserCreated => "User created",
            EventKind::UserUpdated => "User changed",
            EventKind::UserDisabled => "User disabled",
            EventKind::UserEnabled => "User enabled",
            EventKind::InvitationSent => "Invitation sent",
            EventKind::PolicyChanged => "Security policy changed",
            EventKind::AuditPurged => "Old audit entries removed (retention)",
            EventKind::MessageSent => "Secure message sent",
            EventKind::MessageRead => "Secure message opened",
            EventKind::MessageDownloaded => "Secure message attachment downloaded",
            EventKind::MessageExpired => "Secure message expired and erased",
            EventKind::MessageDeleted => "Secure message deleted",
            EventKind::InvitationAccepted => "Invitation link used",
        }
    }
}

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub actor: Option<UserId>,
    pub subject: Option<UserId>,
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// An event a user caused on their own account.
    pub fn own(kind: EventKind, user: UserId) -> Self {
        Self {
            kind,
            actor: Some(user),
            subject: Some(user),
            detail: serde_json::Map::new(),
        }
    }

    /// An event an administrator (or, with `None`, the command line) caused on `subject`.
    pub fn by(kind: EventKind, actor: Option<UserId>, subject: Option<UserId>) -> Self {
        Self {
            kind,
            actor,
            subject,
            detail: serde_json::Map::new(),
        }
    }

    /// Adds a detail (never a secret: codes, passwords and tokens stay out of the log).
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// What `twofold audit verify` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub checked: u64,
    pub anchor: Option<AuditAnchor>,
    pub broken: Option<ChainBreak>,
}

/// Entries read per batch when walking the chain.
const CHAIN_BATCH: u32 = 500;

/// The most entries one page of the log holds.
pub const MAX_AUDIT_PAGE: u32 = 500;

impl Service {
    /// Appends `event` to the audit log, with the origin of the current request. A security
    /// event that cannot be recorded fails the flow that caused it.
    pub async fn audit(&self, event: Event) -> Result<(), StoreError> {
        let record = self.audit_record(event);
        let keys = self.sealer.keys();
        let (id, key) = keys.current_audit_key();
        self.stores
            .audit
            .append_audit(&record, ChainKey { id, key })
            .await?;
        Ok(())
    }

    /// The entry `event` makes, with the origin of the current request, for a store call that
    /// appends it together with the change it records.
    pub(crate) fn audit_record(&self, event: Event) -> NewAuditEvent {
        let context = current_context();
        let user_agent = context
            .user_agent
            .map(|agent| agent.chars().take(USER_AGENT_LIMIT).collect::<String>());
        NewAuditEvent {
            at: to_millis(self.clock.now()),
            kind: event.kind.as_str().to_owned(),
            actor: event.actor,
            subject: event.subject,
            ip: context.ip,
            user_agent,
            detail: serde_json::Value::Object(event.detail).to_string(),
        }
    }

    /// Entries matching `filter`, newest first (its limit is kept within 1 to
    /// [`MAX_AUDIT_PAGE`]).
    pub async fn audit_log(
        &self,
        filter: &AuditFilter<'_>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let filter = AuditFilter {
            limit: filter.limit.clamp(1, MAX_AUDIT_PAGE),
            ..*filter
        };
        self.stores.audit.audit_events(&filter).await
    }

    /// The recent security activity of the user's account (entries about it, whoever caused
    /// them), newest first, for their account page. Of an entry someone else caused (an
    /// administrator), the user sees what happened, not that person's address, IP address or
    /// browser.
    pub async fn recent_activity(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut records = self
            .audit_log(&AuditFilter {
                subject: Some(user),
                limit,
                ..AuditFilter::default()
            })
            .await?;
        for record in &mut records {
            if record.event.actor != Some(user) {
                record.event.ip = None;
                record.event.user_agent = None;
                record.actor_email = None;
            }
        }
        Ok(records)
    }

    /// Up to `limit` entries after `after_seq`, oldest first: the export walks the log with
    /// this (JSON lines, in chain order, so an export can be verified on its own).
    pub async fn audit_batch(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.stores
            .audit
            .audit_chain(after_seq, limit.clamp(1, MAX_AUDIT_PAGE))
            .await
    }

    /// Walks the whole chain from the anchor and reports the first break, if any. An entry
    /// the store cannot even read (a field changed into something that does not parse) is a
    /// break too, not an error.
    pub async fn verify_audit_chain(&self) -> Result<ChainReport, StoreError> {
        let anchor = self.stores.audit.audit_anchor().await?;
        let mut verifier = ChainVerifier::new(anchor);
        let mut after = anchor.map_or(0, |anchor| anchor.seq);
        loop {
            let batch = match self.stores.audit.audit_chain(after, CHAIN_BATCH).await {
                Ok(batch) => batch,
                Err(StoreError::Unexpected(error)) => {
                    tracing::warn!(after, error = %format!("{error:#}"), "unreadable audit entry");
                    return Ok(ChainReport {
                        checked: verifier.checked(),
                        anchor,
                        broken: Some(ChainBreak::Unreadable { after }),
                    });
                }
                Err(other) => return Err(other),
            };
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for record in &batch {
                // An entry under a key this process has not loaded yet (another process
                // rotated the master key) makes the sealer re-read its keys.
                let keys = self.sealer.keys_knowing(&record.key_id);
                if let Err(broken) = verifier.check(record, |id| keys.audit_key(id)) {
                    return Ok(ChainReport {
                        checked: verifier.checked(),
                        anchor,
                        broken: Some(broken),
                    });
                }
            }
        }
        Ok(ChainReport {
            checked: verifier.checked(),
            anchor,
            broken: verifier.finish().err(),
        })
    }

    /// Retention: removes entries older than `keep`. Run periodically. First appends an
    /// `audit_purged` entry announcing the new anchor (the newest entry to go), then removes.
    pub async fn purge_old_audit_entries(&self, keep: time::Duration) -> Result<u64, StoreError> {
        let cutoff = self.clock.now() - keep;
        let newest_old = self
            .stores
            .audit
            .audit_events(&AuditFilter {
                until: Some(cutoff),
                limit: 1,
                ..AuditFilter::default()
            })
            .await?;
        let Some(last) = newest_old.first() else {
            return Ok(0);
        };
        self.audit(
            Event::by(EventKind::AuditPurged, None, None)
                .with("anchor_seq", last.seq)
                .with("anchor_hash", to_hex(&last.hash))
                .with("before", unix_millis(cutoff)),
        )
        .await?;
        let removed = self.stores.audit.purge_audit_before(cutoff).await?;
        tracing::info!(removed, "old audit entries removed");
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }
}
