//! Administrators and users (seed 004): the two-factor status through each administrator
//! action and the user's own steps, disabling, invitations, the searchable list, and bad input.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::codes::{TWO_FACTOR_RESET, json_of};
use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    the_status_follows_every_requirement_enrollment_and_reset,
    a_disabled_user_is_signed_out_and_cannot_sign_in_until_enabled,
    a_new_invitation_replaces_the_temporary_password_until_it_is_changed,
    the_list_is_searched_paged_and_counted,
    bad_input_gets_4xx_with_the_error_body,
);

const INVITATION: &str = "An account was made for you";

async fn the_status_follows_every_requirement_enrollment_and_reset(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let created = app
        .post(
            &admin.client,
            "/api/v1/admin/users",
            json!({"email": "bob@example.com", "password": PASSWORD, "require_2fa": false}),
        )
        .await;
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let bob = json_of(created, StatusCode::CREATED).await;
    let id = bob["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/admin/users/{id}"));
    assert_eq!(
        bob,
        json!({
            "id": id, "email": "bob@example.com", "two_factor": "off", "methods": [],
            "admin": false, "require_2fa": false, "disabled": false,
            "password_change_required": false,
            "created_at": "2027-01-15T08:00:00Z", "last_sign_in_at": null,
        })
    );
    assert_eq!(app.admin_view(&admin, &id).await, bob);

    // Required: pending until bob enrolls, which he must do at the next sign-in.
    let required = app
        .admin_change(&admin, &id, json!({"require_2fa": true}))
        .await;
    assert_eq!(
        (&required["two_factor"], &required["require_2fa"]),
        (&json!("pending"), &json!(true))
    );
    let client = app.client();
    let step = json_of(
        app.login(&client, "bob@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "enrollment_required");
    assert_eq!(
        app.admin_view(&admin, &id).await["two_factor"],
        "pending",
        "starting to sign in enrolls nothing"
    );
    app.add_totp(&client).await;
    let enrolled = app.admin_view(&admin, &id).await;
    assert_eq!(
        (&enrolled["two_factor"], &enrolled["methods"]),
        (&json!("enabled"), &json!(["totp"]))
    );
    assert!(enrolled["last_sign_in_at"].is_string(), "{enrolled}");

    // The lost-device path: every factor goes, bob's sessions end, and he is told.
    let reset = app.admin_reset(&admin, &id).await;
    assert_eq!(
        (&reset["two_factor"], &reset["methods"]),
        (&json!("pending"), &json!([]))
    );
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let notice = app.single_notice("bob@example.com", TWO_FACTOR_RESET);
    assert!(notice.contains("administrator"), "{notice}");

    // Enrolled again; no longer required, he keeps his factor.
    let client = app.client();
    let step = json_of(
        app.login(&client, "bob@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "enrollment_required");
    app.add_totp(&client).await;
    let relaxed = app
        .admin_change(&admin, &id, json!({"require_2fa": false}))
        .await;
    assert_eq!(
        (&relaxed["two_factor"], &relaxed["require_2fa"]),
        (&json!("enabled"), &json!(false))
    );
    // Not required and reset: off, and bob signs in with the password alone.
    let off = app.admin_reset(&admin, &id).await;
    assert_eq!(
        (&off["two_factor"], &off["methods"]),
        (&json!("off"), &json!([]))
    );
    assert_eq!(
        app.login_state("bob@example.com").await,
        json!({"state": "authenticated", "methods": []})
    );
    // The list says the same as the single view.
    let list = json_of(
        app.get(&admin.client, "/api/v1/admin/users?query=bob")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["users"][0], app.admin_view(&admin, &id).await);
}

async fn a_disabled_user_is_signed_out_and_cannot_sign_in_until_enabled(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let dave = app.signed_in("dave@example.com").await;
    let id = app.id_of("dave@example.com").await;

    let disabled = app
        .admin_change(&admin, &id, json!({"disabled": true}))
        .await;
    assert_eq!(disabled["disabled"], true);
    assert_error(
        app.get(&dave, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // The same answer as a wrong password: nothing tells that the account exists.
    let right = app.login(&app.client(), "dave@example.com", PASSWORD).await;
    let right = assert_error(right, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let wrong = app
        .login(&app.client(), "dave@example.com", "not the password at all")
        .await;
    let wrong = assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(right, wrong);

    let enabled = app
        .admin_change(&admin, &id, json!({"disabled": false}))
        .await;
    assert_eq!(enabled["disabled"], false);
    assert_eq!(
        app.login_state("dave@example.com").await["state"],
        "authenticated"
    );

    // An administrator cannot disable themselves, and a refused change changes nothing.
    let own = app
        .patch(
            &admin.client,
            &format!("/api/v1/admin/users/{}", admin.id),
            json!({"disabled": true, "require_2fa": true}),
        )
        .await;
    assert_error(own, StatusCode::CONFLICT, "own_account").await;
    // Nor reset their own second factors here (that would end the very session doing it).
    let own_reset = app
        .post(
            &admin.client,
            &format!("/api/v1/admin/users/{}/reset-2fa", admin.id),
            json!({}),
        )
        .await;
    assert_error(own_reset, StatusCode::CONFLICT, "own_account").await;
    let me = app.admin_view(&admin, &admin.id).await;
    assert_eq!(me["two_factor"], "enabled");
    assert_eq!(
        (&me["disabled"], &me["require_2fa"], &me["admin"]),
        (&json!(false), &json!(false), &json!(true))
    );
}

async fn a_new_invitation_replaces_the_temporary_password_until_it_is_changed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let created = json_of(
        app.post(
            &admin.client,
            "/api/v1/admin/users",
            json!({"email": "carol@example.com", "require_2fa": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first = created["temporary_password"].as_str().unwrap().to_owned();
    assert!(first.len() >= 12 && !first.contains(' '), "{first}");
    assert_eq!(created["password_change_required"], true);
    assert_eq!(created["two_factor"], "pending");

    let path = format!("/api/v1/admin/users/{id}/invitation");
    let again = json_of(
        app.post(&admin.client, &path, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let second = again["temporary_password"].as_str().unwrap().to_owned();
    assert_eq!(again.as_object().unwrap().len(), 1, "{again}");
    assert_ne!(first, second);
    let emails = app.emails_titled("carol@example.com", INVITATION);
    assert_eq!(emails.len(), 2);
    for email in &emails {
        let body = email["body"].as_str().unwrap();
        assert!(!body.contains(&first) && !body.contains(&second), "{body}");
    }

    assert_error(
        app.login(&app.client(), "carol@example.com", &first).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // A session started with the second password dies with a third invitation.
    let started = app.client();
    let step = json_of(
        app.login(&started, "carol@example.com", &second).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "password_change_required");
    let third = json_of(
        app.post(&admin.client, &path, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let third = third["temporary_password"].as_str().unwrap().to_owned();
    let late = app
        .post(
            &started,
            "/api/v1/login/password",
            json!({"new_password": "a brand new long passphrase"}),
        )
        .await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);

    let client = app.client();
    let step = json_of(
        app.login(&client, "carol@example.com", &third).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "password_change_required");
    let changed = app
        .post(
            &client,
            "/api/v1/login/password",
            json!({"new_password": "a brand new long passphrase"}),
        )
        .await;
    let changed = json_of(changed, StatusCode::OK).await;
    assert_eq!(changed["state"], "enrollment_required");
    assert_eq!(
        app.admin_view(&admin, &id).await["password_change_required"],
        false
    );
    assert_error(
        app.post(&admin.client, &path, json!({})).await,
        StatusCode::CONFLICT,
        "invitation_accepted",
    )
    .await;
}

async fn the_list_is_searched_paged_and_counted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    for name in ["eve", "cid", "ann", "dan", "bea"] {
        app.create_user(&format!("{name}@search.example"), Some(PASSWORD), false)
            .await;
    }
    app.create_user("zed@other.example", Some(PASSWORD), true)
        .await;
    let page = |query: &str| {
        let client = admin.client.clone();
        let url = app.url(&format!("/api/v1/admin/users{query}"));
        async move { json_of(client.get(url).send().await.unwrap(), StatusCode::OK).await }
    };
    let emails = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|user| user["email"].as_str().unwrap().to_owned())
            .collect()
    };

    let all = page("").await;
    assert_eq!(
        (&all["total"], &all["offset"], &all["limit"]),
        (&json!(7), &json!(0), &json!(50))
    );
    assert_eq!(emails(&all).len(), 7);
    let mut sorted = emails(&all);
    sorted.sort();
    assert_eq!(emails(&all), sorted, "ordered by address");

    let first = page("?query=SEARCH.example&limit=2").await;
    assert_eq!(emails(&first), ["ann@search.example", "bea@search.example"]);
    assert_eq!((&first["total"], &first["limit"]), (&json!(5), &json!(2)));
    let second = page("?query=search.example&limit=2&offset=2").await;
    assert_eq!(
        emails(&second),
        ["cid@search.example", "dan@search.example"]
    );
    let last = page("?query=search.example&limit=2&offset=4").await;
    assert_eq!(emails(&last), ["eve@search.example"]);
    assert_eq!(last["total"], 5);
    let beyond = page("?query=search.example&offset=10").await;
    assert_eq!((emails(&beyond).len(), &beyond["total"]), (0, &json!(5)));

    // The search text is literal: no wildcards.
    for literal in ["%25", "_", "%25search%25"] {
        let none = page(&format!("?query={literal}")).await;
        assert_eq!(none["total"], 0, "{literal}");
    }
    let blank = page("?query=&offset=&limit=").await;
    assert_eq!(blank["total"], 7, "empty parameters count as absent");

    let zed = page("?query=zed").await;
    let zed = &zed["users"][0];
    assert_eq!(zed["two_factor"], "pending");
    for key in [
        "id",
        "email",
        "two_factor",
        "methods",
        "admin",
        "require_2fa",
        "disabled",
        "password_change_required",
        "created_at",
        "last_sign_in_at",
    ] {
        assert!(zed.get(key).is_some(), "{key} missing: {zed}");
    }
}

async fn bad_input_gets_4xx_with_the_error_body(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let bob = app.id_of("bob@example.com").await;
    let client = &admin.client;

    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "limit=-1",
        "offset=-1",
        "offset=1.5",
        "offset=99999999999999999999999",
    ] {
        let response = app
            .get(client, &format!("/api/v1/admin/users?{query}"))
            .await;
        let body = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query").await;
        assert!(body["message"].as_str().unwrap().contains('`'), "{body}");
    }
    let twice = app.get(client, "/api/v1/admin/users?limit=1&limit=2").await;
    assert_error(twice, StatusCode::BAD_REQUEST, "invalid_query").await;

    let create = |body: Value| app.post(client, "/api/v1/admin/users", body);
    // An array would fill the struct by position (here: an administrator) past
    // deny_unknown_fields; a body must be an object.
    for body in [
        json!(["arr@example.com", null, true]),
        json!(null),
        json!(7),
    ] {
        assert_error(
            create(body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        )
        .await;
    }
    assert!(app.service.find_user("arr@example.com").await.is_err());
    let by_position = app
        .patch(client, &format!("/api/v1/admin/users/{bob}"), json!([true]))
        .await;
    assert_error(
        by_position,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    assert_error(
        create(json!({"email": "bob@example.com", "password": PASSWORD})).await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    assert_error(
        create(json!({"email": "not an address"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_email",
    )
    .await;
    assert_error(
        create(json!({"email": "new@example.com", "password": "short"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "weak_password",
    )
    .await;
    for wrong in [
        json!({"email": "new@example.com", "role": "admin"}),
        json!({"password": PASSWORD}),
        json!({"email": "new@example.com", "admin": "yes"}),
        json!([]),
    ] {
        assert_error(
            create(wrong).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        )
        .await;
    }
    let not_json = client
        .post(app.url("/api/v1/admin/users"))
        .header("content-type", "text/plain")
        .body(r#"{"email": "new@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_error(
        not_json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert!(
        app.service.find_user("new@example.com").await.is_err(),
        "nothing was created"
    );

    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [
        unknown.as_str(),
        "not-a-uuid",
        "%FF%FE",
        "1",
        "..%2F..%2Fpolicy",
    ] {
        let path = format!("/api/v1/admin/users/{id}");
        assert_error(
            app.get(client, &path).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert_error(
            app.patch(client, &path, json!({"require_2fa": true})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        for action in ["reset-2fa", "invitation"] {
            assert_error(
                app.post(client, &format!("{path}/{action}"), json!({}))
                    .await,
                StatusCode::NOT_FOUND,
                "not_found",
            )
            .await;
        }
    }

    let path = format!("/api/v1/admin/users/{bob}");
    for wrong in [
        json!({}),
        json!({"admin": true}),
        json!({"require_2fa": "yes"}),
        json!({"disabled": null}),
    ] {
        assert_error(
            app.patch(client, &path, wrong.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        )
        .await;
    }
    assert_error(
        app.post(client, &format!("{path}/reset-2fa"), json!({"all": true}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    let untouched = app.admin_view(&admin, &bob).await;
    assert_eq!(
        (&untouched["require_2fa"], &untouched["disabled"]),
        (&json!(false), &json!(false))
    );
}
