//! `AuditStore` cases about the chain as a whole: concurrent appends (one instance, and two
//! instances on one database) make one gapless chain, retention removes a prefix and moves the
//! anchor, and the database itself refuses to change an entry.

use twofold_core::audit::ChainBreak;
use twofold_core::store::{AuditAnchor, AuditFilter, Stores};
use twofold_core::user::UserId;

use crate::audit::{append, at_ms, event, key, verify, whole_chain};
use crate::harness::{TestDatabase, at, insert_user, race_of};

conformance!(stores:
    concurrent_appends_make_one_chain,
    retention_moves_the_anchor_and_the_rest_verifies,
    retention_removes_a_prefix_even_when_clocks_differ,
    after_removing_everything_the_chain_continues_from_the_anchor,
);

conformance!(database:
    appends_from_two_instances_make_one_chain,
    retention_during_appends_keeps_one_chain,
    the_database_refuses_to_change_an_entry,
    the_log_outlives_its_users,
);

async fn concurrent_appends_make_one_chain(stores: &Stores) {
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let stores = stores.clone();
            tokio::spawn(async move {
                let user = UserId::random();
                let entry = event(&format!("kind_{n}"), Some(user), None, at_ms(n, 0));
                stores.audit.append_audit(&entry, key()).await.unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=32).collect::<Vec<u64>>());
    assert_eq!(verify(stores).await, 32);
}

async fn appends_from_two_instances_make_one_chain(database: &TestDatabase) {
    let mut seqs = race_of(database, 32, |stores, n| async move {
        let entry = event("sign_in_failed", None, None, at_ms(n as i64, 0));
        stores.audit.append_audit(&entry, key()).await.unwrap()
    })
    .await;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=32).collect::<Vec<u64>>());
    let stores = database.open().await;
    assert_eq!(verify(&stores).await, 32);
}

/// Five entries one second apart, from `at(0)`.
async fn five_seconds(stores: &Stores) {
    for n in 0..5 {
        append(stores, &event("code_sent", None, None, at_ms(n, 0))).await;
    }
}

async fn retention_moves_the_anchor_and_the_rest_verifies(stores: &Stores) {
    five_seconds(stores).await;
    // Nothing is older than the first entry.
    assert_eq!(stores.audit.purge_audit_before(at(0)).await.unwrap(), 0);
    assert_eq!(stores.audit.audit_anchor().await.unwrap(), None);

    let chain = whole_chain(stores).await;
    // Entries 1 (at 0 s) and 2 (at 1 s) are before 1.001 s.
    assert_eq!(
        stores.audit.purge_audit_before(at_ms(1, 1)).await.unwrap(),
        2
    );
    assert_eq!(
        stores.audit.audit_anchor().await.unwrap(),
        Some(AuditAnchor {
            seq: 2,
            hash: chain[1].hash,
        })
    );
    let rest = whole_chain(stores).await;
    assert_eq!(rest, chain[2..]);
    assert_eq!(verify(stores).await, 3);

    // Again with the same cutoff: nothing more, the anchor stays.
    assert_eq!(
        stores.audit.purge_audit_before(at_ms(1, 1)).await.unwrap(),
        0
    );
    assert_eq!(stores.audit.audit_anchor().await.unwrap().unwrap().seq, 2);

    // The next entry continues the chain after the last one, not the anchor.
    assert_eq!(
        append(stores, &event("code_sent", None, None, at_ms(9, 0))).await,
        6
    );
    assert_eq!(verify(stores).await, 4);
    // The page of the log shows only what is left.
    let page = stores
        .audit
        .audit_events(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|record| record.seq).collect::<Vec<_>>(),
        [6, 5, 4, 3]
    );
}

/// An instance with a slow clock appended entry 3 with a time before entry 2's. Retention
/// removes everything up to the newest entry from before the cutoff, so no gap opens.
async fn retention_removes_a_prefix_even_when_clocks_differ(stores: &Stores) {
    for seconds in [0, 10, 5, 20] {
        append(stores, &event("code_sent", None, None, at_ms(seconds, 0))).await;
    }
    let chain = whole_chain(stores).await;
    assert_eq!(stores.audit.purge_audit_before(at(8)).await.unwrap(), 3);
    assert_eq!(
        stores.audit.audit_anchor().await.unwrap(),
        Some(AuditAnchor {
            seq: 3,
            hash: chain[2].hash,
        })
    );
    assert_eq!(whole_chain(stores).await, chain[3..]);
    assert_eq!(verify(stores).await, 1);
}

