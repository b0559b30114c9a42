//! Unit tests of the configuration: defaults, files, variables and their refusals.

use super::*;
use secrecy::ExposeSecret;
use std::collections::HashMap;

fn resolve(file: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::resolve(toml::from_str(file).unwrap(), |name| env.get(name).cloned())
}

#[test]
fn embedded_defaults_match_the_contract() {
    let config = resolve("", &[]).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data_dir, PathBuf::from("./twofold-data"));
    assert_eq!(config.database_url, "sqlite://./twofold-data/twofold.db");
    assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(
        config.master_key_file,
        PathBuf::from("./twofold-data/master.key")
    );
    assert!(config.smtp.is_none() && config.sms.is_none());
    assert_eq!(config.mail_from.to_string(), "Twofold <twofold@localhost>");
    assert_eq!(
        (
            config.session_idle_timeout_minutes,
            config.session_absolute_timeout_minutes
        ),
        (30, 720)
    );
}

#[test]
fn the_environment_overrides_the_file_and_derived_values_follow() {
    let config = resolve(
        "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/a\"\nsession_idle_timeout_minutes = 10",
        &[
            ("TWOFOLD_DATA_DIR", "/srv/b"),
            ("TWOFOLD_PUBLIC_URL", "https://login.example.com"),
        ],
    )
    .unwrap();
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.database_url, "sqlite:///srv/b/twofold.db");
    assert_eq!(config.master_key_file, PathBuf::from("/srv/b/master.key"));
    assert_eq!(config.public_url.as_str(), "https://login.example.com/");
    assert_eq!(config.session_idle_timeout_minutes, 10);
}

#[test]
fn audit_retention_defaults_to_a_year_and_must_be_at_least_a_day() {
    assert_eq!(resolve("", &[]).unwrap().audit_retention_days, 365);
    assert_eq!(
        resolve("audit_retention_days = 30", &[])
            .unwrap()
            .audit_retention_days,
        30
    );
    assert_eq!(
        resolve(
            "audit_retention_days = 30",
            &[("TWOFOLD_AUDIT_RETENTION_DAYS", "90")]
        )
        .unwrap()
        .audit_retention_days,
        90
    );
    for (file, env) in [
        ("audit_retention_days = 0", ""),
        ("audit_retention_days = -5", ""),
        ("audit_retention_days = 36501", ""),
        ("", "0"),
        ("", "a year"),
    ] {
        let env: Vec<(&str, &str)> = if env.is_empty() {
            vec![]
        } else {
            vec![("TWOFOLD_AUDIT_RETENTION_DAYS", env)]
        };
        let error = format!("{:#}", resolve(file, &env).unwrap_err());
        assert!(error.contains("TWOFOLD_AUDIT_RETENTION_DAYS"), "{error}");
    }
}

#[test]
fn bad_values_are_refused_with_a_reason() {
    assert!(resolve("", &[("TWOFOLD_LISTEN", "nowhere")]).is_err());
    assert!(resolve("", &[("TWOFOLD_PUBLIC_URL", "ftp://x")]).is_err());
    assert!(resolve("argon2_memory_kib = 1024", &[]).is_err());
    assert!(resolve("argon2_memory_kib = 4294967295", &[]).is_err());
    assert!(resolve("session_idle_timeout_minutes = 9223372036854775807", &[]).is_err());
    assert!(resolve("max_connections = 0", &[]).is_err());
    assert!(toml::from_str::<FileConfig>("no_such_key = 1").is_err());
}

#[test]
fn client_addresses_and_their_limit() {
    let config = resolve("", &[]).unwrap();
    assert_eq!(config.ip_free_failures, 100);
    assert_eq!(config.client_ip, ClientIpSettings::default());

    let config = resolve(
        "ip_free_failures = 20\ntrusted_proxies = \"10.0.0.0/8\"",
        &[
            ("TWOFOLD_IP_FREE_FAILURES", "0"),
            ("TWOFOLD_TRUSTED_PROXIES", "192.0.2.1, 10.0.0.0/8"),
            ("TWOFOLD_CLIENT_IP_HEADER", "X-Forwarded-For"),
        ],
    )
    .unwrap();
    assert_eq!(config.ip_free_failures, 0);
    assert_eq!(config.client_ip.trusted_proxies.len(), 2);
    assert_eq!(
        config.client_ip.header.as_ref().map(|name| name.as_str()),
        Some("x-forwarded-for")
    );
    assert_eq!(
        resolve("ip_free_failures = 20", &[])
            .unwrap()
            .ip_free_failures,
        20
    );

    let error = format!(
        "{:#}",
        resolve("", &[("TWOFOLD_CLIENT_IP_HEADER", "X-Real-IP")]).unwrap_err()
    );
    assert_eq!(
        error,
        "TWOFOLD_CLIENT_IP_HEADER needs TWOFOLD_TRUSTED_PROXIES"
    );
    let error = format!(
        "{:#}",
        resolve("", &[("TWOFOLD_TRUSTED_PROXIES", "10.0.0.0/40")]).unwrap_err()
    );
    assert!(error.contains("10.0.0.0/40"), "{error}");
    let error = format!(
        "{:#}",
        resolve("", &[("TWOFOLD_IP_FREE_FAILURES", "many")]).unwrap_err()
    );
    assert!(error.contains("TWOFOLD_IP_FREE_FAILURES"), "{error}");
}

