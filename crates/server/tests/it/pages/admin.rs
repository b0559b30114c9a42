//! The administration pages (seed 004): who may open them, the new-user form, requiring and
//! resetting two-factor, disabling, the security policy form and the audit log.

use reqwest::StatusCode;
use secrecy::SecretString;
use twofold_core::accounts::NewAccount;

use super::*;
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;
use crate::totp::independent_totp;

const ADMIN: &str = "ada@example.com";

on_both_backends!(
    only_administrators_see_the_administration,
    a_new_user_defaults_to_no_two_factor_and_sees_the_password_once,
    requiring_two_factor_shows_pending_until_the_user_enrolls,
);

/// Creates the administrator [`ADMIN`] and signs them in through the pages, enrolling an
/// authenticator (administrators always must); the browser is then fully signed in.
async fn signed_in_admin(app: &TestApp) -> Browser<'_> {
    let password = SecretString::from(PASSWORD);
    app.service
        .create_account(
            None,
            NewAccount {
                email: ADMIN,
                password: Some(&password),
                is_admin: true,
                require_2fa: false,
            },
        )
        .await
        .unwrap();
    let mut browser = Browser::new(app);
    assert_eq!(location(&browser.sign_in(ADMIN).await), "/login/enroll");
    let setup = browser.open("/account/totp/setup").await;
    let code = independent_totp(&key_of(&setup.html), app.now());
    let confirmed = browser
        .submit_page("/account/totp/setup", &[("code", &code)])
        .await;
    assert_eq!(confirmed.status, StatusCode::OK);
    browser
}

async fn id_of(app: &TestApp, email: &str) -> String {
    app.service.find_user(email).await.unwrap().id.to_string()
}

/// The row of the users list for `email`.
fn row_of<'a>(list: &'a Page, email: &str) -> &'a str {
    between(&list.html, &format!(">{email}</a>"), "</tr>")
}

