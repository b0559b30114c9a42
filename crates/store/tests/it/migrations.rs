//! Cases about opening a database: migrations, schema versions, several instances at once, and
//! stored values the domain cannot parse.

use twofold_core::session::SessionState::Authenticated;
use twofold_core::store::StoreError;
use twofold_core::user::UserId;

use crate::harness::{
    TestDatabase, at, code_hash, email, insert_user, new_session, new_totp, new_user, session_hash,
    undo_version_6, undo_version_7,
};

conformance!(database:
    migrations_are_idempotent,
    a_version_1_database_upgrades_to_version_2,
    a_version_2_database_upgrades_to_version_3,
    a_version_3_database_upgrades_to_version_4,
    a_version_4_database_upgrades_to_version_5,
    a_version_5_database_upgrades_to_version_6,
    a_version_6_database_upgrades_to_version_7,
    require_2fa_since_needs_require_2fa,
    concurrent_opens_all_succeed,
    newer_schema_version_is_refused,
    schema_version_is_read_from_the_database_each_time,
    first_user_is_unique_across_instances,
    unparsable_rows_are_errors,
);

async fn migrations_are_idempotent(database: &TestDatabase) {
    let first = database.open().await;
    let id = insert_user(&first, "alice@example.com").await;
    drop(first);
    let second = database.open().await;
    let third = database.open().await;
    assert!(second.users.user_by_id(id).await.unwrap().is_some());
    assert_eq!(third.users.count_users().await.unwrap(), 1);
}

/// A database last opened by a build that knew only version 1 gains the factor tables, and
/// its users keep working and can enroll.
async fn a_version_1_database_upgrades_to_version_2(database: &TestDatabase) {
    drop(database.open().await);
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM schema_migrations")
            .await,
        7
    );
    // Rewind to exactly what version 1 left: dropping a table drops its indexes.
    undo_version_6(database).await;
    database
        .execute_raw(
            "DROP TABLE totp_authenticators;
             DROP TABLE recovery_codes;
             DROP TABLE throttle_failures;
             DROP TABLE deliveries;
             DROP TABLE one_time_codes;
             DROP TABLE code_sends;
             DROP TABLE phone_factors;
             DROP TABLE email_factors;
             DROP TABLE inbound_phone_checks;
             DELETE FROM schema_migrations WHERE version IN (2, 3, 4, 5);",
        )
        .await;
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM schema_migrations WHERE version = 1")
            .await,
        1
    );
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM schema_migrations")
            .await,
        1
    );
    let factor_tables = if database.is_sqlite() {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('totp_authenticators', 'recovery_codes', 'throttle_failures')"
    } else {
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_name IN ('totp_authenticators', 'recovery_codes', 'throttle_failures')"
    };
    assert_eq!(database.query_i64(factor_tables).await, 0);
    // A user written at version 1, with the columns version 1 has.
    let user_id = UserId::random();
    database
        .execute_raw(&format!(
            "INSERT INTO users (id, email, password_hash, password_change_required, is_admin, \
             require_2fa, created_at, updated_at) \
             VALUES ('{user_id}', 'alice@example.com', 'hash', FALSE, TRUE, FALSE, 1700000000, 1700000000)"
        ))
        .await;

    let stores = database.open().await;
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM schema_migrations")
            .await,
        7
    );
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM schema_migrations WHERE version = 2")
            .await,
        1
    );
    assert!(stores.users.user_by_id(user_id).await.unwrap().is_some());
    let totp = new_totp(user_id, at(0));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    assert!(
        stores
            .factors
            .activate_totp(user_id, totp.id, 1, at(30))
            .await
            .unwrap()
    );
    stores
        .factors
        .replace_recovery_codes(user_id, &[code_hash(1)], at(30))
        .await
        .unwrap();
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        1
    );
    assert_eq!(database.query_i64(factor_tables).await, 3);
    assert_eq!(
        stores
            .throttle
            .record_failure("k", at(31), 0)
            .await
            .unwrap()
            .failures,
        1
    );
}

