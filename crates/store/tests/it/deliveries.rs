//! `DeliveryQueueStore` cases: the durable queue behind SMTP and the SMS gateway.

use std::collections::HashSet;

use time::Duration;
use twofold_core::delivery::{DeliveryChannel, NextAttempt};
use twofold_core::store::{
    DeliveryCounts, DeliveryFailureState, NewDelivery, PendingByChannel, SealedSecret, Stores,
};
use uuid::Uuid;

use crate::harness::{TestDatabase, at, race};

conformance!(stores:
    an_enqueued_delivery_is_claimed_once_with_its_payload,
    a_delivery_is_not_claimed_before_it_is_due,
    an_expired_lease_lets_the_delivery_be_claimed_again,
    claims_take_the_oldest_first_up_to_the_limit,
    a_failed_attempt_backs_off_and_is_listed,
    failures_are_listed_newest_first_within_the_limit,
    the_queue_depth_counts_waiting_deliveries_by_channel,
);

conformance!(database:
    mark_sent_deletes_the_row_and_its_payload,
    giving_up_erases_the_payload_and_keeps_the_error,
    concurrent_claimers_never_get_the_same_delivery,
);

const LEASE: Duration = Duration::seconds(60);

fn new_delivery(channel: DeliveryChannel, recipient: &str, seconds: i64) -> NewDelivery {
    NewDelivery {
        id: Uuid::new_v4(),
        channel,
        recipient: recipient.to_owned(),
        payload: SealedSecret {
            key_id: "key-1".to_owned(),
            // Every byte value, so a backend that mangles binary data shows it.
            ciphertext: (0..=255).collect(),
        },
        created_at: at(seconds),
    }
}

async fn enqueue(stores: &Stores, channel: DeliveryChannel, seconds: i64) -> NewDelivery {
    let recipient = match channel {
        DeliveryChannel::Email => "bob@example.com",
        DeliveryChannel::Sms => "+441212345678",
    };
    let delivery = new_delivery(channel, recipient, seconds);
    stores.deliveries.enqueue(&delivery).await.unwrap();
    delivery
}

