//! `FactorStore::activate_totp_enrollment`: the authenticator, the recovery codes and the
//! audit entry of an enrollment are written together or not at all.

use twofold_core::store::{NewTotp, Stores, TotpActivation};
use twofold_core::user::UserId;

use crate::audit::{at_ms, event, key};
use crate::harness::{TestDatabase, at, code_hash, insert_user, new_totp, race, winners};

conformance!(stores:
    activation_writes_codes_and_the_audit_entry_with_it,
    a_stale_activation_writes_nothing,
);

conformance!(database:
    concurrent_activations_record_one_enrollment,
);

async fn pending(stores: &Stores) -> (UserId, NewTotp) {
    let user_id = insert_user(stores, "a@example.com").await;
    let totp = new_totp(user_id, at(0));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    (user_id, totp)
}

async fn activate(stores: &Stores, totp: &NewTotp, codes: Option<&[[u8; 32]]>) -> bool {
    let audit = event(
        "factor_added",
        Some(totp.user_id),
        Some(totp.user_id),
        at_ms(10, 0),
    );
    stores
        .factors
        .activate_totp_enrollment(&TotpActivation {
            user_id: totp.user_id,
            id: totp.id,
            step: 7,
            now: at(10),
            recovery_codes: codes,
            audit: &audit,
            key: key(),
        })
        .await
        .unwrap()
}

async fn activation_writes_codes_and_the_audit_entry_with_it(stores: &Stores) {
    let (user_id, totp) = pending(stores).await;
    assert!(activate(stores, &totp, Some(&[code_hash(1), code_hash(2)])).await);
    let active = stores.factors.active_totp(user_id).await.unwrap().unwrap();
    assert_eq!((active.id, active.last_used_step), (totp.id, Some(7)));
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        2
    );
    let chain = stores.audit.audit_chain(0, 10).await.unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].event.kind, "factor_added");

    // A replacement keeps the codes when it brings none.
    let next = new_totp(user_id, at(20));
    stores.factors.insert_pending_totp(&next).await.unwrap();
    assert!(activate(stores, &next, None).await);
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        2
    );
    assert_eq!(stores.audit.audit_chain(0, 10).await.unwrap().len(), 2);
}

async fn a_stale_activation_writes_nothing(stores: &Stores) {
    let (user_id, totp) = pending(stores).await;
    assert!(activate(stores, &totp, None).await);
    assert!(!activate(stores, &totp, Some(&[code_hash(3)])).await);
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        0
    );
    assert_eq!(stores.audit.audit_chain(0, 10).await.unwrap().len(), 1);
}

async fn concurrent_activations_record_one_enrollment(database: &TestDatabase) {
    let stores = database.open().await;
    let (user_id, totp) = pending(&stores).await;
    let outcomes = race(database, |stores, n| {
        let totp = totp.clone();
        async move { activate(&stores, &totp, Some(&[code_hash(n as u8)])).await }
    })
    .await;
    assert_eq!(winners(&outcomes), 1);
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        1
    );
    assert_eq!(stores.audit.audit_chain(0, 100).await.unwrap().len(), 1);
}
