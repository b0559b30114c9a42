//! `UserStore` cases for the administrators: the user list (search, paging, the factor facts),
//! disabling, and when 2FA became required.

use twofold_core::store::{Stores, UserListing, UserPage, UserQuery};
use twofold_core::user::UserId;

use crate::harness::{at, insert_user, new_totp, new_user};

conformance!(stores:
    the_list_is_ordered_by_email_and_paged_with_a_total,
    the_order_is_by_bytes_whatever_the_locale,
    the_search_ignores_ascii_case,
    the_search_matches_percent_underscore_and_backslash_literally,
    the_list_reports_each_users_factors,
    the_list_shows_the_same_user_as_a_lookup,
    set_disabled_disables_and_enables_again,
    set_require_2fa_records_since_when,
    a_user_required_from_the_start_counts_from_creation,
);

async fn list(stores: &Stores, search: Option<&str>, offset: u64, limit: u32) -> UserPage {
    stores
        .users
        .list_users(&UserQuery {
            search,
            offset,
            limit,
        })
        .await
        .unwrap()
}

fn emails(page: &UserPage) -> Vec<&str> {
    page.users
        .iter()
        .map(|listing| listing.user.email.as_str())
        .collect()
}

async fn the_list_is_ordered_by_email_and_paged_with_a_total(stores: &Stores) {
    for address in [
        "erin@example.com",
        "carol@example.com",
        "alice@example.com",
        "dave@example.com",
        "bob@example.com",
    ] {
        insert_user(stores, address).await;
    }

    let first = list(stores, None, 0, 2).await;
    assert_eq!(emails(&first), ["alice@example.com", "bob@example.com"]);
    assert_eq!(first.total, 5);
    let second = list(stores, None, 2, 2).await;
    assert_eq!(emails(&second), ["carol@example.com", "dave@example.com"]);
    assert_eq!(second.total, 5);
    let last = list(stores, None, 4, 2).await;
    assert_eq!(emails(&last), ["erin@example.com"]);
    assert_eq!(last.total, 5);
    // Past the end: no users, and still the total.
    let beyond = list(stores, None, 10, 2).await;
    assert!(beyond.users.is_empty());
    assert_eq!(beyond.total, 5);

    // The total counts the matches of the search, not every user.
    let searched = list(stores, Some("e@"), 0, 1).await;
    assert_eq!(emails(&searched), ["alice@example.com"]);
    assert_eq!(searched.total, 2, "alice and dave");
    let searched = list(stores, Some("e@"), 1, 1).await;
    assert_eq!(emails(&searched), ["dave@example.com"]);
    assert_eq!(searched.total, 2);
}

/// A locale's collation would skip the punctuation (or sort it elsewhere) and page the two
/// backends differently.
async fn the_order_is_by_bytes_whatever_the_locale(stores: &Stores) {
    for address in [
        "ab@x.com",
        "a_b@x.com",
        "aa@x.com",
        "a.b@x.com",
        "a-b@x.com",
        "b@x.com",
    ] {
        insert_user(stores, address).await;
    }
    let page = list(stores, None, 0, 10).await;
    assert_eq!(
        emails(&page),
        [
            "a-b@x.com",
            "a.b@x.com",
            "a_b@x.com",
            "aa@x.com",
            "ab@x.com",
            "b@x.com"
        ]
    );
}

async fn the_search_ignores_ascii_case(stores: &Stores) {
    insert_user(stores, "alice@example.com").await;
    insert_user(stores, "bob@example.org").await;

    let page = list(stores, Some("ALICE@Example"), 0, 10).await;
    assert_eq!(emails(&page), ["alice@example.com"]);
    assert_eq!(page.total, 1);
    let page = list(stores, Some("EXAMPLE."), 0, 10).await;
    assert_eq!(page.total, 2);
    let page = list(stores, Some("carol"), 0, 10).await;
    assert!(page.users.is_empty());
    assert_eq!(page.total, 0);
}

async fn the_search_matches_percent_underscore_and_backslash_literally(stores: &Stores) {
    for address in [
        "a_b@example.com",
        "axb@example.com",
        "100%@example.com",
        "1000@example.com",
        "back\\slash@example.com",
        "backxslash@example.com",
    ] {
        insert_user(stores, address).await;
    }

    // As LIKE patterns these would match everything (or the x variants too).
    let page = list(stores, Some("_"), 0, 10).await;
    assert_eq!(emails(&page), ["a_b@example.com"]);
    assert_eq!(page.total, 1);
    let page = list(stores, Some("%"), 0, 10).await;
    assert_eq!(emails(&page), ["100%@example.com"]);
    assert_eq!(page.total, 1);
    let page = list(stores, Some("A_B"), 0, 10).await;
    assert_eq!(emails(&page), ["a_b@example.com"]);
    let page = list(stores, Some("0%@"), 0, 10).await;
    assert_eq!(emails(&page), ["100%@example.com"]);
    let page = list(stores, Some("k\\s"), 0, 10).await;
    assert_eq!(emails(&page), ["back\\slash@example.com"]);
    let page = list(stores, Some("\\"), 0, 10).await;
    assert_eq!(page.total, 1);
}

async fn listing(stores: &Stores, id: UserId) -> UserListing {
    let page = list(stores, None, 0, 100).await;
    page.users
        .into_iter()
        .find(|listing| listing.user.id == id)
        .unwrap()
}

fn facts(listing: &UserListing) -> (bool, bool, bool) {
    (
        listing.has_totp,
        listing.has_phone,
        listing.has_email_factor,
    )
}

