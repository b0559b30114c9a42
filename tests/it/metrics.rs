//! `TWOFOLD_METRICS_LISTEN` (issue 7): the binary serves Prometheus metrics on a listener of
//! their own, in the Prometheus text format, and never on the public one; a bad address stops
//! it from starting.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::process::{installation, password_step, stderr};
use crate::smtp::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_only() {
    let install = installation(false).await.unwrap();
    let metrics_address = format!("127.0.0.1:{}", free_port());
    let server = install
        .serve_with(None, &[("TWOFOLD_METRICS_LISTEN", &metrics_address)])
        .await;
    let (_, refused) = password_step(&server, "admin@localhost", "not the password").await;
    assert_eq!(refused["error"], "invalid_credentials", "{refused}");

    let response = reqwest::get(format!("http://{metrics_address}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let failures = "twofold_login_attempts_total{step=\"password\",method=\"password\",outcome=\"failure\"} 1\n";
    assert!(text.contains(failures), "{text}");
    let route = "twofold_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/login\",status=\"4xx\"} 1\n";
    assert!(text.contains(route), "{text}");
    assert!(
        text.contains("twofold_delivery_queue_depth{channel=\"email\"} 0\n"),
        "{text}"
    );

    // The public listener has no such page, and the metrics listener nothing else.
    let public = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let other = reqwest::get(format!("http://{metrics_address}/healthz"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_metrics_address_stops_the_server_from_starting() {
    let install = installation(false).await.unwrap();
    let mut child = install
        .command()
        .arg("serve")
        .env("TWOFOLD_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("TWOFOLD_METRICS_LISTEN", "localhost:metrics")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that ignored the setting would run on: give it a while, then fail.
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("the server started despite TWOFOLD_METRICS_LISTEN=localhost:metrics");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let error = stderr(&output);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.contains("TWOFOLD_METRICS_LISTEN"), "{error}");
    assert!(error.contains("localhost:metrics"), "{error}");
    // Refused before the first administrator was made: no password was printed.
    assert!(output.stdout.is_empty());
}
