//! Configuration: embedded defaults, then a TOML file (`--config`), then `TWOFOLD_*` environment
//! variables, each overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde::Deserialize;
use twofold_core::phone::PhoneNumber;
use twofold_server::context::ClientIpSettings;
use twofold_server::delivery::sms_gateway::SmsGatewaySettings;
use twofold_server::delivery::smtp::{self, Mailbox, SmtpSettings};
use url::Url;

/// The configuration file's shape. Every field is optional; see [`Config::load`] for defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
    pub sms_url: Option<String>,
    pub sms_token: Option<String>,
    pub sms_twilio_api_base: Option<String>,
    pub sms_inbound_number: Option<String>,
    pub sms_inbound_token: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub session_idle_timeout_minutes: Option<i64>,
    pub session_absolute_timeout_minutes: Option<i64>,
    pub login_step_timeout_minutes: Option<i64>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub hashing_workers: Option<usize>,
    pub hashing_queue: Option<usize>,
    pub body_limit_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub totp_issuer: Option<String>,
    pub totp_skew_steps: Option<u64>,
    pub recovery_code_count: Option<usize>,
    pub audit_retention_days: Option<i64>,
    pub ip_free_failures: Option<u32>,
    pub trusted_proxies: Option<String>,
    pub client_ip_header: Option<String>,
    pub metrics_listen: Option<String>,
    pub attachment_limit_bytes: Option<u64>,
}

/// A hundred years: retention beyond that is "keep everything", and the cutoff stays a valid
/// date.
const MAX_AUDIT_RETENTION_DAYS: i64 = 36_500;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub public_url: Url,
    /// `None`: email goes to the outbox.
    pub smtp: Option<SmtpSettings>,
    /// The From of every email.
    pub mail_from: Mailbox,
    /// `None`: text messages go to the outbox.
    pub sms: Option<SmsGatewaySettings>,
    /// Where people text a code to verify their phone, with the token that signs the
    /// gateway's inbound webhook; `None`: that way of verifying a phone is off.
    pub sms_inbound: Option<InboundSms>,
    pub master_key_file: PathBuf,
    pub session_idle_timeout_minutes: i64,
    pub session_absolute_timeout_minutes: i64,
    pub login_step_timeout_minutes: i64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub hashing_workers: usize,
    pub hashing_queue: usize,
    pub body_limit_bytes: usize,
    pub max_connections: usize,
    pub totp_issuer: String,
    pub totp_skew_steps: u64,
    pub recovery_code_count: usize,
    /// Audit entries older than this many days are removed (the chain keeps an anchor).
    pub audit_retention_days: i64,
    /// Failed checks one client address may make before it must wait; 0 turns the limit off.
    pub ip_free_failures: u32,
    /// Trusted reverse proxies and the header they name the client in.
    pub client_ip: ClientIpSettings,
    /// Where `GET /metrics` is served (Prometheus); `None`, the default: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The largest secure-message attachment, in bytes (413 past it).
    pub attachment_limit_bytes: u64,
}

