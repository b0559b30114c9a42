//! Authenticator apps and recovery codes through the API. Codes come from an independent TOTP
//! implementation written here (RFC 6238 over HMAC-SHA1), not from the project's `otp` crate,
//! and the QR code is read back with a real decoder (`zbarimg`).

mod flows;
mod lockout_races;
mod regressions;

use hmac::{Hmac, Mac};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sha1::Sha1;

use crate::helpers::{PASSWORD, TestApp};

pub fn independent_totp(base32_secret: &str, unix_time: i64) -> String {
    let secret = decode_base32(base32_secret);
    let counter = (unix_time / 30) as u64;
    let mut mac = Hmac::<Sha1>::new_from_slice(&secret).unwrap();
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

pub(super) fn decode_base32(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|byte| *byte != b'=' && *byte != b' ') {
        let value = alphabet.iter().position(|symbol| *symbol == byte).unwrap() as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

impl TestApp {
    pub fn now(&self) -> i64 {
        self.service.clock().now().unix_timestamp()
    }

    /// Signs in a user that must enroll, and enrolls an authenticator: returns the client (now
    /// fully signed in), the base32 secret and the recovery codes.
    pub async fn enroll(&self, email: &str) -> (Client, String, Vec<String>) {
        self.create_user(email, Some(PASSWORD), true).await;
        let client = self.client();
        let state: Value = self
            .login(&client, email, PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(state["state"], "enrollment_required");
        let enrollment: Value = self
            .post(&client, "/api/v1/account/totp", json!({}))
            .await
            .json()
            .await
            .unwrap();
        let secret = enrollment["secret"].as_str().unwrap().to_owned();
        let confirmed = self
            .post(
                &client,
                "/api/v1/account/totp/confirm",
                json!({"code": independent_totp(&secret, self.now())}),
            )
            .await;
        assert_eq!(confirmed.status(), StatusCode::OK);
        let body: Value = confirmed.json().await.unwrap();
        let codes = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap().to_owned())
            .collect();
        (client, secret, codes)
    }

    /// A new client that passed the password step of `email`.
    pub async fn at_second_factor(&self, email: &str) -> Client {
        let client = self.client();
        let state: Value = self
            .login(&client, email, PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(state["state"], "second_factor", "{state}");
        client
    }
}

/// Renders the SVG to PNG and reads it with zbarimg.
pub(super) fn decode_qr(svg: &str) -> String {
    let directory = tempfile::tempdir().unwrap();
    let svg_path = directory.path().join("qr.svg");
    let png_path = directory.path().join("qr.png");
    std::fs::write(&svg_path, svg).unwrap();
    let rendered = std::process::Command::new("rsvg-convert")
        .args(["--width", "400", "--background-color", "white", "-o"])
        .arg(&png_path)
        .arg(&svg_path)
        .status()
        .expect("rsvg-convert (Debian package librsvg2-bin) is installed");
    assert!(rendered.success());
    let output = std::process::Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&png_path)
        .output()
        .expect("zbarimg (Debian package zbar-tools) is installed");
    assert!(output.status.success(), "zbarimg found no QR code");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}
