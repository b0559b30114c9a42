//! The chain of the audit log: the keyed link hash, and the check that walks the entries in
//! order from the anchor (see the module above for why it is keyed and how retention keeps it
//! verifiable).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use super::EventKind;
use crate::store::{AuditAnchor, AuditRecord, NewAuditEvent};

/// The HMAC-SHA256 that links entry `seq` to the entry before (`prev`), over an unambiguous
/// encoding of every field of the event.
pub fn link_hash(key: &[u8; 32], prev: &[u8; 32], seq: u64, event: &NewAuditEvent) -> [u8; 32] {
    fn text(mac: &mut Hmac<Sha256>, value: Option<&str>) {
        match value {
            None => mac.update(&[0]),
            Some(value) => {
                mac.update(&[1]);
                mac.update(&(value.len() as u64).to_be_bytes());
                mac.update(value.as_bytes());
            }
        }
    }
    let mut mac = hmac_sha256(key);
    mac.update(b"twofold audit v1\0");
    mac.update(prev);
    mac.update(&seq.to_be_bytes());
    mac.update(&unix_millis(event.at).to_be_bytes());
    text(&mut mac, Some(&event.kind));
    let actor = event.actor.map(|id| id.to_string());
    let subject = event.subject.map(|id| id.to_string());
    text(&mut mac, actor.as_deref());
    text(&mut mac, subject.as_deref());
    text(&mut mac, event.ip.as_deref());
    text(&mut mac, event.user_agent.as_deref());
    text(&mut mac, Some(&event.detail));
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 under a 256-bit key. The key is zero-padded to the block size, as HMAC itself
/// does (RFC 2104), which avoids the fallible `new_from_slice`.
pub(crate) fn hmac_sha256(key: &[u8; 32]) -> Hmac<Sha256> {
    let mut block = zeroize::Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&(*block).into())
}

/// Milliseconds since the Unix epoch: the precision entries are stored and hashed with.
pub fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `at` cut to whole milliseconds.
pub fn to_millis(at: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_millis(at)) * 1_000_000).unwrap_or(at)
}

/// Where a chain check stopped, if it found a break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The first entry does not follow the anchor (entries before it were removed, or the
    /// anchor was changed).
    BadStart { seq: u64 },
    /// A number is missing before this entry (an entry was removed).
    Gap { expected: u64, found: u64 },
    /// The entry does not link to the one before, or its content changed.
    BadLink { seq: u64 },
    /// The entry was made with a master key that is not loaded.
    UnknownKey { seq: u64, key_id: String },
    /// An entry after this one cannot be read: one of its fields was changed into something
    /// that is not a valid value.
    Unreadable { after: u64 },
    /// The anchor is not one the chain's own retention entries recorded: the oldest entries
    /// were removed, or the anchor moved, by something other than retention.
    UnrecordedAnchor { seq: u64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::BadStart { seq } => write!(
                f,
                "entry {seq} does not follow the retention anchor: entries before it were removed or changed"
            ),
            ChainBreak::Gap { expected, found } => write!(
                f,
                "entry {expected} is missing (the next one is {found}): entries were removed"
            ),
            ChainBreak::BadLink { seq } => write!(
                f,
                "entry {seq} was changed, or an entry before it was changed or removed"
            ),
            ChainBreak::UnknownKey { seq, key_id } => write!(
                f,
                "entry {seq} was sealed with master key {key_id}, which is not loaded"
            ),
            ChainBreak::Unreadable { after } => write!(
                f,
                "an entry after entry {after} cannot be read: a field was changed into something \
                 that is not a valid value"
            ),
            ChainBreak::UnrecordedAnchor { seq } => write!(
                f,
                "the log starts after entry {seq}, but no retention entry in the log removed \
                 entries that far: the oldest entries were removed or the anchor was moved"
            ),
        }
    }
}

/// Checks entries in order, carried across batches.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    anchor: Option<AuditAnchor>,
    next_seq: u64,
    prev: [u8; 32],
    checked: u64,
    /// The anchor the newest `audit_purged` entry so far announced.
    announced: Option<AuditAnchor>,
}

impl ChainVerifier {
    /// Starts after `anchor` (or at entry 1 with zeros when nothing was ever removed).
    pub fn new(anchor: Option<AuditAnchor>) -> Self {
        let (next_seq, prev) = anchor.map_or((1, [0; 32]), |anchor| (anchor.seq + 1, anchor.hash));
        Self {
            anchor,
            next_seq,
            prev,
            checked: 0,
            announced: None,
        }
    }

