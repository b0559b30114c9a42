//! The JSON form of an audit entry: what `twofold audit export` writes, one per line, in the
//! same shape as the API's audit log.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use twofold_core::store::AuditRecord;

/// One entry on the wire. Absent values are `null`; hashes are lowercase hex.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntryJson {
    pub seq: u64,
    /// RFC 3339, in whole milliseconds (the stored precision).
    pub at: String,
    pub kind: String,
    /// User ids.
    pub actor: Option<String>,
    pub actor_email: Option<String>,
    pub subject: Option<String>,
    pub subject_email: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object.
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The wire form of `record`. A `detail` that is not JSON (only a damaged row) is kept as a
/// string, so that an export stays complete.
pub fn audit_entry_json(record: &AuditRecord) -> anyhow::Result<AuditEntryJson> {
    let event = &record.event;
    let detail = serde_json::from_str::<Value>(&event.detail)
        .unwrap_or_else(|_| Value::String(event.detail.clone()));
    Ok(AuditEntryJson {
        seq: record.seq,
        at: rfc3339(event.at)?,
        kind: event.kind.clone(),
        actor: event.actor.map(|id| id.to_string()),
        actor_email: record.actor_email.clone(),
        subject: event.subject.map(|id| id.to_string()),
        subject_email: record.subject_email.clone(),
        ip: event.ip.clone(),
        user_agent: event.user_agent.clone(),
        detail,
        prev_hash: lower_hex(&record.prev_hash),
        hash: lower_hex(&record.hash),
    })
}

pub fn rfc3339(at: OffsetDateTime) -> anyhow::Result<String> {
    Ok(at.format(&Rfc3339)?)
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use twofold_core::store::NewAuditEvent;
    use twofold_core::user::UserId;

    #[test]
    fn an_entry_has_the_api_shape_in_order() {
        let actor = UserId::random();
        let record = AuditRecord {
            seq: 7,
            event: NewAuditEvent {
                at: OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_000_000).unwrap(),
                kind: "user_created".to_owned(),
                actor: Some(actor),
                subject: None,
                ip: Some("192.0.2.1".to_owned()),
                user_agent: None,
                detail: r#"{"admin":false}"#.to_owned(),
            },
            key_id: "k".to_owned(),
            prev_hash: [0; 32],
            hash: [0xab; 32],
            actor_email: Some("admin@localhost".to_owned()),
            subject_email: None,
        };
        let entry = audit_entry_json(&record).unwrap();
        assert_eq!(
            serde_json::to_value(&entry).unwrap(),
            json!({
                "seq": 7,
                "at": "2027-01-15T08:00:00.123Z",
                "kind": "user_created",
                "actor": actor.to_string(),
                "actor_email": "admin@localhost",
                "subject": null,
                "subject_email": null,
                "ip": "192.0.2.1",
                "user_agent": null,
                "detail": {"admin": false},
                "prev_hash": "0".repeat(64),
                "hash": "ab".repeat(32),
            })
        );
        let line = serde_json::to_string(&entry).unwrap();
        assert!(line.starts_with(r#"{"seq":7,"at":"#), "{line}");
    }
}