async fn only_administrators_see_the_administration(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Without a session: sign in first.
    let stranger = Browser::new(&app);
    assert_eq!(stranger.redirect_of("/admin/users").await, "/login");
    assert_eq!(stranger.redirect_of("/admin/policy").await, "/login");

    // A signed-in user who is no administrator: the 403 page, and no link to it.
    app.create_user("uma@example.com", Some(PASSWORD), false)
        .await;
    let mut user = Browser::new(&app);
    assert_eq!(location(&user.sign_in("uma@example.com").await), "/account");
    let account = user.open("/account").await;
    assert!(!account.has("Administration"));
    for path in [
        "/admin/users",
        "/admin/users/new",
        "/admin/policy",
        "/admin/audit",
    ] {
        let refused = user.open(path).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(refused.has("Administrators only"), "{path}");
    }
    let forged = user
        .submit_page(
            "/admin/users/new",
            &[("email", "x@example.com"), ("two_factor", "yes")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(app.service.find_user("x@example.com").await.is_err());

    // An administrator halfway through signing in is not one yet.
    let password = SecretString::from(PASSWORD);
    app.service
        .create_account(
            None,
            NewAccount {
                email: "half@example.com",
                password: Some(&password),
                is_admin: true,
                require_2fa: false,
            },
        )
        .await
        .unwrap();
    let mut half = Browser::new(&app);
    half.sign_in("half@example.com").await;
    assert_eq!(half.redirect_of("/admin/users").await, "/login");

    // The administrator has the link in the top bar.
    let mut admin = signed_in_admin(&app).await;
    let account = admin.open("/account").await;
    assert!(account.has(
        "<a href=\"/admin/users\" class=\"nav-link\" id=\"nav-administration\">Administration</a>"
    ));
    assert_eq!(admin.redirect_of("/admin").await, "/admin/users");
    let list = admin.open("/admin/users").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.has("<a href=\"/admin/users\" aria-current=\"page\">Users</a>"));
}

async fn a_new_user_defaults_to_no_two_factor_and_sees_the_password_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut admin = signed_in_admin(&app).await;
    let form = admin.open("/admin/users/new").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.has("<label for=\"two_factor\">Two-Factor Authentication</label>"));
    assert!(form.has("<option value=\"no\" selected>No</option>"));
    assert!(form.has("<option value=\"yes\">Yes</option>"));
    assert!(form.has(
        "<input type=\"checkbox\" id=\"administrator\" name=\"administrator\" value=\"yes\">"
    ));

    // A wrong address keeps what was typed.
    let wrong = admin
        .submit_page(
            "/admin/users/new",
            &[("email", "not an address"), ("two_factor", "yes")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.has("class=\"error\" role=\"alert\""));
    assert!(wrong.has("value=\"not an address\""));
    assert!(wrong.has("<option value=\"yes\" selected>Yes</option>"));

    let created = admin
        .submit_page(
            "/admin/users/new",
            &[("email", "nina@example.com"), ("two_factor", "no")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let password = between(&created.html, "<code id=\"temporary-password\">", "</code>").to_owned();
    assert_eq!(password.len(), 20);
    assert!(created.has("It is shown only now. Hand it over in person or through another"));
    assert!(created.has("it is not emailed"));
    // The user is emailed that an account exists, never the password.
    let emails = app.messages_to("nina@example.com");
    assert_eq!(emails.len(), 1);
    assert!(!emails[0].to_string().contains(&password));

    // The same address again: refused, with the form.
    let again = admin
        .submit_page(
            "/admin/users/new",
            &[("email", "nina@example.com"), ("two_factor", "no")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.has("A user with this email address exists already."));

    // In the list: No two-factor, a user, active, never signed in.
    let list = admin.open("/admin/users").await;
    let row = row_of(&list, "nina@example.com");
    assert!(row.contains(">No</td>"), "{row}");
    assert!(
        row.contains("<td>User</td>") && row.contains("<td>Active</td>"),
        "{row}"
    );
    assert!(row.contains(">Never</td>"), "{row}");
    assert!(row_of(&list, ADMIN).contains(">Enabled</td>"));
    assert!(row_of(&list, ADMIN).contains("<td>Administrator</td>"));
    let searched = admin.open("/admin/users?search=NINA").await;
    assert!(searched.has(">nina@example.com</a>") && !searched.has(&format!(">{ADMIN}</a>")));

    // The temporary password signs in, once, to choose a password; the invitation can be sent
    // again until then, with a new password.
    let id = id_of(&app, "nina@example.com").await;
    let page = admin.open(&format!("/admin/users/{id}/edit")).await;
    assert!(page.has("id=\"send-invitation\""));
    admin.open(&format!("/admin/users/{id}/invitation")).await;
    let resent = admin
        .submit_page(&format!("/admin/users/{id}/invitation"), &[])
        .await;
    assert_eq!(resent.status, StatusCode::OK);
    let second = between(&resent.html, "<code id=\"temporary-password\">", "</code>").to_owned();
    assert_ne!(second, password);
    assert!(resent.has("The earlier temporary password no"));
    let client = app.client();
    let old = app.login(&client, "nina@example.com", &password).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = app.login(&client, "nina@example.com", &second).await;
    assert_eq!(new.status(), StatusCode::OK);
}

async fn requiring_two_factor_shows_pending_until_the_user_enrolls(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut admin = signed_in_admin(&app).await;
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let id = id_of(&app, "bob@example.com").await;
    let user_path = format!("/admin/users/{id}");

    let page = admin.open(&user_path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("<h2 id=\"two-factor-title\">Two Factor Authentication</h2>"));
    assert!(page.has("id=\"two-factor-status\">No</p>"));
    assert!(page.has(&format!(
        "href=\"{user_path}/edit\" id=\"edit-user\">Edit this user</a>"
    )));
    assert!(!page.has("require-two-factor"));

    // Edit mode: the light-grey link, its confirmation, the blue button.
    let edit = admin.open(&format!("{user_path}/edit")).await;
    assert!(edit.has(&format!(
        "href=\"{user_path}/require-two-factor\" id=\"require-two-factor\">Require Two-Factor</a>"
    )));
    let confirm = admin.open(&format!("{user_path}/require-two-factor")).await;
    assert!(
        confirm.has(
            "The user will now be required to enroll in Two-Factor Authentication upon log in."
        )
    );
    assert!(confirm.has("<button type=\"submit\" class=\"primary\">Require Two-Factor</button>"));
    let required = admin
        .submit(&format!("{user_path}/require-two-factor"), &[])
        .await;
    assert_eq!(required.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&required), format!("{user_path}?done=required"));
    let page = admin.open(&location(&required)).await;
    assert!(page.has(
        "<p class=\"status-bar\" role=\"status\" id=\"notice\">bob@example.com will set up two-factor authentication at their next sign-in.</p>"
    ));
    assert!(page.has("id=\"two-factor-status\">Pending setup on next login</p>"));
    let list = admin.open("/admin/users").await;
    assert!(row_of(&list, "bob@example.com").contains(">Pending setup on next login</td>"));
    // Edit mode now offers to stop requiring it.
    let edit = admin.open(&format!("{user_path}/edit")).await;
    assert!(edit.has(">Stop requiring Two-Factor</a>") && !edit.has(">Require Two-Factor</a>"));

    // Bob must enroll at his next sign-in; once he did, the status is Enabled.
    let mut bob = Browser::new(&app);
    assert_eq!(
        location(&bob.sign_in("bob@example.com").await),
        "/login/enroll"
    );
    let setup = bob.open("/account/totp/setup").await;
    let code = independent_totp(&key_of(&setup.html), app.now());
    let enrolled = bob
        .submit_page("/account/totp/setup", &[("code", &code)])
        .await;
    assert_eq!(enrolled.status, StatusCode::OK);
    let page = admin.open(&user_path).await;
    assert!(page.has("id=\"two-factor-status\">Enabled</p>"));
    assert!(page.has("id=\"two-factor-methods\">Authenticator app</dd>"));

    // Reset (the lost-device path): Pending again, and Bob is signed out.
    let confirm = admin.open(&format!("{user_path}/reset-two-factor")).await;
    assert!(confirm.has("This removes every second factor of bob@example.com"));
    let reset = admin
        .submit(&format!("{user_path}/reset-two-factor"), &[])
        .await;
    assert_eq!(location(&reset), format!("{user_path}?done=reset"));
    let page = admin.open(&location(&reset)).await;
    assert!(page.has("id=\"two-factor-status\">Pending setup on next login</p>"));
    assert!(page.has("The second factors of bob@example.com are removed"));
    assert_eq!(bob.redirect_of("/account").await, "/login");

    // Disable: Bob cannot sign in; enable: he can again.
    let disabled = admin.submit(&format!("{user_path}/disable"), &[]).await;
    assert_eq!(location(&disabled), format!("{user_path}?done=disabled"));
    let page = admin.open(&location(&disabled)).await;
    assert!(page.has("bob@example.com is disabled and signed out everywhere."));
    assert!(page.has("<span class=\"badge bad\">Disabled</span>"));
    let list = admin.open("/admin/users").await;
    assert!(row_of(&list, "bob@example.com").contains(">Disabled</td>"));
    let client = app.client();
    assert_ne!(
        app.login(&client, "bob@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    let enabled = admin.submit(&format!("{user_path}/enable"), &[]).await;
    assert_eq!(location(&enabled), format!("{user_path}?done=enabled"));
    assert_eq!(
        app.login(&client, "bob@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );

    // What the domain refuses is a page with a way back, not a 500.
    let own = id_of(&app, ADMIN).await;
    let edit_own = admin.open(&format!("/admin/users/{own}/edit")).await;
    assert!(!edit_own.has("id=\"disable-user\""));
    let refused = admin
        .submit_page(&format!("/admin/users/{own}/disable"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.has("Not on your own account"));
    let accepted = admin
        .submit_page(&format!("{user_path}/invitation"), &[])
        .await;
    assert_eq!(accepted.status, StatusCode::CONFLICT);
    assert!(accepted.has("There is no invitation to send again"));
    for path in [
        "/admin/users/not-a-user",
        &format!("/admin/users/{}", uuid_like()),
    ] {
        let missing = admin.open(path).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
        assert!(missing.has("No such user"));
    }
    let missing = admin
        .submit_page(
            &format!("/admin/users/{}/reset-two-factor", uuid_like()),
            &[],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // A forged token changes nothing.
    admin.csrf = "forged".to_owned();
    let forged = admin
        .submit(&format!("{user_path}/stop-requiring-two-factor"), &[])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(
        app.service
            .find_user("bob@example.com")
            .await
            .unwrap()
            .require_2fa
    );
}

/// A user id nobody has.
fn uuid_like() -> String {
    twofold_core::user::UserId::random().to_string()
}

/// The policy form's fields as the page has them now, with `changes` made.
fn policy_fields(page: &Page, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields = vec![(
        "version".to_owned(),
        between(&page.html, "name=\"version\" value=\"", "\"").to_owned(),
    )];
    let everyone = page.has("value=\"everyone\" checked");
    fields.push((
        "two_factor".to_owned(),
        if everyone { "everyone" } else { "admins" }.to_owned(),
    ));
    for method in ["method_totp", "method_sms", "method_email"] {
        if page.has(&format!("name=\"{method}\" value=\"on\" checked")) {
            fields.push((method.to_owned(), "on".to_owned()));
        }
    }
    for name in [
        "grace_period_days",
        "recovery_code_count",
        "totp_skew_steps",
        "session_idle_timeout_minutes",
        "session_absolute_timeout_minutes",
        "lockout_free_failures",
        "lockout_first_wait_seconds",
        "lockout_longest_wait_seconds",
    ] {
        let value = between(
            &page.html,
            &format!(
                "name=\"{name}\" type=\"text\" inputmode=\"numeric\" pattern=\"[0-9]*\" value=\""
            ),
            "\"",
        );
        fields.push((name.to_owned(), value.to_owned()));
    }
    for (name, value) in changes {
        fields.retain(|(field, _)| field != name);
        if !value.is_empty() {
            fields.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    fields
}

async fn post_policy(admin: &Browser<'_>, fields: &[(String, String)]) -> reqwest::Response {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    admin.submit("/admin/policy", &borrowed).await
}

#[tokio::test]
async fn the_policy_form_keeps_what_was_typed_when_a_setting_is_wrong() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut admin = signed_in_admin(&app).await;
    let form = admin.open("/admin/policy").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.has("Administrators and the users you pick") && form.has(">Everyone</label>"));
    assert!(form.has("Administrators always use two-factor authentication"));
    assert!(form.has("value=\"admins\" checked"));
    assert!(form.has("name=\"version\" value=\"0\""));

    let out_of_range = policy_fields(
        &form,
        &[("grace_period_days", "500"), ("two_factor", "everyone")],
    );
    let refused = Page::from(post_policy(&admin, &out_of_range).await).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.has("Grace period (days) must be between 0 and 90."),
        "{}",
        refused.html
    );
    assert!(refused.has("name=\"grace_period_days\" type=\"text\" inputmode=\"numeric\" pattern=\"[0-9]*\" value=\"500\""));
    assert!(
        refused.has("value=\"everyone\" checked"),
        "the rest as typed"
    );

    let not_a_number = policy_fields(&form, &[("recovery_code_count", "ten")]);
    let refused = Page::from(post_policy(&admin, &not_a_number).await).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.has("Recovery codes per set must be a whole number."));

    let no_method = policy_fields(
        &form,
        &[
            ("method_totp", ""),
            ("method_sms", ""),
            ("method_email", ""),
        ],
    );
    let refused = Page::from(post_policy(&admin, &no_method).await).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.has("Allow at least one way to receive codes."));
    assert_eq!(
        app.service.policy().await.unwrap().version,
        0,
        "nothing saved"
    );

    // A good change is saved; the same form again is stale.
    let good = policy_fields(
        &form,
        &[("grace_period_days", "7"), ("two_factor", "everyone")],
    );
    let saved = post_policy(&admin, &good).await;
    assert_eq!(location(&saved), "/admin/policy?done=saved");
    let page = admin.open("/admin/policy?done=saved").await;
    assert!(page.has("The security policy is saved."));
    assert!(page.has("value=\"everyone\" checked"));
    assert!(page.has("Last saved ") && page.has(&format!("by {ADMIN}.")));
    let policy = app.service.policy().await.unwrap();
    assert_eq!(policy.policy.grace_period_days, 7);
    let stale = Page::from(post_policy(&admin, &good).await).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(stale.has("Someone else saved the policy meanwhile."));
}

#[tokio::test]
async fn the_audit_page_lists_events_newest_first_and_verifies_the_chain() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut admin = signed_in_admin(&app).await;
    app.create_user("carl@example.com", Some(PASSWORD), false)
        .await;
    let id = id_of(&app, "carl@example.com").await;
    admin
        .open(&format!("/admin/users/{id}/require-two-factor"))
        .await;
    admin
        .submit(&format!("/admin/users/{id}/require-two-factor"), &[])
        .await;

    let log = admin.open("/admin/audit").await;
    assert_eq!(log.status, StatusCode::OK);
    for header in [
        "Time",
        "What",
        "Actor",
        "Subject",
        "IP address",
        "User agent",
        "Details",
    ] {
        assert!(
            log.has(&format!("<th scope=\"col\">{header}</th>")),
            "{header}"
        );
    }
    assert!(log.has("href=\"/api/v1/admin/audit/export\""));
    // Newest first: the requirement comes before the sign-in that preceded it.
    let changed = log.html.find(">User changed</th>").unwrap();
    let signed_in = log.html.find(">Signed in</th>").unwrap();
    assert!(changed < signed_in);
    let entry = between(&log.html, ">User changed</th>", "</tr>");
    assert!(entry.contains(&format!(">{ADMIN}</a>")) && entry.contains(">carl@example.com</a>"));
    assert!(entry.contains("require_2fa: true"), "{entry}");

    let filtered = admin
        .open("/admin/audit?user=carl%40example.com&kind=user_created")
        .await;
    assert!(filtered.has(">User created</th>") && !filtered.has(">User changed</th>"));
    assert!(filtered.has("<option value=\"user_created\" selected>User created</option>"));
    let wrong = admin.open("/admin/audit?since=yesterday").await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.has("From must be a date like 2027-01-31."));
    let nobody = admin.open("/admin/audit?user=nobody%40example.com").await;
    assert!(nobody.has("No user has this email address or id."));

    let verified = admin.submit_page("/admin/audit/verify", &[]).await;
    assert_eq!(verified.status, StatusCode::OK);
    assert!(verified.has("The chain is intact:"), "{}", verified.html);

    // The user's own account page shows their recent activity.
    let account = admin.open("/account").await;
    let recent = between(&account.html, "id=\"recent-activity\"", "</section>");
    assert!(recent.contains("<h2 id=\"recent-activity-title\">Recent security activity</h2>"));
    assert!(
        recent.contains("Signed in") && recent.contains("Second factor added"),
        "{recent}"
    );
}
