//! `FactorStore::factor_overview`: every factor of one user in one read, and nobody else's.

use twofold_core::store::{FactorOverview, Stores, TotpUse};

use crate::harness::{at, code_hash, insert_user, new_totp};

conformance!(stores:
    the_overview_of_a_user_without_factors_is_empty,
    the_overview_shows_each_factor_of_its_user_only,
    the_overview_counts_unused_recovery_codes_and_tracks_the_authenticator,
);

async fn the_overview_of_a_user_without_factors_is_empty(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let overview = stores.factors.factor_overview(alice).await.unwrap();
    assert_eq!(overview, FactorOverview::default());
}

async fn the_overview_shows_each_factor_of_its_user_only(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    // Bob has everything; Alice only a pending authenticator, which is no factor.
    let totp = new_totp(bob, at(0));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    assert!(
        stores
            .factors
            .activate_totp(bob, totp.id, 7, at(60))
            .await
            .unwrap()
    );
    stores
        .factors
        .set_phone_factor(bob, "+447700900123", at(70))
        .await
        .unwrap();
    stores
        .factors
        .enable_email_factor(bob, at(80))
        .await
        .unwrap();
    stores
        .factors
        .replace_recovery_codes(bob, &[code_hash(1), code_hash(2), code_hash(3)], at(90))
        .await
        .unwrap();
    stores
        .factors
        .insert_pending_totp(&new_totp(alice, at(0)))
        .await
        .unwrap();

    assert_eq!(
        stores.factors.factor_overview(bob).await.unwrap(),
        FactorOverview {
            totp: Some(TotpUse {
                confirmed_at: Some(at(60)),
                last_used_at: Some(at(60)),
            }),
            phone: true,
            email: true,
            recovery_codes_left: 3,
        }
    );
    assert_eq!(
        stores.factors.factor_overview(alice).await.unwrap(),
        FactorOverview::default()
    );
}

async fn the_overview_counts_unused_recovery_codes_and_tracks_the_authenticator(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let totp = new_totp(alice, at(0));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    assert!(
        stores
            .factors
            .activate_totp(alice, totp.id, 7, at(60))
            .await
            .unwrap()
    );
    stores
        .factors
        .replace_recovery_codes(alice, &[code_hash(1), code_hash(2)], at(90))
        .await
        .unwrap();
    assert!(
        stores
            .factors
            .consume_recovery_code(alice, &code_hash(1), at(100))
            .await
            .unwrap()
    );
    assert!(
        stores
            .factors
            .consume_totp_step(totp.id, 9, at(120))
            .await
            .unwrap()
    );
    let overview = stores.factors.factor_overview(alice).await.unwrap();
    assert_eq!(overview.recovery_codes_left, 1);
    assert_eq!(
        overview.totp,
        Some(TotpUse {
            confirmed_at: Some(at(60)),
            last_used_at: Some(at(120)),
        })
    );
    assert!(!overview.phone && !overview.email);
}
