//! The PostgreSQL schema, as an ordered list of migrations, and the code that applies them.

use anyhow::Context;
use deadpool_postgres::Client;

use super::locked_transaction;
use crate::migration::{Migration, refuse_newer_schema};

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL CONSTRAINT users_email_key UNIQUE,
    password_hash TEXT NOT NULL,
    password_change_required BOOLEAN NOT NULL,
    is_admin BOOLEAN NOT NULL,
    require_2fa BOOLEAN NOT NULL,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login_at BIGINT
);

CREATE TABLE sessions (
    id_hash BYTEA PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE INDEX sessions_user_id ON sessions(user_id);
"#,
    },
    Migration {
        version: 2,
        sql: r#"
CREATE TABLE totp_authenticators (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    sealed_secret BYTEA NOT NULL,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits INTEGER NOT NULL CHECK (digits BETWEEN 6 AND 8),
    period_seconds INTEGER NOT NULL CHECK (period_seconds > 0),
    active BOOLEAN NOT NULL,
    last_used_step BIGINT CHECK (last_used_step >= 0),
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_used_at BIGINT
);

-- At most one active and at most one pending authenticator per user.
CREATE UNIQUE INDEX totp_authenticators_one_active ON totp_authenticators(user_id) WHERE active;
CREATE UNIQUE INDEX totp_authenticators_one_pending ON totp_authenticators(user_id) WHERE NOT active;
-- The partial indexes serve only queries that name `active`; this one serves the rest
-- (deleting all of a user's factors, and the cascade when a user is deleted).
CREATE INDEX totp_authenticators_user_id ON totp_authenticators(user_id);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL CHECK (octet_length(code_hash) = 32),
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE throttle_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL CHECK (failures > 0),
    last_failure_at BIGINT NOT NULL
);
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
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'failed')),
    key_id TEXT,
    sealed_payload BYTEA,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT,
    claimed_until BIGINT,
    last_error TEXT,
    last_failed_at BIGINT,
    CHECK (
        (status = 'pending' AND key_id IS NOT NULL AND sealed_payload IS NOT NULL
            AND next_attempt_at IS NOT NULL)
        OR (status = 'failed' AND key_id IS NULL AND sealed_payload IS NULL
            AND next_attempt_at IS NULL AND claimed_until IS NULL
            AND last_error IS NOT NULL AND last_failed_at IS NOT NULL)
    )
);

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
    code_hash BYTEA NOT NULL CHECK (octet_length(code_hash) = 32),
    tries INTEGER NOT NULL DEFAULT 0 CHECK (tries >= 0),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, purpose)
);

-- Sends of one-time codes, counted per key (user and purpose, or destination) by the resend
-- throttle and deleted once older than its longest window.
CREATE TABLE code_sends (
    key TEXT NOT NULL,
    sent_at BIGINT NOT NULL
);

CREATE INDEX code_sends_key_sent_at ON code_sends(key, sent_at);
"#,
    },
    Migration {
        version: 5,
        sql: r#"
-- A user's verified phone (E.164): the SMS factor and the fallback phone for a reset.
CREATE TABLE phone_factors (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL CHECK (phone LIKE '+%'),
    verified_at BIGINT NOT NULL
);

-- Email codes enabled as a user's second factor, and since when.
CREATE TABLE email_factors (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    enabled_at BIGINT NOT NULL
);

-- Inbound phone checks: the user texts a shown code from their phone to the system number.
-- One per user (a new check overwrites the row); the webhook finds it by phone and code hash
-- and marks it received, then the user's session takes (deletes) it.
CREATE TABLE inbound_phone_checks (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    code_hash BYTEA NOT NULL CHECK (octet_length(code_hash) = 32),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    received_at BIGINT
);

CREATE INDEX inbound_phone_checks_phone ON inbound_phone_checks(phone);
"#,
    },
    Migration {
        version: 6,
        sql: r#"
-- Since when 2FA is required of the user (the policy's grace period counts from here); set
-- only while it is. Users required before this version count from their last update.
ALTER TABLE users ADD COLUMN require_2fa_since BIGINT,
    ADD CONSTRAINT users_require_2fa_since_check
        CHECK (require_2fa_since IS NULL OR require_2fa);
UPDATE users SET require_2fa_since = updated_at WHERE require_2fa;

-- The organisation's security policy: one JSON document, saved only over the version it was
-- read at.
CREATE TABLE security_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    updated_at BIGINT NOT NULL,
    -- No foreign key: the record of who saved it outlives the user.
    updated_by TEXT
);

-- The audit log, a hash chain: seq is assigned by the append (the last seq + 1 under an
-- advisory lock, never reused, so no sequence), times are unix milliseconds, and actor and
-- subject carry no foreign key because the log outlives the users it names. Only retention
-- deletes, and only the oldest.
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY CHECK (seq > 0),
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind <> ''),
    actor_id TEXT,
    subject_id TEXT,
    ip TEXT,
    user_agent TEXT,
    detail TEXT NOT NULL,
    key_id TEXT NOT NULL,
    prev_hash BYTEA NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);

