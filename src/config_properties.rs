//! Property tests of the configuration's own parsing: whatever a file or the environment holds,
//! `Config::resolve` answers with a configuration or an error, never a panic. (The binary crate
//! has no library for a cargo-fuzz target to link, so this is its fuzzing.)

use std::collections::HashMap;

use proptest::prelude::*;

use super::{Config, FileConfig};

const VARIABLES: &[&str] = &[
    "TWOFOLD_AUDIT_RETENTION_DAYS",
    "TWOFOLD_CLIENT_IP_HEADER",
    "TWOFOLD_DATABASE_URL",
    "TWOFOLD_DATA_DIR",
    "TWOFOLD_IP_FREE_FAILURES",
    "TWOFOLD_LISTEN",
    "TWOFOLD_MAIL_FROM",
    "TWOFOLD_MASTER_KEY_FILE",
    "TWOFOLD_METRICS_LISTEN",
    "TWOFOLD_PUBLIC_URL",
    "TWOFOLD_SMS_INBOUND_NUMBER",
    "TWOFOLD_SMS_INBOUND_TOKEN",
    "TWOFOLD_SMS_TOKEN",
    "TWOFOLD_SMS_TWILIO_API_BASE",
    "TWOFOLD_SMS_URL",
    "TWOFOLD_SMTP_URL",
    "TWOFOLD_TRUSTED_PROXIES",
];

const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "public_url",
    "smtp_url",
    "mail_from",
    "sms_url",
    "sms_token",
    "sms_twilio_api_base",
    "sms_inbound_number",
    "sms_inbound_token",
    "master_key_file",
    "session_idle_timeout_minutes",
    "session_absolute_timeout_minutes",
    "login_step_timeout_minutes",
    "argon2_memory_kib",
    "argon2_iterations",
    "hashing_workers",
    "hashing_queue",
    "body_limit_bytes",
    "max_connections",
    "totp_issuer",
    "totp_skew_steps",
    "recovery_code_count",
    "audit_retention_days",
    "ip_free_failures",
    "trusted_proxies",
    "client_ip_header",
    "metrics_listen",
    "attachment_limit_bytes",
];

/// Text people (and mistakes) put in settings: URLs, addresses, numbers, CIDRs, junk.
fn setting_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,6}://[a-zA-Z0-9@:._/?=%+-]{0,40}",
        "[0-9a-fA-F:.]{0,40}(/[0-9]{0,3})?",
        "-?[0-9]{0,25}",
        "[ -~]{0,60}",
        any::<String>(),
        Just(String::new()),
        Just("127.0.0.1:0".to_owned()),
        Just("10.0.0.0/8, ::1, 300.1.1.1/99".to_owned()),
    ]
}

/// A TOML value of any type for a key (so a string where a number belongs, and the reverse).
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        setting_text().prop_map(|text| format!("{text:?}")),
        any::<i64>().prop_map(|number| number.to_string()),
        any::<f64>().prop_map(|number| format!("{number:?}")),
        any::<bool>().prop_map(|value| value.to_string()),
        prop::collection::vec(setting_text(), 0..3).prop_map(|items| format!("{items:?}")),
        Just("{ a = 1 }".to_owned()),
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec((prop::sample::select(KEYS), toml_value()), 0..8).prop_map(
            |pairs| {
                pairs
                    .into_iter()
                    .map(|(key, value)| format!("{key} = {value}\n"))
                    .collect()
            }
        ),
        1 => any::<String>(),
    ]
}

/// Not a property, but the configuration's tests have no room left beside it: the metrics
/// listener is off unless asked for, and a bad address is refused by name.
#[test]
fn the_metrics_listener_is_off_by_default_and_an_address_when_set() {
    let resolve = |file: &str, variable: Option<&str>| {
        let file = toml::from_str::<FileConfig>(file).unwrap();
        Config::resolve(file, |name| {
            variable
                .filter(|_| name == "TWOFOLD_METRICS_LISTEN")
                .map(str::to_owned)
        })
    };
    assert_eq!(resolve("", None).unwrap().metrics_listen, None);
    let config = resolve("metrics_listen = \"127.0.0.1:9464\"", None).unwrap();
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let config = resolve("metrics_listen = \"127.0.0.1:9464\"", Some("[::1]:9000")).unwrap();
    assert_eq!(config.metrics_listen, Some("[::1]:9000".parse().unwrap()));
    for bad in ["localhost", "127.0.0.1", "9464", "127.0.0.1:99999"] {
        let error = format!("{:#}", resolve("", Some(bad)).unwrap_err());
        assert!(error.starts_with("TWOFOLD_METRICS_LISTEN"), "{error}");
        assert!(error.contains(bad), "{error}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_file_and_environment_give_a_config_or_an_error(
        text in document(),
        environment in prop::collection::hash_map(prop::sample::select(VARIABLES), setting_text(), 0..6),
    ) {
        let file = toml::from_str::<FileConfig>(&text).unwrap_or_default();
        let environment: HashMap<&str, String> = environment;
        let _ = Config::resolve(file, |name| environment.get(name).cloned());
    }
}