/// A database last opened by a build that knew only version 2 gains the delivery queue, and
/// what it held before is untouched.
async fn a_version_2_database_upgrades_to_version_3(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    stores
        .factors
        .replace_recovery_codes(user_id, &[code_hash(1)], at(0))
        .await
        .unwrap();
    drop(stores);
    undo_version_6(database).await;
    database
        .execute_raw(
            "DROP TABLE deliveries;
             DROP TABLE one_time_codes;
             DROP TABLE code_sends;
             DROP TABLE phone_factors;
             DROP TABLE email_factors;
             DROP TABLE inbound_phone_checks;
             DELETE FROM schema_migrations WHERE version IN (3, 4, 5);",
        )
        .await;
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        2
    );

    let stores = database.open().await;
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        7
    );
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        1
    );
    assert_eq!(
        stores.deliveries.delivery_counts().await.unwrap(),
        twofold_core::store::DeliveryCounts::default()
    );
}

/// A database last opened by a build that knew only version 3 gains the one-time code tables,
/// and what it held before is untouched.
async fn a_version_3_database_upgrades_to_version_4(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    stores
        .factors
        .replace_recovery_codes(user_id, &[code_hash(1)], at(0))
        .await
        .unwrap();
    drop(stores);
    undo_version_6(database).await;
    database
        .execute_raw(
            "DROP TABLE one_time_codes;
             DROP TABLE code_sends;
             DROP TABLE phone_factors;
             DROP TABLE email_factors;
             DROP TABLE inbound_phone_checks;
             DELETE FROM schema_migrations WHERE version IN (4, 5);",
        )
        .await;
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        3
    );

    let stores = database.open().await;
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        7
    );
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        1
    );
    stores
        .codes
        .replace_code(&twofold_core::store::NewCode {
            user_id,
            purpose: "email_verify",
            destination: "alice@example.com".to_owned(),
            code_hash: code_hash(2),
            expires_at: at(600),
            created_at: at(0),
        })
        .await
        .unwrap();
    assert_eq!(
        stores
            .codes
            .consume_code(user_id, "email_verify", &code_hash(2), at(1))
            .await
            .unwrap(),
        twofold_core::store::CodeCheck::Accepted {
            destination: "alice@example.com".to_owned()
        }
    );
    stores.codes.record_send("user:a", at(0)).await.unwrap();
    assert_eq!(stores.codes.sends_since("user:a", at(0)).await.unwrap(), 1);
}

/// A database last opened by a build that knew only version 4 gains the phone and email
/// factor tables and the inbound phone checks, and what it held before is untouched.
async fn a_version_4_database_upgrades_to_version_5(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    stores
        .factors
        .replace_recovery_codes(user_id, &[code_hash(1)], at(0))
        .await
        .unwrap();
    stores.codes.record_send("user:a", at(0)).await.unwrap();
    drop(stores);
    undo_version_6(database).await;
    database
        .execute_raw(
            "DROP TABLE phone_factors;
             DROP TABLE email_factors;
             DROP TABLE inbound_phone_checks;
             DELETE FROM schema_migrations WHERE version = 5;",
        )
        .await;
    let new_tables = if database.is_sqlite() {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('phone_factors', 'email_factors', 'inbound_phone_checks')"
    } else {
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_name IN ('phone_factors', 'email_factors', 'inbound_phone_checks')"
    };
    assert_eq!(database.query_i64(new_tables).await, 0);
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        4
    );

    let stores = database.open().await;
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        7
    );
    assert_eq!(database.query_i64(new_tables).await, 3);
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        1
    );
    assert_eq!(stores.codes.sends_since("user:a", at(0)).await.unwrap(), 1);
    stores
        .factors
        .set_phone_factor(user_id, "+447700900123", at(1))
        .await
        .unwrap();
    stores
        .factors
        .enable_email_factor(user_id, at(1))
        .await
        .unwrap();
    stores
        .codes
        .replace_inbound_check(&twofold_core::store::NewInboundCheck {
            user_id,
            phone: "+447700900123".to_owned(),
            code_hash: code_hash(2),
            expires_at: at(600),
            created_at: at(1),
        })
        .await
        .unwrap();
    assert_eq!(
        stores
            .codes
            .mark_inbound_received("+447700900123", &code_hash(2), at(2))
            .await
            .unwrap(),
        1
    );
    assert!(
        stores
            .users
            .set_email_verified(user_id, at(3))
            .await
            .unwrap()
    );
}

