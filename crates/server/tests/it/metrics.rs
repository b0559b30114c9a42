//! Prometheus metrics (issue 7): what sign-ins, lockouts and requests do to the counters and
//! the latency histogram, read as a scraper reads them, from the metrics listener's router.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;
use crate::totp::independent_totp;

on_both_backends!(
    password_sign_ins_move_their_counters_and_the_histogram_names_the_route,
    second_factor_codes_are_counted_by_method,
);

/// Serves the metrics router of `app` on a port of its own; returns the `/metrics` URL.
async fn metrics_url(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = twofold_server::metrics::router(app.state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}/metrics")
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels, exactly as exposed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn password(outcome: &str) -> String {
    format!(
        "twofold_login_attempts_total{{step=\"password\",method=\"password\",outcome=\"{outcome}\"}}"
    )
}

fn login_requests(status: &str) -> String {
    format!(
        "twofold_http_request_duration_seconds_count{{method=\"POST\",route=\"/api/v1/login\",status=\"{status}\"}}"
    )
}

async fn password_sign_ins_move_their_counters_and_the_histogram_names_the_route(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let url = metrics_url(&app).await;
    app.create_user("ada@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    let before = scrape(&url).await;
    for outcome in ["success", "failure", "throttled"] {
        assert_eq!(sample(&before, &password(outcome)), 0.0);
    }
    assert_eq!(
        sample(&before, "twofold_lockouts_total{step=\"password\"}"),
        0.0
    );

    let wrong = app
        .login(&client, "ada@example.com", "not the password")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let after_failure = scrape(&url).await;
    assert_eq!(sample(&after_failure, &password("failure")), 1.0);
    assert_eq!(sample(&after_failure, &password("success")), 0.0);

    let right = app.login(&client, "ada@example.com", PASSWORD).await;
    assert_eq!(right.status(), StatusCode::OK);
    let after_success = scrape(&url).await;
    assert_eq!(sample(&after_success, &password("success")), 1.0);
    assert_eq!(sample(&after_success, &password("failure")), 1.0);

    // Five wrong passwords begin a lockout; then even the right one is answered 429.
    for _ in 0..5 {
        let wrong = app.login(&client, "ada@example.com", "still not it").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = app.login(&client, "ada@example.com", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    // Not served on the public listener: a proxy in front of it would publish it.
    let public = app.get(&client, "/metrics").await;
    assert_eq!(public.status(), StatusCode::NOT_FOUND);

    let text = scrape(&url).await;
    assert_eq!(sample(&text, &password("failure")), 6.0);
    assert_eq!(sample(&text, &password("throttled")), 1.0);
    assert_eq!(sample(&text, &password("success")), 1.0);
    assert_eq!(
        sample(&text, "twofold_lockouts_total{step=\"password\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "twofold_lockouts_total{step=\"second_factor\"}"),
        0.0
    );
    assert_eq!(sample(&text, "twofold_logins_shed_total"), 0.0);
    // The histogram: by route pattern, method and status class; a path the table does not
    // know is `unmatched`, never itself.
    assert_eq!(sample(&text, &login_requests("4xx")), 7.0);
    assert_eq!(sample(&text, &login_requests("2xx")), 1.0);
    let inf = "twofold_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/login\",status=\"4xx\",le=\"+Inf\"}";
    assert_eq!(sample(&text, inf), 7.0);
    let unmatched = "twofold_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status=\"4xx\"}";
    assert_eq!(sample(&text, unmatched), 1.0);
    assert!(!text.contains("route=\"/metrics\""), "{text}");
    assert!(!text.contains("ada@example.com"), "{text}");
    assert_eq!(sample(&text, "twofold_http_requests_in_flight"), 0.0);
    // The gauges read at the scrape: the test server's two hashing threads, idle, and an
    // empty delivery queue (its messages go to the outbox).
    assert_eq!(sample(&text, "twofold_hashing_workers"), 2.0);
    assert_eq!(sample(&text, "twofold_hashing_queue_depth"), 0.0);
    assert_eq!(
        sample(&text, "twofold_delivery_queue_depth{channel=\"email\"}"),
        0.0
    );
    assert!(text.contains("# TYPE twofold_http_request_duration_seconds histogram\n"));
}

async fn second_factor_codes_are_counted_by_method(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let url = metrics_url(&app).await;
    let (_, secret, _) = app.enroll("bea@example.com").await;
    let client = app.at_second_factor("bea@example.com").await;
    let series = |outcome: &str| {
        format!(
            "twofold_login_attempts_total{{step=\"second_factor\",method=\"totp\",outcome=\"{outcome}\"}}"
        )
    };
    let right = independent_totp(&secret, app.now() + 90);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": wrong}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    app.clock.advance_seconds(90);
    let accepted = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": right}),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let text = scrape(&url).await;
    assert_eq!(sample(&text, &series("failure")), 1.0);
    assert_eq!(sample(&text, &series("success")), 1.0);
    let sms_failures =
        "twofold_login_attempts_total{step=\"second_factor\",method=\"sms\",outcome=\"failure\"}";
    assert_eq!(sample(&text, sms_failures), 0.0);
}
