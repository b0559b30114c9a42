//! The SQLite schema, as an ordered list of migrations, and the code that applies them.
//!
//! Tables are `STRICT`, so a value of the wrong type is refused on write rather than found on
//! read. Booleans are INTEGER 0/1 and timestamps unix seconds.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::migration::{Migration, refuse_newer_schema};

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: r#"
CREATE TABLE users (
    id TEXT NOT NULL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    password_change_required INTEGER NOT NULL CHECK (password_change_required IN (0, 1)),
    is_admin INTEGER NOT NULL CHECK (is_admin IN (0, 1)),
    require_2fa INTEGER NOT NULL CHECK (require_2fa IN (0, 1)),
    email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_login_at INTEGER
) STRICT;

CREATE TABLE sessions (
    id_hash BLOB NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX sessions_user_id ON sessions(user_id);
"#,
    },
    Migration {
        version: 2,
        sql: r#"
CREATE TABLE totp_authenticators (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits INTEGER NOT NULL CHECK (digits BETWEEN 6 AND 8),
    period_seconds INTEGER NOT NULL CHECK (period_seconds > 0),
    active INTEGER NOT NULL CHECK (active IN (0, 1)),
    last_used_step INTEGER CHECK (last_used_step >= 0),
    created_at INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_used_at INTEGER
) STRICT;

-- At most one active and at most one pending authenticator per user.
CREATE UNIQUE INDEX totp_authenticators_one_active ON totp_authenticators(user_id) WHERE active;
CREATE UNIQUE INDEX totp_authenticators_one_pending ON totp_authenticators(user_id) WHERE NOT active;
-- The partial indexes serve only queries that name `active`; this one serves the rest
-- (deleting all of a user's factors, and the cascade when a user is deleted).
CREATE INDEX totp_authenticators_user_id ON totp_authenticators(user_id);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL CHECK (length(code_hash) = 32),
    created_at INTEGER NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, code_hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE throttle_failures (
    key TEXT NOT NULL PRIMARY KEY,
    failures INTEGER NOT NULL CHECK (failures > 0),
    last_failure_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    },
    Migration {
        version: 3,
        sql: r#"
-- The delivery queue. A pending row holds its message sealed under the master key (the body
-- carries a one-time code) and is due at next_attempt_at; a worker leases it until
-- claimed_until. A sent row is deleted. A row given up becomes 'failed': its message is erased
-- and its error kept for the administrator.
CREATE TABLE deliveries (
    id TEXT NOT NULL PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'failed')),
    key_id TEXT,
    sealed_payload BLOB,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER,
    claimed_until INTEGER,
    last_error TEXT,
    last_failed_at INTEGER,
    CHECK (
        (status = 'pending' AND key_id IS NOT NULL AND sealed_payload IS NOT NULL
            AND next_attempt_at IS NOT NULL)
        OR (status = 'failed' AND key_id IS NULL AND sealed_payload IS NULL
            AND next_attempt_at IS NULL AND claimed_until IS NULL
            AND last_error IS NOT NULL AND last_failed_at IS NOT NULL)
    )
) STRICT;

CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_failures ON deliveries(last_failed_at) WHERE last_error IS NOT NULL;
"#,
    },
    Migration {
        version: 4,
        sql: r#"
-- One-time codes sent by email or SMS: at most one live code per user and purpose (a new send
-- overwrites the row), stored as a hash, consumed by a conditional UPDATE on used_at / tries.
CREATE TABLE one_time_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose <> ''),
    destination TEXT NOT NULL,
    code_hash BLOB NOT NULL CHECK (length(code_hash) = 32),
    tries INTEGER NOT NULL DEFAULT 0 CHECK (tries >= 0),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, purpose)
) STRICT, WITHOUT ROWID;

-- Sends of one-time codes, counted per key (user and purpose, or destination) by the resend
-- throttle and deleted once older than its longest window.
CREATE TABLE code_sends (
    key TEXT NOT NULL,
    sent_at INTEGER NOT NULL
) STRICT;

