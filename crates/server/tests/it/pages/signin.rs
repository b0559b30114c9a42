//! Forced enrollment, the second-factor page and recovery codes at sign-in.

use reqwest::StatusCode;

use super::*;
use crate::helpers::{Backend, PASSWORD, session_cookie, spawn_app};
use crate::on_both_backends;
use crate::totp::independent_totp;

on_both_backends!(
    forced_enrollment_shows_the_qr_code_and_the_recovery_codes_once,
    the_second_factor_page_takes_a_fresh_code_once,
    a_recovery_code_signs_in_once_through_the_page,
);

async fn forced_enrollment_shows_the_qr_code_and_the_recovery_codes_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), true)
        .await;
    let mut browser = Browser::new(&app);
    assert_eq!(
        location(&browser.sign_in("alice@example.com").await),
        "/login/enroll"
    );

    // The choice, and the apps known to work.
    let enroll = browser.open("/login/enroll").await;
    assert_eq!(enroll.status, StatusCode::OK);
    assert!(enroll.has("Use an authenticator app") && enroll.has("href=\"/account/totp/setup\""));
    for name in [
        "Microsoft Authenticator",
        "Google Authenticator",
        "FreeOTP",
        "Authy",
        "Duo Mobile",
        "LastPass Authenticator",
        "OneLogin Protect",
        "desktop TOTP apps",
    ] {
        assert!(enroll.has(name), "{name} is not named");
    }
    assert_eq!(
        browser.redirect_of("/account").await,
        "/login/enroll",
        "nothing else first"
    );

    // The QR code, in a labelled figure, carries the exact otpauth URI of the key shown.
    let setup = browser.open("/account/totp/setup").await;
    assert_eq!(setup.status, StatusCode::OK);
    assert!(setup.has("<figure class=\"qr\" id=\"qr\" aria-labelledby=\"qr-caption\">"));
    assert!(setup.has("role=\"img\" aria-label=\"QR code"));
    assert!(setup.has("<summary>Having trouble scanning? Enter this key</summary>"));
    let grouped = between(&setup.html, "<code id=\"secret-key\">", "</code>");
    let groups: Vec<&str> = grouped.split(' ').collect();
    assert!(
        groups.len() == 8 && groups.iter().all(|group| group.len() == 4),
        "{grouped}"
    );
    let secret = key_of(&setup.html);
    let svg = format!("<svg{}</svg>", between(&setup.html, "<svg", "</svg>"));
    assert_eq!(
        read_qr(&svg),
        format!(
            "otpauth://totp/Twofold%20Test:alice%40example.com?secret={secret}\
             &issuer=Twofold%20Test&algorithm=SHA1&digits=6&period=30"
        )
    );
    let code_input = between(&setup.html, "<input id=\"code\"", ">");
    assert!(
        CODE_FIELD
            .iter()
            .all(|attribute| code_input.contains(attribute)),
        "{code_input}"
    );
    assert!(setup.has(">Verify</button>"));

    // A wrong code: 401; the key stays pending but is not shown again; a way to start over.
    let right = independent_totp(&secret, app.now());
    let refused = Page::from(
        browser
            .submit("/account/totp/setup", &[("code", wrong_code(&right))])
            .await,
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.has(WRONG_SETUP_CODE));
    assert!(refused.has("href=\"/account/totp/setup\" id=\"start-again\""));
    assert!(
        !refused.has("<svg") && !refused.has(grouped),
        "the key is not shown again"
    );

    // The right code for the pending key: ten recovery codes, shown once, with a download.
    let confirmed = browser
        .submit("/account/totp/setup", &[("code", &right)])
        .await;
    assert!(session_cookie(&confirmed).is_some(), "the session rotates");
    let codes_page = Page::from(confirmed).await;
    assert_eq!(codes_page.status, StatusCode::OK);
    assert_eq!(codes_page.headers["cache-control"], "no-store");
    let codes = listed_codes(&codes_page.html);
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|code| code.len() == 19), "{codes:?}");
    let link = between(
        &codes_page.html,
        "<a class=\"button\" id=\"download-codes\"",
        ">",
    );
    assert!(
        link.contains("download=\"twofold-recovery-codes.txt\""),
        "{link}"
    );
    let data = between(link, "href=\"", "\"").strip_prefix("data:text/plain;charset=utf-8,");
    let text = percent_decode(data.unwrap());
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Twofold recovery codes for alice@example.com"),
        "{text}"
    );
    assert_eq!(
        lines[2..],
        codes.iter().map(String::as_str).collect::<Vec<_>>(),
        "one a line"
    );
    assert!(codes_page.has("<script src=\"/static/print.js\" defer></script>"));
    assert!(
        codes_page.has("data-print hidden>Print</button>"),
        "shown by the script only"
    );
    assert!(codes_page.has(
        "<input type=\"checkbox\" id=\"saved\" required> <label for=\"saved\">I have saved these codes</label>"
    ));
    assert!(codes_page.has("<form method=\"get\" action=\"/account\""));

    // Now fully signed in; the codes are not shown anywhere again.
    let account = browser.open("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.has("<dd id=\"two-factor\">Enabled</dd>"));
    assert!(account.has("<th scope=\"row\">Authenticator app</th>"));
    assert!(
        account.has("Added <span class=\"when\">2027-01-15 08:00 UTC</span>"),
        "dates as YYYY-MM-DD HH:MM UTC"
    );
    assert!(account.has("10 left") && !account.has("class=\"warning\""));
    assert!(account.has("href=\"/account/totp/change\">Change authenticator</a>"));
    assert!(codes.iter().all(|code| !account.has(code)));
    assert_eq!(browser.redirect_of("/login/enroll").await, "/account");
}