#[test]
fn delivery_settings_come_from_the_environment_or_the_file() {
    let config = resolve(
        "smtp_url = \"smtps://alice:secret@mail.example.com\"\nsms_url = \"https://sms.example.com/hook\"",
        &[
            ("TWOFOLD_PUBLIC_URL", "https://login.example.com"),
            ("TWOFOLD_SMS_TOKEN", "tok"),
        ],
    )
    .unwrap();
    let smtp = config.smtp.unwrap();
    assert_eq!((smtp.host(), smtp.port()), ("mail.example.com", 465));
    assert_eq!(
        config.mail_from.to_string(),
        "Twofold <twofold@login.example.com>"
    );
    assert!(matches!(
        config.sms,
        Some(SmsGatewaySettings::Webhook { token: Some(_), .. })
    ));

    let config = resolve(
        "smtp_url = \"smtp://file.example.com\"\nmail_from = \"Login <login@example.com>\"",
        &[
            ("TWOFOLD_SMTP_URL", "smtp://127.0.0.1:2525?tls=none"),
            ("TWOFOLD_SMS_URL", "twilio://AC1:token@+14155550100"),
            ("TWOFOLD_SMS_TWILIO_API_BASE", "http://127.0.0.1:9000"),
        ],
    )
    .unwrap();
    assert_eq!(config.smtp.unwrap().host(), "127.0.0.1");
    assert_eq!(config.mail_from.to_string(), "Login <login@example.com>");
    assert!(matches!(
        config.sms,
        Some(SmsGatewaySettings::Twilio { .. })
    ));
}

#[test]
fn inbound_texts_need_a_number_and_a_signing_token() {
    assert!(resolve("", &[]).unwrap().sms_inbound.is_none());
    let config = resolve(
        "sms_inbound_number = \"+1 415 555 0100\"",
        &[("TWOFOLD_SMS_INBOUND_TOKEN", "signing-token")],
    )
    .unwrap();
    let inbound = config.sms_inbound.unwrap();
    assert_eq!(inbound.number, "+14155550100");
    assert_eq!(inbound.token.expose_secret(), "signing-token");
    // A twilio:// gateway lends its auth token.
    let config = resolve(
        "",
        &[
            ("TWOFOLD_SMS_URL", "twilio://AC1:authtoken@+14155550100"),
            ("TWOFOLD_SMS_INBOUND_NUMBER", "+14155550100"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.sms_inbound.unwrap().token.expose_secret(),
        "authtoken"
    );
    for env in [
        &[("TWOFOLD_SMS_INBOUND_NUMBER", "+14155550100")][..],
        &[("TWOFOLD_SMS_INBOUND_TOKEN", "signing-token")][..],
        &[
            ("TWOFOLD_SMS_INBOUND_NUMBER", "not a number"),
            ("TWOFOLD_SMS_INBOUND_TOKEN", "signing-token"),
        ][..],
    ] {
        let error = resolve("", env).unwrap_err().to_string();
        assert!(error.contains("TWOFOLD_SMS_INBOUND"), "{error}");
        assert!(!error.contains("signing-token"), "{error}");
    }
}

#[test]
fn bad_delivery_settings_are_refused_in_one_line_without_secrets() {
    let cases: [&[(&str, &str)]; 5] = [
        &[(
            "TWOFOLD_SMTP_URL",
            "smtp://alice:hunter2@mail.example.com?tls=off",
        )],
        &[("TWOFOLD_SMTP_URL", "imap://alice:hunter2@mail.example.com")],
        &[("TWOFOLD_MAIL_FROM", "not an address")],
        &[("TWOFOLD_SMS_URL", "twilio://AC1:hunter2@555")],
        &[("TWOFOLD_SMS_TOKEN", "hunter2")],
    ];
    for env in cases {
        let error = format!("{:#}", resolve("", env).unwrap_err());
        assert!(!error.contains('\n'), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