/// A database last opened by a build that knew only version 5 gains the policy and audit
/// tables, and users already required to use 2FA count as required since their last update.
async fn a_version_5_database_upgrades_to_version_6(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    let bob = insert_user(&stores, "bob@example.com").await;
    drop(stores);
    undo_version_6(database).await;
    let new_tables = if database.is_sqlite() {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('security_policy', 'audit_events', 'audit_anchor')"
    } else {
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_name IN ('security_policy', 'audit_events', 'audit_anchor')"
    };
    assert_eq!(database.query_i64(new_tables).await, 0);
    // What version 5 could hold: a required user (changed at a time of its own) and another.
    database
        .execute_raw(
            "UPDATE users SET require_2fa = TRUE, updated_at = 1700000500 \
             WHERE email = 'alice@example.com';
             UPDATE users SET updated_at = 1700000600 WHERE email = 'bob@example.com';",
        )
        .await;

    let stores = database.open().await;
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        7
    );
    assert_eq!(database.query_i64(new_tables).await, 3);
    let alice = stores.users.user_by_id(alice).await.unwrap().unwrap();
    assert!(alice.require_2fa);
    assert_eq!(alice.require_2fa_since, Some(at(500)));
    let bob = stores.users.user_by_id(bob).await.unwrap().unwrap();
    assert_eq!((bob.require_2fa, bob.require_2fa_since), (false, None));
    // Turning it on again keeps the backfilled time.
    assert!(
        stores
            .users
            .set_require_2fa(alice.id, true, at(900))
            .await
            .unwrap()
    );
    let again = stores.users.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(again.require_2fa_since, Some(at(500)));
    assert_eq!(stores.policy.load_policy().await.unwrap(), None);
    assert_eq!(stores.audit.audit_anchor().await.unwrap(), None);
    let entry = crate::audit::event("user_updated", None, Some(alice.id), at(901));
    assert_eq!(crate::audit::append(&stores, &entry).await, 1);
    assert_eq!(crate::audit::verify(&stores).await, 1);
}

/// A database last opened by a build that knew only version 6 gains the message tables, and
/// what it held before is untouched.
async fn a_version_6_database_upgrades_to_version_7(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    let bob = insert_user(&stores, "bob@example.com").await;
    let entry = crate::audit::event("user_updated", None, Some(alice), at(1));
    assert_eq!(crate::audit::append(&stores, &entry).await, 1);
    drop(stores);
    undo_version_7(database).await;
    let new_tables = if database.is_sqlite() {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN \
         ('messages', 'message_attachments', 'message_chunks', 'message_invitations')"
    } else {
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN \
         ('messages', 'message_attachments', 'message_chunks', 'message_invitations')"
    };
    assert_eq!(database.query_i64(new_tables).await, 0);
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        6
    );

    let stores = database.open().await;
    assert_eq!(
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
        7
    );
    assert_eq!(database.query_i64(new_tables).await, 4);
    assert!(stores.users.user_by_id(bob).await.unwrap().is_some());
    assert_eq!(crate::audit::verify(&stores).await, 1);
    let message = crate::messages::new_message(alice, bob, 2);
    stores.messages.insert_message(&message).await.unwrap();
    assert_eq!(
        stores
            .messages
            .messages_of_user(bob, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A time of 2FA being required is kept only while it is required.
async fn require_2fa_since_needs_require_2fa(database: &TestDatabase) {
    let stores = database.open().await;
    insert_user(&stores, "alice@example.com").await;
    let refused = database
        .try_execute_raw(
            "UPDATE users SET require_2fa_since = 1700000000 WHERE email = 'alice@example.com'",
        )
        .await;
    assert!(refused.is_err());
}

async fn concurrent_opens_all_succeed(database: &TestDatabase) {
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = database.url().to_owned();
            tokio::spawn(async move { twofold_store::open(&url).await })
        })
        .collect();
    for open in opens {
        let stores = open.await.unwrap().unwrap();
        stores.health.ping().await.unwrap();
    }
}

