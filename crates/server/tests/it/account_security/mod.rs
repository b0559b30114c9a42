//! Account security after OWASP ASVS 5.0: changing one's own password (6.2.2, 6.2.3), seeing
//! and ending one's sessions (7.5.2), and administrators ending a user's sessions (7.4.5).

mod admin_sign_out;
mod password;
mod sessions;

use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use crate::codes::json_of;
use crate::helpers::{PASSWORD, TestApp, session_cookie};

/// A password that passes the rules and is not [`PASSWORD`].
pub const NEW_PASSWORD: &str = "a different horse entirely";

impl TestApp {
    /// A fresh client signed in as `email` (a user without a second factor, so one step), and
    /// its session cookie.
    pub async fn signed_in_client(&self, email: &str) -> (Client, String) {
        let client = self.client();
        let response = self.login(&client, email, PASSWORD).await;
        let cookie = session_cookie(&response).unwrap();
        let step = json_of(response, StatusCode::OK).await;
        assert_eq!(step["state"], "authenticated", "{step}");
        (client, cookie)
    }

    /// A request as a browser holding only this session cookie.
    pub async fn get_with_cookie(&self, cookie: &str, path: &str) -> Response {
        reqwest::Client::new()
            .get(self.url(path))
            .header("cookie", format!("twofold_session={cookie}"))
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_json(&self, client: &Client, path: &str, body: Value) -> Response {
        client
            .delete(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The session list as `client` sees it.
    pub async fn sessions_of(&self, client: &Client) -> Vec<Value> {
        let list = json_of(
            self.get(client, "/api/v1/account/sessions").await,
            StatusCode::OK,
        )
        .await;
        list["sessions"].as_array().unwrap().clone()
    }

    /// The id of `client`'s own session in its list.
    pub async fn current_session_id(&self, client: &Client) -> String {
        let sessions = self.sessions_of(client).await;
        let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1, "{sessions:?}");
        current[0]["id"].as_str().unwrap().to_owned()
    }

    /// The user's own recent audit entries (`/api/v1/account/activity`), newest first.
    pub async fn activity_of(&self, client: &Client) -> Vec<Value> {
        let body = json_of(
            self.get(client, "/api/v1/account/activity").await,
            StatusCode::OK,
        )
        .await;
        body["events"].as_array().unwrap().clone()
    }
}

/// The CSRF token of a page's form.
pub fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Posts a form as a same-origin browser.
pub async fn submit_form(
    app: &TestApp,
    client: &Client,
    path: &str,
    fields: &[(&str, &str)],
) -> Response {
    client
        .post(app.url(path))
        .header("sec-fetch-site", "same-origin")
        .form(fields)
        .send()
        .await
        .unwrap()
}