async fn the_list_reports_each_users_factors(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    let carol = insert_user(stores, "carol@example.com").await;
    assert_eq!(facts(&listing(stores, alice).await), (false, false, false));

    // A pending authenticator is no factor yet.
    let totp = new_totp(alice, at(0));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    assert_eq!(facts(&listing(stores, alice).await), (false, false, false));
    assert!(
        stores
            .factors
            .activate_totp(alice, totp.id, 1, at(30))
            .await
            .unwrap()
    );
    // An active one and a new pending one beside it: still one factor, one row.
    stores
        .factors
        .insert_pending_totp(&new_totp(alice, at(40)))
        .await
        .unwrap();
    stores
        .factors
        .set_phone_factor(bob, "+447700900123", at(1))
        .await
        .unwrap();
    stores
        .factors
        .enable_email_factor(carol, at(1))
        .await
        .unwrap();
    stores
        .factors
        .set_phone_factor(carol, "+447700900456", at(1))
        .await
        .unwrap();

    let page = list(stores, None, 0, 10).await;
    assert_eq!(page.total, 3);
    assert_eq!(page.users.len(), 3);
    assert_eq!(facts(&page.users[0]), (true, false, false));
    assert_eq!(facts(&page.users[1]), (false, true, false));
    assert_eq!(facts(&page.users[2]), (false, true, true));

    stores.factors.delete_all_factors(carol).await.unwrap();
    assert_eq!(facts(&listing(stores, carol).await), (false, false, false));
}

async fn the_list_shows_the_same_user_as_a_lookup(stores: &Stores) {
    let mut user = new_user("alice@example.com");
    user.is_admin = true;
    user.require_2fa = true;
    stores.users.insert_user(&user).await.unwrap();
    stores.users.record_login(user.id, at(5)).await.unwrap();
    stores
        .users
        .set_disabled(user.id, true, at(6))
        .await
        .unwrap();
    let listed = listing(stores, user.id).await;
    let looked_up = stores.users.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(listed.user, looked_up);
    assert!(listed.user.disabled);
    assert_eq!(listed.user.last_login_at, Some(at(5)));
    assert_eq!(listed.user.require_2fa_since, Some(at(0)));
}

async fn disabled(stores: &Stores, id: UserId) -> bool {
    stores.users.user_by_id(id).await.unwrap().unwrap().disabled
}

async fn set_disabled_disables_and_enables_again(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    assert!(!disabled(stores, alice).await);

    assert!(
        stores
            .users
            .set_disabled(alice, true, at(10))
            .await
            .unwrap()
    );
    assert!(disabled(stores, alice).await);
    assert!(!disabled(stores, bob).await, "only that user");
    // Idempotent: the user exists, so it reports true.
    assert!(
        stores
            .users
            .set_disabled(alice, true, at(11))
            .await
            .unwrap()
    );
    assert!(disabled(stores, alice).await);

    assert!(
        stores
            .users
            .set_disabled(alice, false, at(12))
            .await
            .unwrap()
    );
    assert!(!disabled(stores, alice).await);
    assert!(
        !stores
            .users
            .set_disabled(UserId::random(), true, at(13))
            .await
            .unwrap()
    );
}

async fn since(stores: &Stores, id: UserId) -> (bool, Option<time::OffsetDateTime>) {
    let user = stores.users.user_by_id(id).await.unwrap().unwrap();
    (user.require_2fa, user.require_2fa_since)
}

async fn set_require_2fa_records_since_when(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    assert_eq!(since(stores, alice).await, (false, None));

    assert!(
        stores
            .users
            .set_require_2fa(alice, true, at(10))
            .await
            .unwrap()
    );
    assert_eq!(since(stores, alice).await, (true, Some(at(10))));
    // Required again: the earlier time stays (the grace period does not restart).
    assert!(
        stores
            .users
            .set_require_2fa(alice, true, at(20))
            .await
            .unwrap()
    );
    assert_eq!(since(stores, alice).await, (true, Some(at(10))));
    assert_eq!(since(stores, bob).await, (false, None), "only that user");
    // Turning it off while off keeps no time.
    assert!(
        stores
            .users
            .set_require_2fa(bob, false, at(21))
            .await
            .unwrap()
    );
    assert_eq!(since(stores, bob).await, (false, None));

    assert!(
        stores
            .users
            .set_require_2fa(alice, false, at(30))
            .await
            .unwrap()
    );
    assert_eq!(since(stores, alice).await, (false, None));
    // Required anew: counts from now.
    assert!(
        stores
            .users
            .set_require_2fa(alice, true, at(40))
            .await
            .unwrap()
    );
    assert_eq!(since(stores, alice).await, (true, Some(at(40))));

    assert!(
        !stores
            .users
            .set_require_2fa(UserId::random(), true, at(50))
            .await
            .unwrap()
    );
}

async fn a_user_required_from_the_start_counts_from_creation(stores: &Stores) {
    let mut first = new_user("admin@localhost");
    first.require_2fa = true;
    first.created_at = at(3);
    assert!(stores.users.insert_first_user(&first).await.unwrap());
    assert_eq!(since(stores, first.id).await, (true, Some(at(3))));

    let mut required = new_user("alice@example.com");
    required.require_2fa = true;
    required.created_at = at(7);
    stores.users.insert_user(&required).await.unwrap();
    assert_eq!(since(stores, required.id).await, (true, Some(at(7))));

    let optional = new_user("bob@example.com");
    stores.users.insert_user(&optional).await.unwrap();
    assert_eq!(since(stores, optional.id).await, (false, None));
}
