//! User enumeration: an unknown address, a known one with a wrong password, a disabled account
//! (with the right password or not) and a malformed address get the same answer, through the
//! API and the sign-in page; and the same time, because an unknown address still costs one
//! password verification (`verify_dummy`).

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::json;
use twofold_core::hasher::Argon2Settings;

use crate::helpers::{Backend, Options, PASSWORD, TestApp, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(unknown_known_and_disabled_accounts_get_the_same_answer);

/// The status, the headers that could tell accounts apart, and the body of a response.
async fn answer(response: reqwest::Response) -> (StatusCode, Vec<String>, String) {
    let status = response.status();
    let mut headers: Vec<String> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "content-length"))
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
        .collect();
    headers.sort();
    (status, headers, response.text().await.unwrap())
}

async fn unknown_known_and_disabled_accounts_get_the_same_answer(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    app.create_user("known@example.com", Some(PASSWORD), false)
        .await;
    app.create_user("disabled@example.com", Some(PASSWORD), false)
        .await;
    let id = app.id_of("disabled@example.com").await;
    app.admin_change(&admin, &id, json!({"disabled": true}))
        .await;
    let attempts = [
        ("nobody@example.com", PASSWORD),
        ("known@example.com", "not the right password"),
        ("disabled@example.com", PASSWORD),
        ("disabled@example.com", "not the right password"),
        ("not an address", PASSWORD),
    ];

    // The API.
    let mut answers = Vec::new();
    for (email, password) in attempts {
        answers.push(answer(app.login(&app.client(), email, password).await).await);
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    for (attempt, other) in attempts.iter().zip(&answers) {
        assert_eq!(other, &answers[0], "{attempt:?}");
    }

    // The sign-in page, from one browser (one CSRF token): the same page each time, with
    // what was typed in it.
    let browser = app.client();
    let page = app.get(&browser, "/login").await.text().await.unwrap();
    let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let mut pages = Vec::new();
    for (email, password) in attempts {
        let response = browser
            .post(app.url("/login"))
            .header("sec-fetch-site", "same-origin")
            .form(&[("csrf", csrf), ("email", email), ("password", password)])
            .send()
            .await
            .unwrap();
        let (status, headers, html) = answer(response).await;
        pages.push((status, headers, html.replace(&escape(email), "EMAIL")));
    }
    assert!(pages[0].0.is_client_error(), "{:?}", pages[0]);
    for (attempt, other) in attempts.iter().zip(&pages) {
        assert_eq!(other, &pages[0], "{attempt:?}");
    }
}

/// What the page shows of a typed address.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
}

/// Samples per server and class; four servers give 104 per class while each server sees
/// fewer than 100 failed sign-ins from 127.0.0.1 (the per-address throttle's free failures).
const SAMPLES_PER_SERVER: usize = 26;
const SERVERS: usize = 4;

async fn timed(app: &TestApp, client: &Client, email: &str, password: &str) -> Duration {
    let started = Instant::now();
    let response = client
        .post(app.url("/api/v1/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{email}");
    elapsed
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Mann–Whitney: the share of (unknown, known) pairs in which the unknown address answered
/// sooner (ties count half). 0.5: no telling apart; near 1.0: unknown addresses are faster.
fn sooner_share(unknown: &[Duration], known: &[Duration]) -> f64 {
    let mut wins = 0.0;
    for a in unknown {
        for b in known {
            wins += match a.cmp(b) {
                std::cmp::Ordering::Less => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Greater => 0.0,
            };
        }
    }
    wins / (unknown.len() * known.len()) as f64
}

/// Interleaved samples of three classes: an unknown address, a known one with a wrong
/// password, and (the yardstick of what a missing dummy verification would look like) a
/// known one with a password over the length limit, which is refused before any hashing.
/// With real Argon2 costs, unknown and known must differ by well under one verification
/// (the yardstick's distance from the known class).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_address_takes_as_long_as_a_wrong_password() {
    let too_long = "x".repeat(20_000);
    let (mut unknown, mut known, mut unhashed) = (Vec::new(), Vec::new(), Vec::new());
    for server in 0..SERVERS {
        let options = Options {
            argon2: Argon2Settings::default(),
            ..Options::default()
        };
        let app = spawn_app_with(Backend::Sqlite, options).await.unwrap();
        // One failure per account, far below the per-account lockout.
        for index in 0..SAMPLES_PER_SERVER {
            let email = format!("user-{index}@example.com");
            app.create_user(&email, Some(PASSWORD), false).await;
        }
        let client = app.client();
        timed(&app, &client, "warm-up@example.com", PASSWORD).await;
        for index in 0..SAMPLES_PER_SERVER {
            let absent = format!("nobody-{server}-{index}@example.com");
            let present = format!("user-{index}@example.com");
            // Rotate which class goes first, so that drift hits all alike.
            for turn in 0..3 {
                match (turn + index) % 3 {
                    0 => unknown.push(timed(&app, &client, &absent, "wrong password!").await),
                    1 => known.push(timed(&app, &client, &present, "wrong password!").await),
                    _ => unhashed.push(timed(&app, &client, &present, &too_long).await),
                }
            }
        }
    }
    assert!(unknown.len() >= 100 && known.len() >= 100);
    let share = sooner_share(&unknown, &known);
    // Each round's samples were taken moments apart: their differences cancel slow drift in
    // the machine's load, and their median is the typical gap.
    let paired = |a: &[Duration], b: &[Duration]| -> f64 {
        let mut gaps: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(a, b)| a.as_secs_f64() - b.as_secs_f64())
            .collect();
        gaps.sort_by(f64::total_cmp);
        gaps[gaps.len() / 2] * 1000.0
    };
    let gap = paired(&known, &unknown);
    let verification = paired(&known, &unhashed);
    let (unknown, known, unhashed) = (
        median(&mut unknown),
        median(&mut known),
        median(&mut unhashed),
    );
    eprintln!(
        "medians: unknown {unknown:?}, known {known:?}, no hashing {unhashed:?}; paired gaps: \
         known - unknown {gap:.1} ms, known - no hashing (one verification) \
         {verification:.1} ms; unknown answered sooner in {:.0}% of pairs",
        share * 100.0
    );
    assert!(
        verification >= 3.0,
        "a verification costs too little ({verification:.1} ms) for timing to tell anything"
    );
    // Without the dummy verification an unknown address would take the no-hashing path: a
    // gap of one whole verification. Half of one is the tolerance (load from other processes
    // moves single samples by tens of milliseconds, the median gap far less).
    assert!(
        gap.abs() * 2.0 < verification,
        "known - unknown is {gap:.1} ms, over half of one verification ({verification:.1} \
         ms): timing tells who has an account"
    );
}