-- Each index ends in seq, so a filtered page comes newest first from the index.
CREATE INDEX audit_events_actor ON audit_events(actor_id, seq);
CREATE INDEX audit_events_subject ON audit_events(subject_id, seq);
CREATE INDEX audit_events_kind ON audit_events(kind, seq);
CREATE INDEX audit_events_at ON audit_events(at_ms);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only';
END;
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Where the chain starts once retention removed its oldest entries: the last removed one.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL CHECK (seq > 0),
    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);
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
    id TEXT PRIMARY KEY,
    sender_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    recipient_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_id TEXT,
    wrapped_key BYTEA,
    sealed_subject BYTEA,
    sealed_body BYTEA,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    delete_after_read BOOLEAN NOT NULL,
    sent_at BIGINT,
    read_at BIGINT,
    erased_at BIGINT,
    erased_reason TEXT CHECK (erased_reason IN ('expired', 'deleted')),
    CHECK (
        (erased_at IS NULL AND erased_reason IS NULL
            AND key_id IS NOT NULL AND wrapped_key IS NOT NULL
            AND sealed_subject IS NOT NULL AND sealed_body IS NOT NULL)
        OR (erased_at IS NOT NULL AND erased_reason IS NOT NULL
            AND key_id IS NULL AND wrapped_key IS NULL
            AND sealed_subject IS NULL AND sealed_body IS NULL)
    )
);

-- A user's messages, newest first, from each side; also the cascades when a user is deleted.
CREATE INDEX messages_sender ON messages(sender_id, created_at);
CREATE INDEX messages_recipient ON messages(recipient_id, created_at);
-- The messages still to erase when they expire.
CREATE INDEX messages_expiry ON messages(expires_at) WHERE erased_at IS NULL;

-- Attachments, each sealed under its message's data key in numbered chunks. An upload is
-- complete once its size and chunk count are recorded; only complete ones are listed.
CREATE TABLE message_attachments (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    sealed_name BYTEA NOT NULL,
    size BIGINT CHECK (size >= 0),
    chunks BIGINT CHECK (chunks >= 0),
    complete BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    CHECK (
        (NOT complete AND size IS NULL AND chunks IS NULL)
        OR (complete AND size IS NOT NULL AND chunks IS NOT NULL)
    )
);

CREATE INDEX message_attachments_message ON message_attachments(message_id, created_at);
CREATE INDEX message_attachments_uploads ON message_attachments(created_at) WHERE NOT complete;

CREATE TABLE message_chunks (
    attachment_id TEXT NOT NULL REFERENCES message_attachments(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL CHECK (seq >= 0),
    sealed BYTEA NOT NULL,
    UNIQUE (attachment_id, seq)
);

-- Links that let a recipient who cannot sign in yet take a first session: only the SHA-256
-- of the token is stored, and using one deletes every invitation of its user.
CREATE TABLE message_invitations (
    token_hash BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    choose_password BOOLEAN NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX message_invitations_user ON message_invitations(user_id);
CREATE INDEX message_invitations_message ON message_invitations(message_id);
CREATE INDEX message_invitations_expiry ON message_invitations(expires_at);
"#,
    },
];

/// Serialises migrations across instances sharing the database ("twofold" + 1).
const MIGRATION_LOCK_KEY: i64 = 0x7477_6f66_6f6c_6401;

/// Applies every pending migration, each in its own transaction.
pub(crate) async fn run(client: &mut Client) -> anyhow::Result<()> {
    let transaction = locked_transaction(client, MIGRATION_LOCK_KEY)
        .await
        .context("beginning the migration check")?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at BIGINT NOT NULL
            )",
        )
        .await
        .context("creating schema_migrations")?;
    let newest: Option<i32> = transaction
        .query_one("SELECT MAX(version) FROM schema_migrations", &[])
        .await
        .and_then(|row| row.try_get(0))
        .context("reading the schema version")?;
    refuse_newer_schema(newest, MIGRATIONS)?;
    transaction
        .commit()
        .await
        .context("committing the migration check")?;

    for migration in MIGRATIONS {
        apply(client, migration)
            .await
            .with_context(|| format!("applying PostgreSQL migration {}", migration.version))?;
    }
    Ok(())
}

async fn apply(client: &mut Client, migration: &Migration) -> anyhow::Result<()> {
    let transaction = locked_transaction(client, MIGRATION_LOCK_KEY).await?;
    let applied = transaction
        .query_opt(
            "SELECT 1 FROM schema_migrations WHERE version = $1",
            &[&migration.version],
        )
        .await?
        .is_some();
    if applied {
        return Ok(());
    }
    transaction.batch_execute(migration.sql).await?;
    // The database's clock, because this crate takes no clock and the time is only a record.
    transaction
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) \
             VALUES ($1, floor(extract(epoch FROM now()))::BIGINT)",
            &[&migration.version],
        )
        .await?;
    transaction.commit().await?;
    tracing::info!(version = migration.version, "applied PostgreSQL migration");
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
}