    /// Checks the next entry; `key` finds the chain key of a master key id.
    pub fn check<'k>(
        &mut self,
        record: &AuditRecord,
        key: impl Fn(&str) -> Option<&'k [u8; 32]>,
    ) -> Result<(), ChainBreak> {
        if record.seq != self.next_seq {
            return Err(if self.checked == 0 {
                ChainBreak::BadStart { seq: record.seq }
            } else {
                ChainBreak::Gap {
                    expected: self.next_seq,
                    found: record.seq,
                }
            });
        }
        let Some(key) = key(&record.key_id) else {
            return Err(ChainBreak::UnknownKey {
                seq: record.seq,
                key_id: record.key_id.clone(),
            });
        };
        let expected = link_hash(key, &self.prev, record.seq, &record.event);
        let linked = subtle::ConstantTimeEq::ct_eq(&record.prev_hash[..], &self.prev[..]);
        let intact = subtle::ConstantTimeEq::ct_eq(&record.hash[..], &expected[..]);
        if !bool::from(linked & intact) {
            return Err(ChainBreak::BadLink { seq: record.seq });
        }
        if record.event.kind == EventKind::AuditPurged.as_str() {
            self.announced = announced_anchor(&record.event.detail);
        }
        self.prev = record.hash;
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// After the last entry: the anchor must be at or before the one the newest retention
    /// entry announced (a crash between announcing and removing leaves it before), and be
    /// that very entry when at it.
    pub fn finish(&self) -> Result<(), ChainBreak> {
        let Some(anchor) = self.anchor else {
            return Ok(());
        };
        match self.announced {
            Some(announced)
                if anchor.seq < announced.seq
                    || (anchor.seq == announced.seq && anchor.hash == announced.hash) =>
            {
                Ok(())
            }
            _ => Err(ChainBreak::UnrecordedAnchor { seq: anchor.seq }),
        }
    }

    /// How many entries passed.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

/// The anchor an `audit_purged` entry's details announce.
fn announced_anchor(detail: &str) -> Option<AuditAnchor> {
    let detail: serde_json::Value = serde_json::from_str(detail).ok()?;
    let seq = detail.get("anchor_seq")?.as_u64()?;
    let text = detail.get("anchor_hash")?.as_str()?;
    Some(AuditAnchor {
        seq,
        hash: from_hex(text)?,
    })
}

/// Lowercase hex, as hashes are shown.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserId;

    const KEY: [u8; 32] = [7; 32];

    fn event(kind: &str) -> NewAuditEvent {
        NewAuditEvent {
            at: to_millis(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()),
            kind: kind.to_owned(),
            actor: Some(UserId::random()),
            subject: None,
            ip: Some("192.0.2.1".to_owned()),
            user_agent: None,
            detail: "{}".to_owned(),
        }
    }

    fn chain(kinds: &[&str]) -> Vec<AuditRecord> {
        let mut prev = [0; 32];
        kinds
            .iter()
            .enumerate()
            .map(|(index, kind)| {
                let seq = index as u64 + 1;
                let event = event(kind);
                let hash = link_hash(&KEY, &prev, seq, &event);
                let record = AuditRecord {
                    seq,
                    event,
                    key_id: "k".to_owned(),
                    prev_hash: prev,
                    hash,
                    actor_email: None,
                    subject_email: None,
                };
                prev = hash;
                record
            })
            .collect()
    }

    fn verify(records: &[AuditRecord], anchor: Option<AuditAnchor>) -> Result<u64, ChainBreak> {
        let mut verifier = ChainVerifier::new(anchor);
        for record in records {
            verifier.check(record, |id| (id == "k").then_some(&KEY))?;
        }
        verifier.finish()?;
        Ok(verifier.checked())
    }

    fn purge_entry(anchor: &AuditRecord) -> String {
        format!(
            r#"{{"anchor_seq":{},"anchor_hash":"{}"}}"#,
            anchor.seq,
            to_hex(&anchor.hash)
        )
    }

    /// `kinds`, where `purged:N` is a retention entry announcing entry N as the anchor.
    fn chain_with_purges(kinds: &[&str]) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        let mut prev = [0; 32];
        for (index, kind) in kinds.iter().enumerate() {
            let seq = index as u64 + 1;
            let mut event = event(kind);
            if let Some(target) = kind.strip_prefix("purged:") {
                let target: usize = target.parse().unwrap();
                event.kind = EventKind::AuditPurged.as_str().to_owned();
                event.detail = purge_entry(&records[target - 1]);
            }
            let hash = link_hash(&KEY, &prev, seq, &event);
            records.push(AuditRecord {
                seq,
                event,
                key_id: "k".to_owned(),
                prev_hash: prev,
                hash,
                actor_email: None,
                subject_email: None,
            });
            prev = hash;
        }
        records
    }

    fn anchor_at(records: &[AuditRecord], seq: u64) -> AuditAnchor {
        AuditAnchor {
            seq,
            hash: records[seq as usize - 1].hash,
        }
    }

    #[test]
    fn an_anchor_must_be_announced_by_a_retention_entry() {
        let records = chain_with_purges(&["a", "b", "c", "purged:2", "d", "e"]);
        // Retention removed 1..=2 as announced.
        assert_eq!(verify(&records[2..], Some(anchor_at(&records, 2))), Ok(4));
        // A crash after the announcement, before the removal: fewer removed is fine.
        assert_eq!(verify(&records[1..], Some(anchor_at(&records, 1))), Ok(5));
        // Someone removed more than retention announced (hiding entry 3).
        assert_eq!(
            verify(&records[3..], Some(anchor_at(&records, 3))),
            Err(ChainBreak::UnrecordedAnchor { seq: 3 })
        );
        // Or removed a prefix where retention never ran.
        let plain = chain(&["a", "b", "c"]);
        assert_eq!(
            verify(&plain[1..], Some(anchor_at(&plain, 1))),
            Err(ChainBreak::UnrecordedAnchor { seq: 1 })
        );
        // Removing the announcement itself leaves no record of the anchor.
        assert_eq!(
            verify(&records[4..], Some(anchor_at(&records, 4))),
            Err(ChainBreak::UnrecordedAnchor { seq: 4 })
        );
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0xab; 32];
        assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(&["a", "b", "c"]), None), Ok(3));
    }

    #[test]
    fn a_changed_field_breaks_the_link_of_its_entry() {
        let mut records = chain(&["a", "b", "c"]);
        records[1].event.ip = Some("198.51.100.7".to_owned());
        assert_eq!(verify(&records, None), Err(ChainBreak::BadLink { seq: 2 }));
        let mut records = chain(&["a", "b", "c"]);
        records[2].event.detail = r#"{"step":"password"}"#.to_owned();
        assert_eq!(verify(&records, None), Err(ChainBreak::BadLink { seq: 3 }));
    }

    #[test]
    fn a_removed_entry_is_a_gap_and_a_renumbered_chain_does_not_link() {
        let mut records = chain(&["a", "b", "c"]);
        records.remove(1);
        assert_eq!(
            verify(&records, None),
            Err(ChainBreak::Gap {
                expected: 2,
                found: 3
            })
        );
        records[1].seq = 2;
        assert_eq!(verify(&records, None), Err(ChainBreak::BadLink { seq: 2 }));
    }

    #[test]
    fn a_recomputed_hash_without_the_key_does_not_verify() {
        let mut records = chain(&["a", "b"]);
        records[1].event.kind = "forged".to_owned();
        records[1].hash = link_hash(&[0; 32], &records[0].hash, 2, &records[1].event);
        assert_eq!(verify(&records, None), Err(ChainBreak::BadLink { seq: 2 }));
    }

    #[test]
    fn after_retention_the_chain_starts_at_the_anchor() {
        let records = chain(&["a", "b", "c"]);
        let anchor = AuditAnchor {
            seq: 1,
            hash: records[0].hash,
        };
        let mut verifier = ChainVerifier::new(Some(anchor));
        for record in &records[1..] {
            verifier
                .check(record, |id| (id == "k").then_some(&KEY))
                .unwrap();
        }
        assert_eq!(verifier.checked(), 2);
        assert_eq!(
            verify(&records[2..], Some(anchor)),
            Err(ChainBreak::BadStart { seq: 3 })
        );
        let wrong = AuditAnchor {
            seq: 1,
            hash: [9; 32],
        };
        assert_eq!(
            verify(&records[1..], Some(wrong)),
            Err(ChainBreak::BadLink { seq: 2 })
        );
    }

    #[test]
    fn the_padded_key_gives_standard_hmac() {
        let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(&KEY).unwrap();
        reference.update(b"abc");
        let mut ours = hmac_sha256(&KEY);
        ours.update(b"abc");
        assert_eq!(
            reference.finalize().into_bytes(),
            ours.finalize().into_bytes()
        );
    }

    #[test]
    fn an_unknown_key_is_reported() {
        let mut records = chain(&["a"]);
        records[0].key_id = "other".to_owned();
        assert!(matches!(
            verify(&records, None),
            Err(ChainBreak::UnknownKey { seq: 1, .. })
        ));
    }
}