async fn after_removing_everything_the_chain_continues_from_the_anchor(stores: &Stores) {
    five_seconds(stores).await;
    let chain = whole_chain(stores).await;
    assert_eq!(stores.audit.purge_audit_before(at(100)).await.unwrap(), 5);
    assert!(whole_chain(stores).await.is_empty());
    let anchor = AuditAnchor {
        seq: 5,
        hash: chain[4].hash,
    };
    assert_eq!(stores.audit.audit_anchor().await.unwrap(), Some(anchor));
    assert_eq!(verify(stores).await, 0);

    assert_eq!(
        append(stores, &event("signed_out", None, None, at_ms(101, 0))).await,
        6
    );
    let continued = whole_chain(stores).await;
    assert_eq!(continued.len(), 1);
    assert_eq!(continued[0].prev_hash, anchor.hash);
    assert_eq!(verify(stores).await, 1);

    // The anchor moves on with the next retention.
    assert_eq!(stores.audit.purge_audit_before(at(200)).await.unwrap(), 1);
    assert_eq!(
        stores.audit.audit_anchor().await.unwrap(),
        Some(AuditAnchor {
            seq: 6,
            hash: continued[0].hash,
        })
    );
}

/// Ten old entries; then, from two instances at once, 12 appends and 4 retention runs that
/// remove the old ones. However they interleave, one chain verifies from the anchor.
async fn retention_during_appends_keeps_one_chain(database: &TestDatabase) {
    let stores = database.open().await;
    for n in 0..10 {
        append(&stores, &event("code_sent", None, None, at_ms(n, 0))).await;
    }
    let outcomes = race_of(database, 16, |stores, n| async move {
        if n % 4 == 0 {
            stores.audit.purge_audit_before(at(100)).await.unwrap()
        } else {
            let entry = event("sign_in_succeeded", None, None, at_ms(200, n as i64));
            stores.audit.append_audit(&entry, key()).await.unwrap();
            0
        }
    })
    .await;
    let purged: u64 = outcomes.iter().sum();
    assert_eq!(
        purged, 10,
        "the old entries go once, whichever run takes them"
    );
    assert_eq!(stores.audit.audit_anchor().await.unwrap().unwrap().seq, 10);
    assert_eq!(verify(&stores).await, 12);
    let last = whole_chain(&stores).await.last().unwrap().seq;
    assert_eq!(last, 22);
}

async fn the_database_refuses_to_change_an_entry(database: &TestDatabase) {
    let stores = database.open().await;
    five_seconds(&stores).await;
    let error = database
        .try_execute_raw("UPDATE audit_events SET kind = 'forged' WHERE seq = 2")
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("append-only"), "{message}");
    let error = database
        .try_execute_raw("UPDATE audit_events SET seq = seq + 100")
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("append-only"));
    assert_eq!(verify(&stores).await, 5);

    // Deleting stays possible (retention deletes), and a deletion in the middle breaks the
    // chain where it happened.
    database
        .execute_raw("DELETE FROM audit_events WHERE seq = 3")
        .await;
    let anchor = stores.audit.audit_anchor().await.unwrap();
    let mut verifier = twofold_core::audit::ChainVerifier::new(anchor);
    let broken = whole_chain(&stores)
        .await
        .iter()
        .find_map(|record| verifier.check(record, crate::audit::key_by_id).err());
    assert_eq!(
        broken,
        Some(ChainBreak::Gap {
            expected: 3,
            found: 4
        })
    );
}

async fn the_log_outlives_its_users(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    append(
        &stores,
        &event("user_created", None, Some(alice), at_ms(0, 0)),
    )
    .await;
    append(
        &stores,
        &event("sign_in_succeeded", Some(alice), Some(alice), at_ms(1, 0)),
    )
    .await;
    database
        .execute_raw("DELETE FROM users WHERE email = 'alice@example.com'")
        .await;

    let page = stores
        .audit
        .audit_events(&AuditFilter {
            user: Some(alice),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert!(
        page.iter()
            .all(|record| record.event.subject == Some(alice))
    );
    assert!(page.iter().all(|record| record.subject_email.is_none()));
    assert_eq!(verify(&stores).await, 2);
}
