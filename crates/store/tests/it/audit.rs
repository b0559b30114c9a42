//! `AuditStore` cases: appending makes one hash chain, entries read back exactly as appended,
//! and the filters of the log pages. Retention, concurrency and tampering are in
//! `audit_chain`.

use time::{Duration, OffsetDateTime};
use twofold_core::audit::{ChainVerifier, link_hash, to_millis};
use twofold_core::store::{AuditFilter, AuditRecord, ChainKey, NewAuditEvent, Stores};
use twofold_core::user::UserId;

use crate::harness::{at, insert_user};

conformance!(stores:
    the_first_entry_is_one_and_links_to_zeros,
    entries_read_back_as_appended,
    entries_keep_the_id_of_the_key_that_chained_them,
    the_chain_reads_in_pages_after_a_seq,
    the_user_filter_matches_actor_or_subject_newest_first,
    kind_time_and_seq_filters_combine,
    entries_show_the_current_emails_of_actor_and_subject,
);

pub const KEY: [u8; 32] = [0x42; 32];
pub const OTHER_KEY: [u8; 32] = [0x17; 32];

pub fn key() -> ChainKey<'static> {
    ChainKey {
        id: "key-1",
        key: &KEY,
    }
}

/// The chain key of a key id, as `twofold audit verify` finds it.
pub fn key_by_id(id: &str) -> Option<&'static [u8; 32]> {
    match id {
        "key-1" => Some(&KEY),
        "key-2" => Some(&OTHER_KEY),
        _ => None,
    }
}

/// `at(seconds)` and `millis` more, as whole milliseconds (what the service appends).
pub fn at_ms(seconds: i64, millis: i64) -> OffsetDateTime {
    to_millis(at(seconds) + Duration::milliseconds(millis))
}

pub fn event(
    kind: &str,
    actor: Option<UserId>,
    subject: Option<UserId>,
    at: OffsetDateTime,
) -> NewAuditEvent {
    NewAuditEvent {
        at,
        kind: kind.to_owned(),
        actor,
        subject,
        ip: Some("192.0.2.7".to_owned()),
        user_agent: Some("Mozilla/5.0 (test)".to_owned()),
        detail: r#"{"method":"totp"}"#.to_owned(),
    }
}

pub async fn append(stores: &Stores, event: &NewAuditEvent) -> u64 {
    stores.audit.append_audit(event, key()).await.unwrap()
}

/// The whole chain, oldest first, read in small pages.
pub async fn whole_chain(stores: &Stores) -> Vec<AuditRecord> {
    let mut records: Vec<AuditRecord> = Vec::new();
    loop {
        let after = records.last().map_or(0, |record| record.seq);
        let page = stores.audit.audit_chain(after, 7).await.unwrap();
        if page.is_empty() {
            return records;
        }
        records.extend(page);
    }
}

/// Verifies the chain from the anchor as `twofold audit verify` does; returns how many entries
/// passed, or panics at the first break.
pub async fn verify(stores: &Stores) -> u64 {
    let anchor = stores.audit.audit_anchor().await.unwrap();
    let mut verifier = ChainVerifier::new(anchor);
    for record in whole_chain(stores).await {
        if let Err(broken) = verifier.check(&record, key_by_id) {
            panic!("the chain broke: {broken}");
        }
    }
    verifier.checked()
}

fn seqs(records: &[AuditRecord]) -> Vec<u64> {
    records.iter().map(|record| record.seq).collect()
}

async fn events(stores: &Stores, filter: AuditFilter<'_>) -> Vec<u64> {
    seqs(&stores.audit.audit_events(&filter).await.unwrap())
}

fn limit(limit: u32) -> AuditFilter<'static> {
    AuditFilter {
        limit,
        ..AuditFilter::default()
    }
}

