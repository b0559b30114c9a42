//! SIGKILL right after an acknowledged write loses nothing.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::process::{PASSWORD, installation, temporary_password};

on_both_backends!(acknowledged_writes_survive_sigkill);

async fn acknowledged_writes_survive_sigkill(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };

    // 1. The first admin is acknowledged by the printed line; kill at once.
    let server = install.serve().await;
    let admin_password = temporary_password(&server.next_stdout_line());
    server.kill();

    // 2. A password change is acknowledged by its 200; kill at once.
    let server = install.serve().await;
    assert!(
        server.stdout_lines().is_empty(),
        "the admin survived: no second one is made"
    );
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": "admin@localhost", "password": admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let changed = client
        .post(server.url("/api/v1/login/password"))
        .json(&json!({"new_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    server.kill();

    // 3. After the restart the new password works and the temporary one does not.
    let server = install.serve().await;
    let client = reqwest::Client::new();
    let new: Value = client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": "admin@localhost", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(new["state"], "enrollment_required");
    let old = client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": "admin@localhost", "password": admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
}
