//! Second factors end to end through the real binary: the CLI sees and resets them, and no
//! secret is ever written in clear to the database, the logs or the outbox.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

use crate::on_both_backends;
use crate::process::{Installation, PASSWORD, Server, installation, stderr, stdout};

on_both_backends!(
    the_cli_lists_and_resets_factors,
    secrets_never_appear_in_clear,
    the_server_refuses_to_start_without_the_key_its_secrets_need,
);

/// RFC 6238 (SHA-1, 6 digits, 30 s), independent of the project's `otp` crate.
pub(crate) fn totp(secret: &[u8], unix_time: u64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).unwrap();
    mac.update(&(unix_time / 30).to_be_bytes());
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

pub(crate) fn base32_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut count, mut out) = (0u64, 0, Vec::new());
    for byte in text.bytes() {
        bits = (bits << 5) | alphabet.iter().position(|symbol| *symbol == byte).unwrap() as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

pub(crate) fn now() -> u64 {
    #[allow(clippy::disallowed_methods)] // the test talks to a server on the wall clock
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub(crate) struct Enrolled {
    pub(crate) secret: Vec<u8>,
    pub(crate) secret_base32: String,
    pub(crate) recovery_codes: Vec<String>,
}

/// Creates a user who must use 2FA and enrolls an authenticator through the API.
pub(crate) async fn enroll(install: &Installation, server: &Server, email: &str) -> Enrolled {
    enroll_with_flags(install, server, email, &[]).await
}

/// [`enroll`], with more `twofold user add` flags (`--admin`).
pub(crate) async fn enroll_with_flags(
    install: &Installation,
    server: &Server,
    email: &str,
    flags: &[&str],
) -> Enrolled {
    let mut args = vec!["user", "add", email, "--require-2fa", "--password-stdin"];
    args.extend_from_slice(flags);
    let added = install.run(&args, Some(PASSWORD));
    assert!(added.status.success(), "{}", stderr(&added));
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.json::<Value>().await.unwrap()["state"],
        "enrollment_required"
    );
    let started: Value = client
        .post(server.url("/api/v1/account/totp"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret_base32 = started["secret"].as_str().unwrap().to_owned();
    let secret = base32_decode(&secret_base32);
    let confirmed: Value = client
        .post(server.url("/api/v1/account/totp/confirm"))
        .json(&json!({"code": totp(&secret, now())}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recovery_codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        secret,
        secret_base32,
        recovery_codes,
    }
}

async fn the_cli_lists_and_resets_factors(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let server = install.serve().await;
    enroll(&install, &server, "ivan@example.com").await;
    let shown = stdout(&install.run(&["user", "show", "ivan@example.com"], None));
    assert!(
        shown.contains("two_factor: enabled") && shown.contains("methods: totp, recovery_code"),
        "{shown}"
    );
    let reset = install.run(&["user", "reset-2fa", "ivan@example.com"], None);
    assert!(reset.status.success(), "{}", stderr(&reset));
    let shown = stdout(&reset);
    assert!(
        shown.contains("two_factor: pending") && shown.contains("methods: none"),
        "{shown}"
    );
    let login: Value = reqwest::Client::new()
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": "ivan@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(login["state"], "enrollment_required");
}

async fn secrets_never_appear_in_clear(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let log = install.data_path().join("server.log");
    let server = install.serve_logging_to(Some(&log)).await;
    let enrolled = enroll(&install, &server, "judy@example.com").await;
    // Sign in once more with a code and with a recovery code, so those paths are logged too.
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": "judy@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let verified = client
        .post(server.url("/api/v1/login/verify"))
        .json(&json!({"method": "recovery_code", "code": enrolled.recovery_codes[0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    // The server's stdout too (its stderr is `server.log`), once the reader thread caught up.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let server_stdout = server.stdout_lines().join("\n").into_bytes();
    server.kill();

    let hex: String = enrolled
        .secret
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let mut needles: Vec<Vec<u8>> = vec![
        enrolled.secret.clone(),
        enrolled.secret_base32.as_bytes().to_vec(),
        enrolled.secret_base32.to_lowercase().into_bytes(),
        hex.into_bytes(),
        PASSWORD.as_bytes().to_vec(),
    ];
    for code in &enrolled.recovery_codes {
        needles.push(code.as_bytes().to_vec());
        needles.push(code.replace('-', "").to_uppercase().into_bytes());
    }
    let mut haystacks: Vec<(String, Vec<u8>)> = vec![("server stdout".into(), server_stdout)];
    for entry in walk(install.data_path()) {
        haystacks.push((entry.display().to_string(), std::fs::read(&entry).unwrap()));
    }
    if postgres {
        haystacks.push((
            "PostgreSQL tables".into(),
            dump_postgres(install.database.url()).await,
        ));
    }
    assert!(
        haystacks
            .iter()
            .any(|(name, _)| name.ends_with("server.log"))
    );
    for (name, contents) in &haystacks {
        for needle in &needles {
            assert!(
                !contents
                    .windows(needle.len())
                    .any(|window| window == needle.as_slice()),
                "a secret is in clear in {name}"
            );
        }
    }
}

pub(crate) fn walk(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}

/// Every row of every table, as text and as raw bytes.
pub(crate) async fn dump_postgres(url: &str) -> Vec<u8> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut dump = Vec::new();
    let tables = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap();
    for table in tables {
        let name: String = table.get(0);
        for row in client
            .query(&format!("SELECT t::text FROM {name} t"), &[])
            .await
            .unwrap()
        {
            dump.extend(row.get::<_, String>(0).into_bytes());
        }
    }
    let sealed = client
        .query("SELECT sealed_secret FROM totp_authenticators", &[])
        .await
        .unwrap();
    for row in sealed {
        dump.extend(row.get::<_, Vec<u8>>(0));
    }
    dump
}

async fn the_server_refuses_to_start_without_the_key_its_secrets_need(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let server = install.serve().await;
    enroll(&install, &server, "kim@example.com").await;
    server.kill();
    let key = install.data_path().join("master.key");
    let saved = std::fs::read(&key).unwrap();

    // Lost: no new key may be made over secrets sealed with the old one.
    std::fs::remove_file(&key).unwrap();
    let refused = serve_to_completion(&install).await;
    assert!(!refused.status.success());
    let message = stderr(&refused);
    let message = message
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.starts_with("twofold: "),
        "the error is one line: {message}"
    );
    assert!(
        message.contains("is missing") && message.contains("restore"),
        "{message}"
    );
    assert!(!key.exists(), "no replacement key was created");

    // Replaced by another key: refused too.
    std::fs::write(&key, [9u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let refused = serve_to_completion(&install).await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("use the right key file"),
        "{}",
        stderr(&refused)
    );

    // Restored: it starts and the authenticator works again.
    std::fs::write(&key, saved).unwrap();
    let server = install.serve().await;
    assert!(
        reqwest::get(server.url("/healthz"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

/// Runs `twofold serve` expecting it to stop by itself (it refuses to start); a server that
/// starts instead is killed after 30 seconds and the test fails.
pub(crate) async fn serve_to_completion(install: &Installation) -> std::process::Output {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut command = install.command();
    command
        .arg("serve")
        .env("TWOFOLD_LISTEN", listen)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("serve did not stop by itself: it started");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.wait_with_output().unwrap()
}
