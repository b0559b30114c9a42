//! Audit-log rows as both backends read and write them, their checked conversion into the
//! domain's types (see `rows.rs` for the rules every conversion keeps), and the one audit query
//! whose conditions depend on the filter.
//!
//! Audit times are unix milliseconds, the precision the chain hash covers; every other table
//! keeps unix seconds.

use anyhow::{Context, anyhow};
use time::OffsetDateTime;
use twofold_core::audit::unix_millis;
use twofold_core::store::{AuditAnchor, AuditFilter, AuditRecord, NewAuditEvent};
use twofold_core::user::UserId;

/// Reads [`AuditRow`]s: the entry's columns in field order, then the current addresses of its
/// actor and subject (no foreign key, so either may be gone: a LEFT JOIN).
macro_rules! audit_select {
    () => {
        "SELECT e.seq, e.at_ms, e.kind, e.actor_id, e.subject_id, e.ip, e.user_agent, e.detail, \
         e.key_id, e.prev_hash, e.hash, actor.email, subject.email \
         FROM audit_events e \
         LEFT JOIN users actor ON actor.id = e.actor_id \
         LEFT JOIN users subject ON subject.id = e.subject_id"
    };
}
pub(crate) use audit_select;

/// The values of an audit entry being appended, owned so they can move to a database thread.
#[derive(Debug)]
pub(crate) struct NewAuditRow {
    pub at_ms: i64,
    pub kind: String,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: String,
    pub key_id: String,
}

impl NewAuditRow {
    pub(crate) fn new(event: &NewAuditEvent, key_id: &str) -> NewAuditRow {
        NewAuditRow {
            at_ms: unix_millis(event.at),
            kind: event.kind.clone(),
            actor_id: event.actor.map(|id| id.to_string()),
            subject_id: event.subject.map(|id| id.to_string()),
            ip: event.ip.clone(),
            user_agent: event.user_agent.clone(),
            detail: event.detail.clone(),
            key_id: key_id.to_owned(),
        }
    }
}

/// Where the next entry links to: the last entry's (or the anchor's) seq and hash, as read.
/// `None` when the log never held an entry.
pub(crate) fn next_link(last: Option<(i64, Vec<u8>)>) -> anyhow::Result<(u64, [u8; 32])> {
    let Some((seq, hash)) = last else {
        return Ok((1, [0; 32]));
    };
    let seq = u64::try_from(seq).with_context(|| format!("the last audit seq is {seq}"))?;
    Ok((seq + 1, hash_from_db("the last audit hash", &hash)?))
}

/// An audit seq as the database stores it (BIGINT).
pub(crate) fn seq_to_db(seq: u64) -> anyhow::Result<i64> {
    i64::try_from(seq).map_err(|_| anyhow!("the audit seq {seq} does not fit BIGINT"))
}

/// A seq bound of a query: beyond BIGINT it bounds nothing more than `i64::MAX` does.
fn seq_bound(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn hash_from_db(what: &str, hash: &[u8]) -> anyhow::Result<[u8; 32]> {
    hash.try_into()
        .map_err(|_| anyhow!("{what} is {} bytes, not 32", hash.len()))
}

/// An audit time as stored (unix milliseconds) back to an instant.
fn from_unix_millis(millis: i64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .with_context(|| format!("{millis} is not a valid unix time in milliseconds"))
}

/// An `audit_anchor` row.
pub(crate) fn anchor_from_db(seq: i64, hash: &[u8]) -> anyhow::Result<AuditAnchor> {
    Ok(AuditAnchor {
        seq: u64::try_from(seq).with_context(|| format!("audit_anchor.seq is {seq}"))?,
        hash: hash_from_db("audit_anchor.hash", hash)?,
    })
}

/// An `audit_events` row read by [`audit_select`].
#[derive(Debug)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: String,
    pub key_id: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub actor_email: Option<String>,
    pub subject_email: Option<String>,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = anyhow::Error;

    fn try_from(row: AuditRow) -> anyhow::Result<AuditRecord> {
        let seq =
            u64::try_from(row.seq).with_context(|| format!("audit_events.seq {}", row.seq))?;
        let user = |column: &str, id: Option<String>| {
            id.map(|id| {
                id.parse::<UserId>()
                    .with_context(|| format!("audit_events.{column} of entry {seq} is not a uuid"))
            })
            .transpose()
        };
        Ok(AuditRecord {
            seq,
            event: NewAuditEvent {
                at: from_unix_millis(row.at_ms)
                    .with_context(|| format!("audit_events.at_ms of entry {seq}"))?,
                kind: row.kind,
                actor: user("actor_id", row.actor_id)?,
                subject: user("subject_id", row.subject_id)?,
                ip: row.ip,
                user_agent: row.user_agent,
                detail: row.detail,
            },
            key_id: row.key_id,
            prev_hash: hash_from_db(
                &format!("audit_events.prev_hash of entry {seq}"),
                &row.prev_hash,
            )?,
            hash: hash_from_db(&format!("audit_events.hash of entry {seq}"), &row.hash)?,
            actor_email: row.actor_email,
            subject_email: row.subject_email,
        })
    }
}