impl Config {
    /// Reads the file (if given) and the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid configuration in {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        Self::resolve(from_file, |name| {
            std::env::var(name).ok().filter(|value| !value.is_empty())
        })
    }

    /// Applies environment overrides (`env`) and defaults to what the file said.
    pub fn resolve(
        file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let listen_text = env("TWOFOLD_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("TWOFOLD_LISTEN {listen_text:?} is not an address like 127.0.0.1:8080")
        })?;
        let data_dir = env("TWOFOLD_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| "./twofold-data".into());
        let database_url = env("TWOFOLD_DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("twofold.db").display()));
        let public_text = env("TWOFOLD_PUBLIC_URL")
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen_text}"));
        let public_url = Url::parse(&public_text)
            .with_context(|| format!("TWOFOLD_PUBLIC_URL {public_text:?} is not a URL"))?;
        if !matches!(public_url.scheme(), "http" | "https") || public_url.host().is_none() {
            bail!("TWOFOLD_PUBLIC_URL must be an http:// or https:// URL with a host");
        }
        let master_key_file = env("TWOFOLD_MASTER_KEY_FILE")
            .map(PathBuf::from)
            .or(file.master_key_file)
            .unwrap_or_else(|| data_dir.join("master.key"));
        let workers = (file.hashing_workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
        let totp_issuer = file
            .totp_issuer
            .unwrap_or_else(|| public_url.host_str().unwrap_or("Twofold").to_owned());
        let smtp = env("TWOFOLD_SMTP_URL")
            .or(file.smtp_url)
            .map(|url| SmtpSettings::parse(&url))
            .transpose()?;
        let mail_from = match env("TWOFOLD_MAIL_FROM").or(file.mail_from) {
            Some(text) => smtp::parse_sender(&text).map_err(anyhow::Error::msg)?,
            None => smtp::default_sender(&public_url),
        };
        let sms = sms_gateway(
            env("TWOFOLD_SMS_URL").or(file.sms_url),
            env("TWOFOLD_SMS_TOKEN").or(file.sms_token),
            env("TWOFOLD_SMS_TWILIO_API_BASE").or(file.sms_twilio_api_base),
        )?;
        let sms_inbound = inbound_sms(
            env("TWOFOLD_SMS_INBOUND_NUMBER").or(file.sms_inbound_number),
            env("TWOFOLD_SMS_INBOUND_TOKEN").or(file.sms_inbound_token),
            sms.as_ref(),
        )?;
        let audit_retention_days = match env("TWOFOLD_AUDIT_RETENTION_DAYS") {
            Some(text) => text.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "TWOFOLD_AUDIT_RETENTION_DAYS {text:?} is not a whole number of days"
                )
            })?,
            None => file.audit_retention_days.unwrap_or(365),
        };
        let ip_free_failures = match env("TWOFOLD_IP_FREE_FAILURES") {
            Some(text) => text.trim().parse().map_err(|_| {
                anyhow::anyhow!("TWOFOLD_IP_FREE_FAILURES {text:?} is not a whole number")
            })?,
            None => file.ip_free_failures.unwrap_or(100),
        };
        let client_ip = ClientIpSettings::parse(
            &env("TWOFOLD_TRUSTED_PROXIES")
                .or(file.trusted_proxies)
                .unwrap_or_default(),
            env("TWOFOLD_CLIENT_IP_HEADER")
                .or(file.client_ip_header)
                .as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        let metrics_listen = env("TWOFOLD_METRICS_LISTEN")
            .or(file.metrics_listen)
            .map(|text| {
                text.parse().with_context(|| {
                    format!("TWOFOLD_METRICS_LISTEN {text:?} is not an address like 127.0.0.1:9464")
                })
            })
            .transpose()?;
        let attachment_limit_bytes = match env("TWOFOLD_ATTACHMENT_LIMIT_BYTES") {
            Some(text) => text.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "TWOFOLD_ATTACHMENT_LIMIT_BYTES {text:?} is not a whole number of bytes"
                )
            })?,
            None => file
                .attachment_limit_bytes
                .unwrap_or(twofold_core::messages::DEFAULT_ATTACHMENT_LIMIT_BYTES),
        };
        let config = Config {
            listen,
            data_dir,
            database_url,
            public_url,
            smtp,
            mail_from,
            sms,
            sms_inbound,
            master_key_file,
            session_idle_timeout_minutes: file.session_idle_timeout_minutes.unwrap_or(30),
            session_absolute_timeout_minutes: file
                .session_absolute_timeout_minutes
                .unwrap_or(12 * 60),
            login_step_timeout_minutes: file.login_step_timeout_minutes.unwrap_or(15),
            argon2_memory_kib: file.argon2_memory_kib.unwrap_or(19_456),
            argon2_iterations: file.argon2_iterations.unwrap_or(2),
            hashing_workers: workers,
            hashing_queue: file.hashing_queue.unwrap_or(8 * workers),
            body_limit_bytes: file.body_limit_bytes.unwrap_or(64 * 1024),
            max_connections: file.max_connections.unwrap_or(4096),
            totp_issuer,
            totp_skew_steps: file.totp_skew_steps.unwrap_or(1),
            recovery_code_count: file.recovery_code_count.unwrap_or(10),
            audit_retention_days,
            ip_free_failures,
            client_ip,
            metrics_listen,
            attachment_limit_bytes,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.argon2_memory_kib < 19_456 || self.argon2_iterations < 2 {
            bail!("Argon2id parameters below m=19456 KiB, t=2 are not allowed (OWASP minimum)");
        }
        if self.argon2_memory_kib > 1_048_576 || self.argon2_iterations > 64 {
            bail!("Argon2id parameters above m=1048576 KiB (1 GiB) or t=64 are not allowed");
        }
        let week = 7 * 24 * 60;
        if self.session_idle_timeout_minutes > week
            || self.session_absolute_timeout_minutes > 30 * 24 * 60
            || self.login_step_timeout_minutes > 24 * 60
        {
            bail!(
                "session timeouts are limited to 7 days idle, 30 days absolute and 1 day per login step"
            );
        }
        if self.hashing_workers > 256
            || self.hashing_queue > 100_000
            || self.body_limit_bytes > 64 * 1024 * 1024
        {
            bail!(
                "hashing_workers is limited to 256, hashing_queue to 100000 and body_limit_bytes to 64 MiB"
            );
        }
        if self.totp_skew_steps > 2 {
            bail!("totp_skew_steps above 2 (a minute and a half either side) is not allowed");
        }
        if !(5..=16).contains(&self.recovery_code_count) {
            bail!("recovery_code_count must be between 5 and 16");
        }
        if self.totp_issuer.is_empty()
            || self.totp_issuer.contains(':')
            || self.totp_issuer.len() > 64
        {
            bail!("totp_issuer must be 1 to 64 characters without ':'");
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            bail!("max_connections must be between 1 and 1000000");
        }
        if self.session_idle_timeout_minutes < 1
            || self.session_absolute_timeout_minutes < self.session_idle_timeout_minutes
        {
            bail!(
                "session timeouts must be at least 1 minute, and the absolute one at least the idle one"
            );
        }
        if self.login_step_timeout_minutes < 1 {
            bail!("login_step_timeout_minutes must be at least 1");
        }
        if !(1..=MAX_AUDIT_RETENTION_DAYS).contains(&self.audit_retention_days) {
            bail!(
                "audit_retention_days (TWOFOLD_AUDIT_RETENTION_DAYS) must be between 1 and {MAX_AUDIT_RETENTION_DAYS}"
            );
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.attachment_limit_bytes) {
            bail!(
                "attachment_limit_bytes (TWOFOLD_ATTACHMENT_LIMIT_BYTES) must be between 1024 and 1073741824 (1 GiB)"
            );
        }
        if self.hashing_workers == 0 || self.body_limit_bytes < 1024 {
            bail!("hashing_workers must be at least 1 and body_limit_bytes at least 1024");
        }
        Ok(())
    }
}