CREATE INDEX code_sends_key_sent_at ON code_sends(key, sent_at);
"#,
    },
    Migration {
        version: 5,
        sql: r#"
-- A user's verified phone (E.164): the SMS factor and the fallback phone for a reset.
CREATE TABLE phone_factors (
    user_id TEXT NOT NULL PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL CHECK (phone LIKE '+%'),
    verified_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Email codes enabled as a user's second factor, and since when.
CREATE TABLE email_factors (
    user_id TEXT NOT NULL PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    enabled_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Inbound phone checks: the user texts a shown code from their phone to the system number.
-- One per user (a new check overwrites the row); the webhook finds it by phone and code hash
-- and marks it received, then the user's session takes (deletes) it.
CREATE TABLE inbound_phone_checks (
    user_id TEXT NOT NULL PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    code_hash BLOB NOT NULL CHECK (length(code_hash) = 32),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    received_at INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX inbound_phone_checks_phone ON inbound_phone_checks(phone);
"#,
    },
    Migration {
        version: 6,
        sql: r#"
-- Since when 2FA is required of the user (the policy's grace period counts from here); set
-- only while it is. Users required before this version count from their last update.
ALTER TABLE users ADD COLUMN require_2fa_since INTEGER
    CHECK (require_2fa_since IS NULL OR require_2fa = 1);
UPDATE users SET require_2fa_since = updated_at WHERE require_2fa = 1;

-- The organisation's security policy: one JSON document, saved only over the version it was
-- read at.
CREATE TABLE security_policy (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    updated_at INTEGER NOT NULL,
    -- No foreign key: the record of who saved it outlives the user.
    updated_by TEXT
) STRICT;

-- The audit log, a hash chain: seq is assigned by the append (the last seq + 1, never reused,
-- so no AUTOINCREMENT), times are unix milliseconds, and actor and subject carry no foreign
-- key because the log outlives the users it names. Only retention deletes, and only the oldest.
CREATE TABLE audit_events (
    seq INTEGER NOT NULL PRIMARY KEY CHECK (seq > 0),
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind <> ''),
    actor_id TEXT,
    subject_id TEXT,
    ip TEXT,
    user_agent TEXT,
    detail TEXT NOT NULL,
    key_id TEXT NOT NULL,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;

-- Each index ends in the rowid (seq), so a filtered page comes newest first from the index.
CREATE INDEX audit_events_actor ON audit_events(actor_id);
CREATE INDEX audit_events_subject ON audit_events(subject_id);
CREATE INDEX audit_events_kind ON audit_events(kind);
CREATE INDEX audit_events_at ON audit_events(at_ms);

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

-- Where the chain starts once retention removed its oldest entries: the last removed one.
CREATE TABLE audit_anchor (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL CHECK (seq > 0),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
"#,
    },
    Migration {
        version: 7,
        sql: r#"
-- Secure messages. The content (the data key sealed under the master key, as key_id and
-- wrapped_key, and the subject and body sealed under the data key) is present exactly while
-- the message is not erased; erasing NULLs it and deletes the attachments in one transaction,
-- and the row stays so that both parties are told why the message is gone. A draft has no
-- sent_at yet.
CREATE TABLE messages (
    id TEXT NOT NULL PRIMARY KEY,
    sender_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    recipient_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_id TEXT,
    wrapped_key BLOB,
    sealed_subject BLOB,
    sealed_body BLOB,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    delete_after_read INTEGER NOT NULL CHECK (delete_after_read IN (0, 1)),
    sent_at INTEGER,
    read_at INTEGER,
    erased_at INTEGER,
    erased_reason TEXT CHECK (erased_reason IN ('expired', 'deleted')),
    CHECK (
        (erased_at IS NULL AND erased_reason IS NULL
            AND key_id IS NOT NULL AND wrapped_key IS NOT NULL
            AND sealed_subject IS NOT NULL AND sealed_body IS NOT NULL)
        OR (erased_at IS NOT NULL AND erased_reason IS NOT NULL
            AND key_id IS NULL AND wrapped_key IS NULL
            AND sealed_subject IS NULL AND sealed_body IS NULL)
    )
) STRICT;

-- A user's messages, newest first, from each side; also the cascades when a user is deleted.
CREATE INDEX messages_sender ON messages(sender_id, created_at);
CREATE INDEX messages_recipient ON messages(recipient_id, created_at);
-- The messages still to erase when they expire.
CREATE INDEX messages_expiry ON messages(expires_at) WHERE erased_at IS NULL;

-- Attachments, each sealed under its message's data key in numbered chunks. An upload is
-- complete once its size and chunk count are recorded; only complete ones are listed.
CREATE TABLE message_attachments (
    id TEXT NOT NULL PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    sealed_name BLOB NOT NULL,
    size INTEGER CHECK (size >= 0),
    chunks INTEGER CHECK (chunks >= 0),
    complete INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
    created_at INTEGER NOT NULL,
    CHECK (
        (complete = 0 AND size IS NULL AND chunks IS NULL)
        OR (complete = 1 AND size IS NOT NULL AND chunks IS NOT NULL)
    )
) STRICT;

CREATE INDEX message_attachments_message ON message_attachments(message_id, created_at);
CREATE INDEX message_attachments_uploads ON message_attachments(created_at) WHERE complete = 0;

-- A rowid table, not WITHOUT ROWID: a chunk (up to 256 KiB sealed) then lives in overflow
-- pages of its own instead of bloating the pages of a clustered index.
CREATE TABLE message_chunks (
    attachment_id TEXT NOT NULL REFERENCES message_attachments(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL CHECK (seq >= 0),
    sealed BLOB NOT NULL,
    UNIQUE (attachment_id, seq)
) STRICT;

-- Links that let a recipient who cannot sign in yet take a first session: only the SHA-256
-- of the token is stored, and using one deletes every invitation of its user.
CREATE TABLE message_invitations (
    token_hash BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    choose_password INTEGER NOT NULL CHECK (choose_password IN (0, 1)),
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX message_invitations_user ON message_invitations(user_id);
CREATE INDEX message_invitations_message ON message_invitations(message_id);
CREATE INDEX message_invitations_expiry ON message_invitations(expires_at);
"#,
    },
];

/// Applies every pending migration, each in its own transaction.
///
/// Transactions are IMMEDIATE: they take the write lock before reading `schema_migrations`, so
/// two processes opening the same file at once apply each migration exactly once (the second
/// waits on the busy timeout, then sees the version recorded).
pub(crate) fn run(connection: &mut Connection) -> anyhow::Result<()> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("beginning the migration check")?;
    transaction
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at INTEGER NOT NULL
            ) STRICT;",
        )
        .context("creating schema_migrations")?;
    let newest: Option<i32> = transaction
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .context("reading the schema version")?;
    refuse_newer_schema(newest, MIGRATIONS)?;
    transaction
        .commit()
        .context("committing the migration check")?;

    for migration in MIGRATIONS {
        apply(connection, migration)
            .with_context(|| format!("applying SQLite migration {}", migration.version))?;
    }
    Ok(())
}

fn apply(connection: &mut Connection, migration: &Migration) -> anyhow::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied = transaction
        .query_row(
            "SELECT 1 FROM schema_migrations WHERE version = ?1",
            [migration.version],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if applied {
        return Ok(());
    }
    transaction.execute_batch(migration.sql)?;
    // The database's clock, because this crate takes no clock and the time is only a record.
    transaction.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())",
        [migration.version],
    )?;
    transaction.commit()?;
    tracing::info!(version = migration.version, "applied SQLite migration");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase() {
        assert!(
            MIGRATIONS
                .windows(2)
                .all(|pair| pair[0].version < pair[1].version)
        );
        assert!(MIGRATIONS.first().is_some_and(|first| first.version >= 1));
    }

    #[test]
    fn migrations_apply_to_an_empty_database_and_again() {
        let mut connection = Connection::open_in_memory().unwrap();
        run(&mut connection).unwrap();
        run(&mut connection).unwrap();
        let count: i64 = connection
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(count, MIGRATIONS.len() as i64);
    }
}