async fn newer_schema_version_is_refused(database: &TestDatabase) {
    drop(database.open().await);
    database
        .execute_raw("INSERT INTO schema_migrations (version, applied_at) VALUES (1000, 0)")
        .await;
    let error = twofold_store::open(database.url()).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("version 1000"), "{message}");
    assert!(message.contains("newer Twofold"), "{message}");
}

/// What `/readyz` relies on: the version is read from the database at each call, so a
/// migration by another build (ahead) or a lost one (behind) shows while the store is open.
async fn schema_version_is_read_from_the_database_each_time(database: &TestDatabase) {
    let stores = database.open().await;
    let newest = database
        .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
        .await;
    let version = stores.health.schema_version().await.unwrap();
    assert_eq!(i64::from(version.expected), newest);
    assert_eq!(version.applied, Some(version.expected));
    assert!(version.is_current());
    let expected = version.expected;

    database
        .execute_raw("INSERT INTO schema_migrations (version, applied_at) VALUES (1000, 0)")
        .await;
    let ahead = stores.health.schema_version().await.unwrap();
    assert_eq!((ahead.applied, ahead.expected), (Some(1000), expected));
    assert!(!ahead.is_current());

    database
        .execute_raw(&format!(
            "DELETE FROM schema_migrations WHERE version IN (1000, {expected})"
        ))
        .await;
    let behind = stores.health.schema_version().await.unwrap();
    assert_eq!(behind.applied, Some(expected - 1));
    assert!(!behind.is_current());

    database.execute_raw("DELETE FROM schema_migrations").await;
    assert_eq!(stores.health.schema_version().await.unwrap().applied, None);

    database.execute_raw("DROP TABLE schema_migrations").await;
    assert!(stores.health.schema_version().await.is_err());
    stores.health.ping().await.unwrap();
}

async fn first_user_is_unique_across_instances(database: &TestDatabase) {
    let instances = [database.open().await, database.open().await];
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let (stores, barrier) = (instances[n % 2].clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let admin = new_user(&format!("admin{n}@localhost"));
                stores.users.insert_first_user(&admin).await.unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += u32::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(instances[1].users.count_users().await.unwrap(), 1);
}

async fn unparsable_rows_are_errors(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    let bob = insert_user(&stores, "bob@example.com").await;
    insert_user(&stores, "carol@example.com").await;
    stores
        .sessions
        .insert_session(&new_session(alice, session_hash(1), Authenticated, at(0)))
        .await
        .unwrap();
    database
        .execute_raw(
            "UPDATE users SET email = 'not an address' WHERE email = 'bob@example.com';
             UPDATE users SET id = 'not-a-uuid' WHERE email = 'carol@example.com';
             UPDATE sessions SET state = 'root';",
        )
        .await;

    let bob = stores.users.user_by_id(bob).await;
    assert!(matches!(bob, Err(StoreError::Unexpected(_))), "{bob:?}");
    let carol = stores
        .users
        .user_by_email(&email("carol@example.com"))
        .await;
    assert!(matches!(carol, Err(StoreError::Unexpected(_))), "{carol:?}");
    let session = stores.sessions.session_by_id_hash(&session_hash(1)).await;
    assert!(
        matches!(session, Err(StoreError::Unexpected(_))),
        "{session:?}"
    );
    // The corrupt rows still count: nothing is skipped.
    assert_eq!(stores.users.count_users().await.unwrap(), 3);
}
