//! `FactorStore` cases about sealed secrets across tables, for master-key rotation: listing
//! the rows not under a key, the compare-and-swap that re-seals one, and the counts per key.

use twofold_core::delivery::{DeliveryChannel, NextAttempt};
use twofold_core::store::{NewDelivery, SealedOwner, SealedRow, SealedSecret, Stores};
use uuid::Uuid;

use crate::harness::{TestDatabase, at, insert_user, new_totp, race, winners};

conformance!(stores:
    rows_not_under_a_key_come_from_every_sealed_table,
    replace_sealed_swaps_only_what_it_read,
    a_given_up_delivery_is_not_resealed,
);

conformance!(database:
    concurrent_replacements_of_one_row_have_one_winner,
);

fn sealed(key_id: &str, byte: u8) -> SealedSecret {
    SealedSecret {
        key_id: key_id.to_owned(),
        // Every byte value, so a comparison that mangles binary data shows it.
        ciphertext: (0..=255).map(|n: u8| n ^ byte).collect(),
    }
}

async fn enqueue(stores: &Stores, recipient: &str, secret: SealedSecret) -> Uuid {
    let id = Uuid::new_v4();
    stores
        .deliveries
        .enqueue(&NewDelivery {
            id,
            channel: DeliveryChannel::Sms,
            recipient: recipient.to_owned(),
            payload: secret,
            created_at: at(0),
        })
        .await
        .unwrap();
    id
}

/// Inserts a pending authenticator of a new user sealed as `secret`; returns its row.
async fn pending(stores: &Stores, address: &str, secret: SealedSecret) -> SealedRow {
    let user_id = insert_user(stores, address).await;
    let mut totp = new_totp(user_id, at(0));
    totp.secret = secret.clone();
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    SealedRow {
        id: totp.id,
        owner: SealedOwner::Totp { user_id },
        secret,
    }
}

async fn rows_not_under_a_key_come_from_every_sealed_table(stores: &Stores) {
    assert!(
        stores
            .factors
            .sealed_rows_not_under("key-2", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let old_totp = pending(stores, "a@example.com", sealed("key-1", 1)).await;
    pending(stores, "b@example.com", sealed("key-2", 2)).await;
    let delivery = enqueue(stores, "+441212345678", sealed("key-3", 3)).await;

    let mut rows = stores
        .factors
        .sealed_rows_not_under("key-2", 10)
        .await
        .unwrap();
    rows.sort_by_key(|row| row.secret.key_id.clone());
    assert_eq!(
        rows,
        [
            old_totp,
            SealedRow {
                id: delivery,
                owner: SealedOwner::Delivery {
                    channel: DeliveryChannel::Sms,
                    recipient: "+441212345678".to_owned(),
                },
                secret: sealed("key-3", 3),
            },
        ]
    );
    assert_eq!(
        stores
            .factors
            .sealed_rows_not_under("key-2", 1)
            .await
            .unwrap()
            .len(),
        1,
        "the limit holds across tables"
    );
    assert_eq!(
        stores.factors.sealed_counts().await.unwrap(),
        [
            ("key-1".to_owned(), 1),
            ("key-2".to_owned(), 1),
            ("key-3".to_owned(), 1)
        ]
    );
    assert_eq!(
        stores.factors.sealed_key_ids().await.unwrap(),
        ["key-1", "key-2", "key-3"],
        "queued messages need their key too"
    );
}

async fn replace_sealed_swaps_only_what_it_read(stores: &Stores) {
    let row = pending(stores, "a@example.com", sealed("key-1", 1)).await;
    let delivery_id = enqueue(stores, "+441212345678", sealed("key-1", 5)).await;
    let rows = stores
        .factors
        .sealed_rows_not_under("key-2", 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);

    // Same key id, other bytes: not what the row holds, no change.
    let mut other_bytes = row.clone();
    other_bytes.secret.ciphertext[0] ^= 0xff;
    assert!(
        !stores
            .factors
            .replace_sealed(&other_bytes, &sealed("key-2", 9))
            .await
            .unwrap()
    );
    for read in &rows {
        assert!(
            stores
                .factors
                .replace_sealed(read, &sealed("key-2", 2))
                .await
                .unwrap()
        );
    }
    // A second swap from the same (now stale) read changes nothing.
    for read in &rows {
        assert!(
            !stores
                .factors
                .replace_sealed(read, &sealed("key-2", 7))
                .await
                .unwrap()
        );
    }
    let SealedOwner::Totp { user_id } = row.owner else {
        unreachable!()
    };
    let stored = stores.factors.pending_totp(user_id).await.unwrap().unwrap();
    assert_eq!(stored.secret, sealed("key-2", 2));
    let claimed = stores
        .deliveries
        .claim_due(at(10), time::Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, delivery_id);
    assert_eq!(claimed[0].payload, sealed("key-2", 2));
    assert!(
        stores
            .factors
            .sealed_rows_not_under("key-2", 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A row replaced meanwhile (a new enrollment) is not overwritten.
    let stale = SealedRow {
        secret: sealed("key-2", 2),
        ..row
    };
    let mut replacement = new_totp(user_id, at(5));
    replacement.secret = sealed("key-1", 4);
    stores
        .factors
        .insert_pending_totp(&replacement)
        .await
        .unwrap();
    assert!(
        !stores
            .factors
            .replace_sealed(&stale, &sealed("key-3", 3))
            .await
            .unwrap()
    );
    let stored = stores.factors.pending_totp(user_id).await.unwrap().unwrap();
    assert_eq!(stored.secret, sealed("key-1", 4));
}

async fn a_given_up_delivery_is_not_resealed(stores: &Stores) {
    enqueue(stores, "+441212345678", sealed("key-1", 1)).await;
    let read = stores
        .factors
        .sealed_rows_not_under("key-2", 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    let claimed = stores
        .deliveries
        .claim_due(at(10), time::Duration::seconds(60), 10)
        .await
        .unwrap();
    stores
        .deliveries
        .mark_failed(claimed[0].id, 1, NextAttempt::Never, "refused", at(11))
        .await
        .unwrap();
    assert!(
        !stores
            .factors
            .replace_sealed(&read[0], &sealed("key-2", 2))
            .await
            .unwrap()
    );
    assert!(stores.factors.sealed_counts().await.unwrap().is_empty());
}

async fn concurrent_replacements_of_one_row_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let row = pending(&stores, "a@example.com", sealed("key-1", 1)).await;
    let outcomes = race(database, |stores, n| {
        let row = row.clone();
        async move {
            stores
                .factors
                .replace_sealed(&row, &sealed("key-2", n as u8))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(winners(&outcomes), 1, "{outcomes:?}");
    let winner = outcomes.iter().position(|won| *won).unwrap();
    let SealedOwner::Totp { user_id } = row.owner else {
        unreachable!()
    };
    let stored = stores.factors.pending_totp(user_id).await.unwrap().unwrap();
    assert_eq!(stored.secret, sealed("key-2", winner as u8));
}
