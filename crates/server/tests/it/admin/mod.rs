//! The administration API (seed 004): who may use it, the users' two-factor status through
//! every administrator action, the security policy (also across two instances), and the audit
//! log with its export and tamper check.

mod access;
mod audit;
mod policy;
mod recording;
mod users;

use reqwest::{Client, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use twofold_core::accounts::NewAccount;

use crate::codes::json_of;
use crate::helpers::{PASSWORD, TestApp};

/// The user agent of [`TestApp::agent`]'s clients, which the audit log must record.
pub const USER_AGENT: &str = "twofold-admin-tests/1.0";

/// An administrator signed in with an authenticator app.
pub struct Admin {
    pub client: Client,
    pub id: String,
}

impl TestApp {
    /// A browser-like client that names itself with [`USER_AGENT`].
    pub fn agent(&self) -> Client {
        Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .unwrap()
    }

    /// The id of the user with this address.
    pub async fn id_of(&self, email: &str) -> String {
        self.service.find_user(email).await.unwrap().id.to_string()
    }

    /// Creates an administrator (with [`PASSWORD`], made by the command line).
    pub async fn create_admin(&self, email: &str) -> String {
        let password = SecretString::from(PASSWORD.to_owned());
        let created = self
            .service
            .create_account(
                None,
                NewAccount {
                    email,
                    password: Some(&password),
                    is_admin: true,
                    require_2fa: false,
                },
            )
            .await
            .unwrap();
        created.user.id.to_string()
    }

    /// An administrator who signed in, had to enroll (administrators always use two factors),
    /// and enrolled an authenticator app.
    pub async fn signed_in_admin(&self, email: &str) -> Admin {
        let id = self.create_admin(email).await;
        let client = self.agent();
        let step = json_of(self.login(&client, email, PASSWORD).await, StatusCode::OK).await;
        assert_eq!(step["state"], "enrollment_required", "{step}");
        self.add_totp(&client).await;
        json_of(self.get(&client, "/api/v1/account").await, StatusCode::OK).await;
        Admin { client, id }
    }

    pub async fn patch(&self, client: &Client, path: &str, body: Value) -> Response {
        client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/v1/admin/users/{id}` as `admin`.
    pub async fn admin_view(&self, admin: &Admin, id: &str) -> Value {
        let response = self
            .get(&admin.client, &format!("/api/v1/admin/users/{id}"))
            .await;
        json_of(response, StatusCode::OK).await
    }

    /// `PATCH /api/v1/admin/users/{id}` as `admin`, expecting 200.
    pub async fn admin_change(&self, admin: &Admin, id: &str, change: Value) -> Value {
        let response = self
            .patch(&admin.client, &format!("/api/v1/admin/users/{id}"), change)
            .await;
        json_of(response, StatusCode::OK).await
    }

    /// `POST /api/v1/admin/users/{id}/reset-2fa` as `admin`, expecting 200.
    pub async fn admin_reset(&self, admin: &Admin, id: &str) -> Value {
        let response = self
            .post(
                &admin.client,
                &format!("/api/v1/admin/users/{id}/reset-2fa"),
                json!({}),
            )
            .await;
        json_of(response, StatusCode::OK).await
    }

    /// `PATCH /api/v1/admin/policy` as `admin`, expecting 200.
    pub async fn change_policy(&self, admin: &Admin, change: Value) -> Value {
        let response = self
            .patch(&admin.client, "/api/v1/admin/policy", change)
            .await;
        json_of(response, StatusCode::OK).await
    }

    /// The events of `GET /api/v1/admin/audit?{query}` as `admin`.
    pub async fn audit_events(&self, admin: &Admin, query: &str) -> Vec<Value> {
        let response = self
            .get(&admin.client, &format!("/api/v1/admin/audit?{query}"))
            .await;
        let page = json_of(response, StatusCode::OK).await;
        page["events"].as_array().unwrap().clone()
    }

    /// The state a fresh login of `email` with [`PASSWORD`] reaches.
    pub async fn login_state(&self, email: &str) -> Value {
        let response = self.login(&self.client(), email, PASSWORD).await;
        json_of(response, StatusCode::OK).await
    }
}

/// The `kind`s of events, in the order given.
pub fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect()
}
