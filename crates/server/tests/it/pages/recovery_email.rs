//! New recovery codes on pages with an emailed code instead of the password (seed 002: "Create
//! new Recover Key → Send verification code to your registered email → Enter the code →
//! Download").

use reqwest::StatusCode;

use super::*;
use crate::helpers::{Backend, spawn_app};

const EMAIL: &str = "rita@example.com";

#[tokio::test]
async fn an_emailed_code_makes_new_recovery_codes_on_pages() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut browser = Browser::new(&app);
    let (_, old_codes) = browser.enroll(EMAIL).await;

    let password_page = browser.open("/account/recovery-codes").await;
    assert!(password_page.has("href=\"/account/recovery-codes/email\""));
    let intro = browser.open("/account/recovery-codes/email").await;
    assert!(intro.has(EMAIL) && intro.has("Send verification code"));

    let code_form = browser
        .submit_page("/account/recovery-codes/email", &[])
        .await;
    assert_eq!(code_form.status, StatusCode::OK);
    assert!(code_form.has("action=\"/account/recovery-codes/email/confirm\""));
    let code = app.latest_code(EMAIL);

    let wrong = browser
        .submit_page(
            "/account/recovery-codes/email/confirm",
            &[("code", wrong_code(&code))],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let shown = browser
        .submit_page("/account/recovery-codes/email/confirm", &[("code", &code)])
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    let new_codes = listed_codes(&shown.html);
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|new| !old_codes.contains(new)));
    assert!(shown.has("id=\"download-codes\""));

    // Once only.
    let replay = browser
        .submit_page("/account/recovery-codes/email/confirm", &[("code", &code)])
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
}