async fn the_first_entry_is_one_and_links_to_zeros(stores: &Stores) {
    assert_eq!(stores.audit.audit_anchor().await.unwrap(), None);
    assert!(whole_chain(stores).await.is_empty());

    let user = UserId::random();
    let appended = [
        event("sign_in_succeeded", Some(user), Some(user), at_ms(0, 1)),
        event("factor_added", Some(user), Some(user), at_ms(1, 2)),
        event("signed_out", Some(user), Some(user), at_ms(2, 3)),
    ];
    for (index, entry) in appended.iter().enumerate() {
        assert_eq!(append(stores, entry).await, index as u64 + 1);
    }

    let chain = whole_chain(stores).await;
    assert_eq!(seqs(&chain), [1, 2, 3]);
    let mut prev = [0; 32];
    for record in &chain {
        assert_eq!(record.prev_hash, prev, "entry {} links back", record.seq);
        assert_eq!(
            record.hash,
            link_hash(&KEY, &prev, record.seq, &record.event),
            "entry {}",
            record.seq
        );
        prev = record.hash;
    }
    assert_eq!(verify(stores).await, 3);
    assert_eq!(stores.audit.audit_anchor().await.unwrap(), None);
}

async fn entries_read_back_as_appended(stores: &Stores) {
    let actor = insert_user(stores, "admin@example.com").await;
    let full = event(
        "user_updated",
        Some(actor),
        Some(UserId::random()),
        at_ms(5, 123),
    );
    let bare = NewAuditEvent {
        at: at_ms(6, 999),
        kind: "sign_in_failed".to_owned(),
        actor: None,
        subject: None,
        ip: None,
        user_agent: None,
        detail: "{}".to_owned(),
    };
    let unusual = NewAuditEvent {
        ip: Some("2001:db8::1".to_owned()),
        user_agent: Some("Ünïcode 'quoted' \"agent\" \\ %_".to_owned()),
        detail: r#"{"changed":{"grace_period_days":7},"note":"ü"}"#.to_owned(),
        // Before the Unix epoch: times are signed.
        at: to_millis(OffsetDateTime::UNIX_EPOCH - Duration::milliseconds(1_500)),
        ..full.clone()
    };
    for entry in [&full, &bare, &unusual] {
        append(stores, entry).await;
    }
    let chain = whole_chain(stores).await;
    let read: Vec<&NewAuditEvent> = chain.iter().map(|record| &record.event).collect();
    assert_eq!(read, [&full, &bare, &unusual]);
    assert!(chain.iter().all(|record| record.key_id == "key-1"));
    assert_eq!(verify(stores).await, 3);
}

async fn entries_keep_the_id_of_the_key_that_chained_them(stores: &Stores) {
    append(stores, &event("a", None, None, at_ms(0, 0))).await;
    let rotated = ChainKey {
        id: "key-2",
        key: &OTHER_KEY,
    };
    let second = event("b", None, None, at_ms(1, 0));
    assert_eq!(
        stores.audit.append_audit(&second, rotated).await.unwrap(),
        2
    );
    append(stores, &event("c", None, None, at_ms(2, 0))).await;

    let chain = whole_chain(stores).await;
    let key_ids: Vec<&str> = chain.iter().map(|record| record.key_id.as_str()).collect();
    assert_eq!(key_ids, ["key-1", "key-2", "key-1"]);
    assert_eq!(
        chain[1].hash,
        link_hash(&OTHER_KEY, &chain[0].hash, 2, &second)
    );
    assert_eq!(verify(stores).await, 3);
}