async fn the_second_factor_page_takes_a_fresh_code_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut browser = Browser::new(&app);
    let (secret, _) = browser.enroll("bob@example.com").await;
    browser.open("/account").await;
    assert_eq!(location(&browser.submit("/logout", &[]).await), "/login");

    let password_only = browser.sign_in("bob@example.com").await;
    assert_eq!(location(&password_only), "/login/verify");
    let password_only_cookie = session_cookie(&password_only).unwrap();
    assert_eq!(browser.redirect_of("/account").await, "/login/verify");
    assert_eq!(
        browser.redirect_of("/account/totp/setup").await,
        "/login/verify"
    );

    let verify = browser.open("/login/verify").await;
    assert_eq!(verify.status, StatusCode::OK);
    assert!(verify.has("Enter the 6-digit code from your authenticator app"));
    let code_input = between(&verify.html, "<input id=\"code\"", ">");
    assert!(
        CODE_FIELD
            .iter()
            .all(|attribute| code_input.contains(attribute)),
        "{code_input}"
    );
    assert!(verify.has("<summary>Use a recovery code instead</summary>"));
    assert!(
        between(&verify.html, "<input id=\"recovery-code\"", ">").contains("autocomplete=\"off\"")
    );

    // The code of the enrollment's step was used up by the enrollment.
    let replay = Page::from(
        browser
            .verify("totp", &independent_totp(&secret, app.now()))
            .await,
    )
    .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.has("That code is not right."));

    app.clock.advance_seconds(30);
    let fresh = independent_totp(&secret, app.now());
    let accepted = browser.verify("totp", &fresh).await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&accepted), "/account");
    assert_ne!(
        session_cookie(&accepted).unwrap(),
        password_only_cookie,
        "the session rotates"
    );
    let account = browser.open("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(
        account.has("Last used <span class=\"when\">2027-01-15 08:00 UTC</span>"),
        "the sign-in counts as use"
    );

    // The same code again, in another browser: refused.
    let mut other = Browser::new(&app);
    other.sign_in("bob@example.com").await;
    other.open("/login/verify").await;
    let reused = other.verify("totp", &fresh).await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    assert!(session_cookie(&reused).is_none());
    assert_eq!(other.redirect_of("/account").await, "/login/verify");
}

async fn a_recovery_code_signs_in_once_through_the_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, codes) = Browser::new(&app).enroll("carol@example.com").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("carol@example.com").await;
    browser.open("/login/verify").await;
    let accepted = browser
        .verify("recovery_code", &codes[0].to_uppercase())
        .await;
    assert_eq!(location(&accepted), "/account");
    assert!(browser.open("/account").await.has("9 left"));

    let mut other = Browser::new(&app);
    other.sign_in("carol@example.com").await;
    other.open("/login/verify").await;
    let reused = Page::from(other.verify("recovery_code", &codes[0]).await).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert!(reused.has("That code is not right."));
    assert!(
        reused.has("id=\"use-recovery-code\" open>"),
        "the recovery-code form stays open"
    );
    assert_eq!(
        location(&other.verify("recovery_code", &codes[1]).await),
        "/account"
    );
}