/// The metrics' `twofold_delivery_queue_depth`: leased and retrying deliveries still wait;
/// sent and given-up ones do not.
async fn the_queue_depth_counts_waiting_deliveries_by_channel(stores: &Stores) {
    let depth = || async { stores.deliveries.pending_by_channel().await.unwrap() };
    assert_eq!(depth().await, PendingByChannel { email: 0, sms: 0 });
    let first = enqueue(stores, DeliveryChannel::Email, 0).await;
    let second = enqueue(stores, DeliveryChannel::Email, 1).await;
    let text = enqueue(stores, DeliveryChannel::Sms, 2).await;
    assert_eq!(depth().await, PendingByChannel { email: 2, sms: 1 });
    assert_eq!(
        stores
            .deliveries
            .claim_due(at(3), LEASE, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(depth().await, PendingByChannel { email: 2, sms: 1 });
    let deliveries = &stores.deliveries;
    let retry = NextAttempt::At(at(60));
    assert!(
        deliveries
            .mark_failed(first.id, 1, retry, "busy", at(4))
            .await
            .unwrap()
    );
    assert_eq!(depth().await, PendingByChannel { email: 2, sms: 1 });
    let never = NextAttempt::Never;
    assert!(
        deliveries
            .mark_failed(second.id, 1, never, "no such user", at(4))
            .await
            .unwrap()
    );
    assert!(deliveries.mark_sent(text.id).await.unwrap());
    assert_eq!(depth().await, PendingByChannel { email: 1, sms: 0 });
}

async fn an_enqueued_delivery_is_claimed_once_with_its_payload(stores: &Stores) {
    let email = enqueue(stores, DeliveryChannel::Email, 0).await;
    let sms = enqueue(stores, DeliveryChannel::Sms, 1).await;
    assert_eq!(
        stores.deliveries.delivery_counts().await.unwrap(),
        DeliveryCounts {
            pending: 2,
            failed: 0
        }
    );
    let claimed = stores.deliveries.claim_due(at(1), LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    for (claimed, queued) in claimed.iter().zip([&email, &sms]) {
        assert_eq!(claimed.id, queued.id);
        assert_eq!(claimed.channel, queued.channel);
        assert_eq!(claimed.recipient, queued.recipient);
        assert_eq!(claimed.payload, queued.payload);
        assert_eq!(claimed.attempts, 0);
        assert_eq!(claimed.created_at, queued.created_at);
    }
    // Leased: neither this worker nor another gets them again while the lease runs.
    assert!(
        stores
            .deliveries
            .claim_due(at(2), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_delivery_is_not_claimed_before_it_is_due(stores: &Stores) {
    let delivery = enqueue(stores, DeliveryChannel::Email, 10).await;
    assert!(
        stores
            .deliveries
            .claim_due(at(9), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = stores
        .deliveries
        .claim_due(at(10), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, delivery.id);
}

async fn an_expired_lease_lets_the_delivery_be_claimed_again(stores: &Stores) {
    let delivery = enqueue(stores, DeliveryChannel::Sms, 0).await;
    assert_eq!(
        stores
            .deliveries
            .claim_due(at(0), LEASE, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // The worker died without a word: until the lease runs out nobody else takes it…
    assert!(
        stores
            .deliveries
            .claim_due(at(59), LEASE, 1)
            .await
            .unwrap()
            .is_empty()
    );
    // …then the next worker does, with the same payload and no attempt counted.
    let reclaimed = stores.deliveries.claim_due(at(60), LEASE, 1).await.unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].id, delivery.id);
    assert_eq!(reclaimed[0].payload, delivery.payload);
    assert_eq!(reclaimed[0].attempts, 0);
    assert!(
        stores
            .deliveries
            .claim_due(at(61), LEASE, 1)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn claims_take_the_oldest_first_up_to_the_limit(stores: &Stores) {
    let mut queued = Vec::new();
    for seconds in [4, 0, 3, 1, 2] {
        queued.push((
            seconds,
            enqueue(stores, DeliveryChannel::Email, seconds).await.id,
        ));
    }
    queued.sort_unstable();
    let ids: Vec<Uuid> = queued.into_iter().map(|(_, id)| id).collect();
    let first = stores.deliveries.claim_due(at(10), LEASE, 2).await.unwrap();
    let second = stores.deliveries.claim_due(at(10), LEASE, 2).await.unwrap();
    let third = stores.deliveries.claim_due(at(10), LEASE, 2).await.unwrap();
    let id_list = |claimed: &[twofold_core::store::Delivery]| -> Vec<Uuid> {
        claimed.iter().map(|delivery| delivery.id).collect()
    };
    assert_eq!(id_list(&first), ids[0..2]);
    assert_eq!(id_list(&second), ids[2..4]);
    assert_eq!(id_list(&third), ids[4..5]);
}

async fn a_failed_attempt_backs_off_and_is_listed(stores: &Stores) {
    let delivery = enqueue(stores, DeliveryChannel::Email, 0).await;
    stores.deliveries.claim_due(at(0), LEASE, 1).await.unwrap();
    assert!(
        stores
            .deliveries
            .mark_failed(
                delivery.id,
                1,
                NextAttempt::At(at(5)),
                "connection refused",
                at(1)
            )
            .await
            .unwrap()
    );
    // The lease is released, but the delivery waits for its next attempt.
    assert!(
        stores
            .deliveries
            .claim_due(at(4), LEASE, 1)
            .await
            .unwrap()
            .is_empty()
    );
    let failures = stores.deliveries.failed_deliveries(10).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].id, delivery.id);
    assert_eq!(failures[0].channel, DeliveryChannel::Email);
    assert_eq!(failures[0].recipient, "bob@example.com");
    assert_eq!(failures[0].attempts, 1);
    assert_eq!(failures[0].last_error, "connection refused");
    assert_eq!(
        failures[0].state,
        DeliveryFailureState::Retrying {
            next_attempt_at: at(5)
        }
    );
    let retried = stores.deliveries.claim_due(at(5), LEASE, 1).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(
        retried[0].payload, delivery.payload,
        "the payload is kept for the retry"
    );
    assert_eq!(
        stores.deliveries.delivery_counts().await.unwrap(),
        DeliveryCounts {
            pending: 1,
            failed: 0
        }
    );
    // A delivered retry leaves no failure behind.
    assert!(stores.deliveries.mark_sent(delivery.id).await.unwrap());
    assert!(
        stores
            .deliveries
            .failed_deliveries(10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn failures_are_listed_newest_first_within_the_limit(stores: &Stores) {
    let mut ids = Vec::new();
    for n in 0..3 {
        let delivery = enqueue(stores, DeliveryChannel::Sms, n).await;
        stores
            .deliveries
            .mark_failed(delivery.id, 1, NextAttempt::Never, "HTTP 400", at(100 + n))
            .await
            .unwrap();
        ids.push(delivery.id);
    }
    // Never attempted: not a failure.
    enqueue(stores, DeliveryChannel::Sms, 5).await;
    let listed: Vec<Uuid> = stores
        .deliveries
        .failed_deliveries(2)
        .await
        .unwrap()
        .iter()
        .map(|failure| failure.id)
        .collect();
    assert_eq!(listed, [ids[2], ids[1]]);
    assert_eq!(
        stores.deliveries.delivery_counts().await.unwrap(),
        DeliveryCounts {
            pending: 1,
            failed: 3
        }
    );
}

async fn mark_sent_deletes_the_row_and_its_payload(database: &TestDatabase) {
    let stores = database.open().await;
    let delivery = enqueue(&stores, DeliveryChannel::Email, 0).await;
    let kept = enqueue(&stores, DeliveryChannel::Email, 0).await;
    stores.deliveries.claim_due(at(0), LEASE, 10).await.unwrap();
    assert!(stores.deliveries.mark_sent(delivery.id).await.unwrap());
    assert!(
        !stores.deliveries.mark_sent(delivery.id).await.unwrap(),
        "once"
    );
    assert!(!stores.deliveries.mark_sent(Uuid::new_v4()).await.unwrap());
    assert_eq!(
        database
            .query_i64(&format!(
                "SELECT COUNT(*) FROM deliveries WHERE id = '{}'",
                delivery.id
            ))
            .await,
        0
    );
    assert_eq!(
        database.query_i64("SELECT COUNT(*) FROM deliveries").await,
        1
    );
    assert!(stores.deliveries.mark_sent(kept.id).await.unwrap());
    assert_eq!(
        stores.deliveries.delivery_counts().await.unwrap(),
        DeliveryCounts::default()
    );
}

async fn giving_up_erases_the_payload_and_keeps_the_error(database: &TestDatabase) {
    let stores = database.open().await;
    let delivery = enqueue(&stores, DeliveryChannel::Sms, 0).await;
    stores.deliveries.claim_due(at(0), LEASE, 1).await.unwrap();
    assert!(
        stores
            .deliveries
            .mark_failed(
                delivery.id,
                7,
                NextAttempt::Never,
                "the gateway answered 400",
                at(30)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        database
            .query_i64(
                "SELECT COUNT(*) FROM deliveries \
                 WHERE sealed_payload IS NOT NULL OR key_id IS NOT NULL"
            )
            .await,
        0,
        "nothing of the message stays"
    );
    assert!(
        stores
            .deliveries
            .claim_due(at(1_000_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "a failed delivery is never claimed"
    );
    let failures = stores.deliveries.failed_deliveries(10).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].attempts, 7);
    assert_eq!(failures[0].recipient, "+441212345678");
    assert_eq!(failures[0].last_error, "the gateway answered 400");
    assert_eq!(
        failures[0].state,
        DeliveryFailureState::GaveUp { failed_at: at(30) }
    );
    assert_eq!(
        stores.deliveries.delivery_counts().await.unwrap(),
        DeliveryCounts {
            pending: 0,
            failed: 1
        }
    );
    // A failed delivery is final: neither sent nor failed again.
    assert!(!stores.deliveries.mark_sent(delivery.id).await.unwrap());
    assert!(
        !stores
            .deliveries
            .mark_failed(delivery.id, 8, NextAttempt::At(at(40)), "again", at(31))
            .await
            .unwrap()
    );
}

async fn concurrent_claimers_never_get_the_same_delivery(database: &TestDatabase) {
    let stores = database.open().await;
    let mut queued = HashSet::new();
    for n in 0..24 {
        queued.insert(enqueue(&stores, DeliveryChannel::Email, n % 3).await.id);
    }
    // 16 claimers on two instances, 2 rows each at most: 32 places for 24 rows.
    let claims = race(database, |stores, _| async move {
        stores.deliveries.claim_due(at(10), LEASE, 2).await.unwrap()
    })
    .await;
    let mut claimed = HashSet::new();
    for delivery in claims.into_iter().flatten() {
        assert!(
            claimed.insert(delivery.id),
            "{} was claimed twice",
            delivery.id
        );
    }
    // Whatever a claimer skipped is still there for the next one; nothing is lost.
    for delivery in stores
        .deliveries
        .claim_due(at(10), LEASE, 100)
        .await
        .unwrap()
    {
        assert!(
            claimed.insert(delivery.id),
            "{} was claimed twice",
            delivery.id
        );
    }
    assert_eq!(claimed, queued);
}