async fn the_chain_reads_in_pages_after_a_seq(stores: &Stores) {
    for n in 0..10 {
        append(stores, &event("code_sent", None, None, at_ms(n, 0))).await;
    }
    assert_eq!(
        seqs(&stores.audit.audit_chain(0, 3).await.unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        seqs(&stores.audit.audit_chain(3, 3).await.unwrap()),
        [4, 5, 6]
    );
    assert_eq!(
        seqs(&stores.audit.audit_chain(8, 3).await.unwrap()),
        [9, 10]
    );
    assert!(stores.audit.audit_chain(10, 3).await.unwrap().is_empty());
    assert!(
        stores
            .audit
            .audit_chain(u64::MAX, 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(verify(stores).await, 10);
}

/// alice, bob, and five entries: 1 alice on herself, 2 bob on alice, 3 someone unknown on bob,
/// 4 bob on nobody, 5 bob on himself; one second apart.
async fn five_entries(stores: &Stores) -> (UserId, UserId) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    for entry in [
        event("sign_in_succeeded", Some(alice), Some(alice), at_ms(0, 0)),
        event("user_updated", Some(bob), Some(alice), at_ms(10, 0)),
        event("sign_in_failed", None, Some(bob), at_ms(20, 0)),
        event("policy_changed", Some(bob), None, at_ms(30, 0)),
        event("sign_in_succeeded", Some(bob), Some(bob), at_ms(40, 0)),
    ] {
        append(stores, &entry).await;
    }
    (alice, bob)
}

async fn the_user_filter_matches_actor_or_subject_newest_first(stores: &Stores) {
    let (alice, bob) = five_entries(stores).await;
    assert_eq!(events(stores, limit(100)).await, [5, 4, 3, 2, 1]);
    let of = |user| AuditFilter {
        user: Some(user),
        ..limit(100)
    };
    assert_eq!(events(stores, of(alice)).await, [2, 1]);
    assert_eq!(events(stores, of(bob)).await, [5, 4, 3, 2]);
    assert!(events(stores, of(UserId::random())).await.is_empty());
    // An entry with the user as both actor and subject comes once.
    assert_eq!(
        events(
            stores,
            AuditFilter {
                user: Some(bob),
                kind: Some("sign_in_succeeded"),
                ..limit(100)
            }
        )
        .await,
        [5]
    );
    // The subject filter: entries about the user's account, whoever caused them.
    let about = |user| AuditFilter {
        subject: Some(user),
        ..limit(100)
    };
    assert_eq!(events(stores, about(alice)).await, [2, 1]);
    assert_eq!(events(stores, about(bob)).await, [5, 3]);
}

async fn kind_time_and_seq_filters_combine(stores: &Stores) {
    let (_, bob) = five_entries(stores).await;
    let kind = |kind| AuditFilter {
        kind: Some(kind),
        ..limit(100)
    };
    assert_eq!(events(stores, kind("sign_in_succeeded")).await, [5, 1]);
    assert!(events(stores, kind("nothing_like_it")).await.is_empty());
    // Since is inclusive, until exclusive, to the millisecond.
    let window = AuditFilter {
        since: Some(at_ms(10, 0)),
        until: Some(at_ms(40, 0)),
        ..limit(100)
    };
    assert_eq!(events(stores, window).await, [4, 3, 2]);
    let narrow = AuditFilter {
        since: Some(at_ms(9, 999)),
        until: Some(at_ms(10, 1)),
        ..limit(100)
    };
    assert_eq!(events(stores, narrow).await, [2]);
    let before = |seq| AuditFilter {
        before_seq: Some(seq),
        ..limit(2)
    };
    assert_eq!(events(stores, limit(2)).await, [5, 4]);
    assert_eq!(events(stores, before(4)).await, [3, 2]);
    assert_eq!(events(stores, before(2)).await, [1]);
    assert!(events(stores, before(1)).await.is_empty());
    assert_eq!(events(stores, before(u64::MAX)).await, [5, 4]);
    assert!(events(stores, limit(0)).await.is_empty());
    let everything = AuditFilter {
        user: Some(bob),
        kind: Some("sign_in_failed"),
        since: Some(at_ms(20, 0)),
        until: Some(at_ms(20, 1)),
        before_seq: Some(4),
        limit: 10,
        subject: Some(bob),
    };
    assert_eq!(events(stores, everything).await, [3]);
}

async fn entries_show_the_current_emails_of_actor_and_subject(stores: &Stores) {
    let (alice, bob) = five_entries(stores).await;
    let page = stores.audit.audit_events(&limit(100)).await.unwrap();
    let shown: Vec<(Option<&str>, Option<&str>)> = page
        .iter()
        .map(|record| {
            (
                record.actor_email.as_deref(),
                record.subject_email.as_deref(),
            )
        })
        .collect();
    let (a, b) = (Some("alice@example.com"), Some("bob@example.com"));
    assert_eq!(shown, [(b, b), (b, None), (None, b), (b, a), (a, a)]);
    assert_eq!(page[3].event.actor, Some(bob));
    assert_eq!(page[3].event.subject, Some(alice));
    // The chain read shows them too.
    let chain = whole_chain(stores).await;
    assert_eq!(chain[1].actor_email.as_deref(), b);

    // An id of no user: kept, with no address.
    let someone = UserId::random();
    append(
        stores,
        &event("user_created", Some(someone), Some(someone), at_ms(50, 0)),
    )
    .await;
    let newest = &stores.audit.audit_events(&limit(1)).await.unwrap()[0];
    assert_eq!(newest.event.actor, Some(someone));
    assert_eq!(newest.actor_email, None);
    assert_eq!(verify(stores).await, 6);
}