/// A value bound to a query whose parameters depend on its filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlValue {
    Text(String),
    Integer(i64),
}

/// SQL with its parameters, in placeholder order.
#[derive(Debug)]
pub(crate) struct BoundQuery {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

/// The query of [`AuditStore::audit_events`](twofold_core::store::AuditStore::audit_events):
/// only the conditions the filter sets, so each can use its index, newest first.
/// `placeholder(n)` writes the n-th (1-based) parameter in the backend's syntax. The SQL holds
/// no caller's text, only placeholders, so the number of distinct statements (and cached
/// preparations) stays small.
pub(crate) fn audit_events_query(
    filter: &AuditFilter<'_>,
    placeholder: fn(usize) -> String,
) -> BoundQuery {
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    let mut bind = |value: SqlValue| {
        params.push(value);
        placeholder(params.len())
    };
    if let Some(user) = filter.user {
        let user = bind(SqlValue::Text(user.to_string()));
        conditions.push(format!("(e.actor_id = {user} OR e.subject_id = {user})"));
    }
    if let Some(subject) = filter.subject {
        conditions.push(format!(
            "e.subject_id = {}",
            bind(SqlValue::Text(subject.to_string()))
        ));
    }
    if let Some(kind) = filter.kind {
        conditions.push(format!(
            "e.kind = {}",
            bind(SqlValue::Text(kind.to_owned()))
        ));
    }
    if let Some(since) = filter.since {
        conditions.push(format!(
            "e.at_ms >= {}",
            bind(SqlValue::Integer(unix_millis(since)))
        ));
    }
    if let Some(until) = filter.until {
        conditions.push(format!(
            "e.at_ms < {}",
            bind(SqlValue::Integer(unix_millis(until)))
        ));
    }
    if let Some(before) = filter.before_seq {
        conditions.push(format!(
            "e.seq < {}",
            bind(SqlValue::Integer(seq_bound(before)))
        ));
    }
    let limit = bind(SqlValue::Integer(i64::from(filter.limit)));
    let mut sql = String::from(audit_select!());
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY e.seq DESC LIMIT {limit}"));
    BoundQuery { sql, params }
}

/// The parameters of [`AuditStore::audit_chain`](twofold_core::store::AuditStore::audit_chain):
/// the seq to read after, and the limit.
pub(crate) fn audit_chain_params(after_seq: u64, limit: u32) -> (i64, i64) {
    (seq_bound(after_seq), i64::from(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> String {
        format!("${n}")
    }

    #[test]
    fn an_empty_filter_only_limits() {
        let query = audit_events_query(
            &AuditFilter {
                limit: 5,
                ..AuditFilter::default()
            },
            numbered,
        );
        assert!(!query.sql.contains("WHERE"), "{}", query.sql);
        assert!(
            query.sql.ends_with("ORDER BY e.seq DESC LIMIT $1"),
            "{}",
            query.sql
        );
        assert_eq!(query.params, [SqlValue::Integer(5)]);
    }

    #[test]
    fn every_condition_binds_its_value_in_order() {
        let user = UserId::random();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let query = audit_events_query(
            &AuditFilter {
                user: Some(user),
                kind: Some("x'; DROP TABLE users; --"),
                since: Some(at),
                until: Some(at + time::Duration::seconds(1)),
                before_seq: Some(u64::MAX),
                limit: 10,
                subject: Some(user),
            },
            numbered,
        );
        assert!(query.sql.contains("(e.actor_id = $1 OR e.subject_id = $1)"));
        assert!(query.sql.contains(
            "e.subject_id = $2 AND e.kind = $3 AND e.at_ms >= $4 AND e.at_ms < $5 AND e.seq < $6"
        ));
        assert!(
            !query.sql.contains("DROP"),
            "values are bound, never written in"
        );
        assert_eq!(
            query.params,
            [
                SqlValue::Text(user.to_string()),
                SqlValue::Text(user.to_string()),
                SqlValue::Text("x'; DROP TABLE users; --".to_owned()),
                SqlValue::Integer(1_700_000_000_000),
                SqlValue::Integer(1_700_000_001_000),
                SqlValue::Integer(i64::MAX),
                SqlValue::Integer(10),
            ]
        );
    }

    #[test]
    fn links_start_at_one_and_follow_the_last() {
        assert_eq!(next_link(None).unwrap(), (1, [0; 32]));
        assert_eq!(next_link(Some((7, vec![3; 32]))).unwrap(), (8, [3; 32]));
        assert!(next_link(Some((7, vec![3; 31]))).is_err());
        assert!(next_link(Some((-1, vec![3; 32]))).is_err());
    }

    #[test]
    fn millis_round_trip() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_000_000).unwrap();
        assert_eq!(from_unix_millis(unix_millis(at)).unwrap(), at);
        assert!(from_unix_millis(i64::MAX).is_err());
    }
}