/// The system number people text, and the token that signs the gateway's inbound webhook.
#[derive(Clone)]
pub struct InboundSms {
    /// E.164.
    pub number: String,
    pub token: SecretString,
}

impl std::fmt::Debug for InboundSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundSms")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

/// Inbound phone verification, when `TWOFOLD_SMS_INBOUND_NUMBER` is set. The webhook's
/// signing token is `TWOFOLD_SMS_INBOUND_TOKEN`, else the auth token of a `twilio://` gateway.
fn inbound_sms(
    number: Option<String>,
    token: Option<String>,
    gateway: Option<&SmsGatewaySettings>,
) -> anyhow::Result<Option<InboundSms>> {
    let Some(number) = number else {
        if token.is_some() {
            bail!("TWOFOLD_SMS_INBOUND_TOKEN needs TWOFOLD_SMS_INBOUND_NUMBER to be set");
        }
        return Ok(None);
    };
    let number = PhoneNumber::parse(&number, None)
        .map_err(|error| {
            anyhow::anyhow!(
                "TWOFOLD_SMS_INBOUND_NUMBER must be a phone number in E.164 (+…): {error}"
            )
        })?
        .as_e164()
        .to_owned();
    let token = match (token, gateway) {
        (Some(token), _) if !token.trim().is_empty() => SecretString::from(token.trim().to_owned()),
        (Some(_), _) => bail!("TWOFOLD_SMS_INBOUND_TOKEN is empty"),
        (None, Some(SmsGatewaySettings::Twilio { auth_token, .. })) => auth_token.clone(),
        (None, _) => bail!(
            "TWOFOLD_SMS_INBOUND_NUMBER needs TWOFOLD_SMS_INBOUND_TOKEN (the token that signs the inbound webhook) or a twilio:// TWOFOLD_SMS_URL"
        ),
    };
    Ok(Some(InboundSms { number, token }))
}

/// The SMS gateway, when `TWOFOLD_SMS_URL` is set; its companions alone are a mistake.
fn sms_gateway(
    url: Option<String>,
    token: Option<String>,
    twilio_api_base: Option<String>,
) -> anyhow::Result<Option<SmsGatewaySettings>> {
    match url {
        Some(url) => Ok(Some(SmsGatewaySettings::parse(
            &url,
            token.as_deref(),
            twilio_api_base.as_deref(),
        )?)),
        None if token.is_some() || twilio_api_base.is_some() => bail!(
            "TWOFOLD_SMS_TOKEN and TWOFOLD_SMS_TWILIO_API_BASE need TWOFOLD_SMS_URL to be set"
        ),
        None => Ok(None),
    }
}

#[cfg(test)]
#[path = "config_properties.rs"]
mod properties;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
