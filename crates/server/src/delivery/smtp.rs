//! Email over SMTP with lettre (tokio, rustls with Mozilla's roots; no native TLS).
//!
//! `TWOFOLD_SMTP_URL` takes three forms:
//! - `smtp://user:pass@host:port` — STARTTLS, required: a server that does not offer it gets
//!   nothing, not even the credentials (default port 587);
//! - `smtps://user:pass@host:port` — TLS from the first byte (default port 465);
//! - `smtp://host:port?tls=none` — plain text, for a relay on the same machine or network
//!   (default port 25).
//!
//! Credentials are optional and percent-decoded (`%40` for `@`, `%3A` for `:`). Errors about
//! the URL never repeat the password.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use twofold_core::delivery::EmailMessage;
use url::Url;
use uuid::Uuid;

use super::html;
use super::transport::{EmailTransport, TransportError};

/// A sender or recipient with an optional display name (`Twofold <twofold@example.com>`).
pub use lettre::message::Mailbox;

/// How long one SMTP command (connecting included) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain connect, then STARTTLS, which the server must offer.
    StartTls,
    /// `smtps://`: TLS from the start.
    ImplicitTls,
    /// `smtp://…?tls=none`: no encryption at all.
    None,
}

/// A parsed `TWOFOLD_SMTP_URL`.
#[derive(Clone)]
pub struct SmtpSettings {
    host: String,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<(String, SecretString)>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A `TWOFOLD_SMTP_URL` that cannot be used; the message never contains the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("TWOFOLD_SMTP_URL {0}")]
pub struct SmtpUrlError(String);

impl SmtpSettings {
    pub fn parse(text: &str) -> Result<SmtpSettings, SmtpUrlError> {
        let error = |message: &str| SmtpUrlError(message.to_owned());
        // `url`'s parse errors never quote the input.
        let url = Url::parse(text.trim())
            .map_err(|parse| SmtpUrlError(format!("is not a URL ({parse})")))?;
        let scheme_is_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            _ => {
                return Err(error(
                    "must start with smtp:// (STARTTLS), smtps:// (TLS) or be smtp://host:port?tls=none",
                ));
            }
        };
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.trim_matches(['[', ']']).to_owned(),
            _ => return Err(error("names no host")),
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(error(
                "must not have a path: write smtp://user:pass@host:port",
            ));
        }
        let mut plain = false;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "none") if !scheme_is_tls => plain = true,
                ("tls", "starttls") if !scheme_is_tls => plain = false,
                ("tls", _) if scheme_is_tls => {
                    return Err(error("smtps:// is always TLS; it takes no tls= parameter"));
                }
                ("tls", other) => {
                    return Err(SmtpUrlError(format!(
                        "has tls={other:?}; the only values are tls=none (a local relay) and tls=starttls (the default)"
                    )));
                }
                (other, _) => {
                    return Err(SmtpUrlError(format!(
                        "has the unknown parameter {other:?}; only tls=none is accepted"
                    )));
                }
            }
        }
        let security = match (scheme_is_tls, plain) {
            (true, _) => SmtpSecurity::ImplicitTls,
            (false, true) => SmtpSecurity::None,
            (false, false) => SmtpSecurity::StartTls,
        };
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::ImplicitTls => 465,
            SmtpSecurity::None => 25,
        });
        let decode = |part: &str, what: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| SmtpUrlError(format!("has a {what} that is not UTF-8 once decoded")))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(error("has a password but no user name")),
            (_, None) => {
                return Err(error(
                    "has a user name but no password: write smtp://user:pass@host:port",
                ));
            }
            (user, Some(password)) => Some((
                decode(user, "user name")?,
                SecretString::from(decode(password, "password")?),
            )),
        };
        Ok(SmtpSettings {
            host,
            port,
            security,
            credentials,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }

    /// The settings for logs and messages: everything but the password.
    pub fn describe(&self) -> String {
        let security = match self.security {
            SmtpSecurity::StartTls => "STARTTLS",
            SmtpSecurity::ImplicitTls => "TLS",
            SmtpSecurity::None => "no TLS",
        };
        let user = self
            .user()
            .map_or_else(String::new, |user| format!(", user {user}"));
        format!("{}:{} ({security}{user})", self.host, self.port)
    }
}

/// Parses `mail_from` (`Name <address>` or a bare address).
pub fn parse_sender(text: &str) -> Result<Mailbox, String> {
    text.trim().parse::<Mailbox>().map_err(|error| {
        format!(
            "mail_from {text:?} is not a sender like \"Twofold <twofold@example.com>\": {error}"
        )
    })
}

/// `Twofold <twofold@HOST>` for the host of the public URL; `localhost` stands in for an IP
/// address, which most servers refuse in an address.
pub fn default_sender(public_url: &Url) -> Mailbox {
    let domain = match public_url.host() {
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        _ => "localhost".to_owned(),
    };
    let address = Address::new("twofold", &domain)
        .unwrap_or_else(|_| Address::new_dangerous("twofold", "localhost"));
    Mailbox::new(Some("Twofold".to_owned()), address)
}

/// The name this server gives itself in EHLO: the host of its public URL.
pub fn hello_name(public_url: &Url) -> ClientId {
    match public_url.host() {
        Some(url::Host::Domain(domain)) => ClientId::Domain(domain.to_owned()),
        Some(url::Host::Ipv4(address)) => ClientId::Ipv4(address),
        Some(url::Host::Ipv6(address)) => ClientId::Ipv6(address),
        None => ClientId::Domain("localhost".to_owned()),
    }
}

/// Sends through one SMTP server, one connection per message.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    pub fn new(
        settings: &SmtpSettings,
        from: Mailbox,
        hello: ClientId,
    ) -> anyhow::Result<SmtpSender> {
        let tls = |host: &str| {
            TlsParameters::new_rustls(host.to_owned())
                .map_err(|error| anyhow::anyhow!("setting up TLS for {host}: {error}"))
        };
        let tls = match settings.security {
            SmtpSecurity::StartTls => Tls::Required(tls(&settings.host)?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls(&settings.host)?),
            SmtpSecurity::None => Tls::None,
        };
        // "Dangerous" only in that the builder trusts our TLS choice, made explicitly above.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .hello_name(hello)
            .timeout(Some(COMMAND_TIMEOUT));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(SmtpSender {
            transport: builder.build(),
            from,
        })
    }
}

/// The email as it goes on the wire: `multipart/alternative` with the text part and the HTML
/// part, a Message-ID made of the delivery id (the same for every retry, so a receiver can
/// spot a duplicate) and the Date of when the message was first accepted.
pub fn build_message(
    from: &Mailbox,
    delivery_id: Uuid,
    message: &EmailMessage,
    created_at: OffsetDateTime,
) -> anyhow::Result<Message> {
    let to: Address = message
        .to
        .as_str()
        .parse()
        .map_err(|error| anyhow::anyhow!("the recipient is not an SMTP address: {error}"))?;
    let html_body = message
        .html_body
        .clone()
        .unwrap_or_else(|| html::from_text(&message.subject, &message.text_body));
    let message_id = format!("<{}@{}>", delivery_id.simple(), from.email.domain());
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(message.subject.clone())
        .message_id(Some(message_id))
        .date(created_at.into())
        .multipart(MultiPart::alternative_plain_html(
            message.text_body.clone(),
            html_body,
        ))
        .map_err(|error| anyhow::anyhow!("building the email: {error}"))
}

#[async_trait]
impl EmailTransport for SmtpSender {
    async fn send_email(
        &self,
        delivery_id: Uuid,
        message: &EmailMessage,
        created_at: OffsetDateTime,
    ) -> Result<(), TransportError> {
        let email = build_message(&self.from, delivery_id, message, created_at)
            .map_err(TransportError::Permanent)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            // A 5xx answer refuses this message for good (unknown recipient, rejected
            // content, failed authentication); anything else (4xx, timeouts, connection or
            // TLS trouble) may pass later.
            Err(error) if error.is_permanent() => {
                Err(TransportError::Permanent(anyhow::Error::new(error)))
            }
            Err(error) => Err(TransportError::Retry(anyhow::Error::new(error))),
        }
    }
}

/// True for an address on this machine, where a plain connection does not cross a network.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_url_forms_parse_with_their_default_ports() {
        let starttls = SmtpSettings::parse("smtp://alice:secret@mail.example.com").unwrap();
        assert_eq!(starttls.security(), SmtpSecurity::StartTls);
        assert_eq!(
            (starttls.host(), starttls.port()),
            ("mail.example.com", 587)
        );
        assert_eq!(starttls.user(), Some("alice"));

        let implicit = SmtpSettings::parse("smtps://alice:secret@mail.example.com").unwrap();
        assert_eq!(implicit.security(), SmtpSecurity::ImplicitTls);
        assert_eq!(implicit.port(), 465);

        let plain = SmtpSettings::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(plain.security(), SmtpSecurity::None);
        assert_eq!((plain.host(), plain.port()), ("127.0.0.1", 2525));
        assert_eq!(plain.user(), None);
        assert_eq!(
            SmtpSettings::parse("smtp://relay?tls=none").unwrap().port(),
            25
        );
        assert_eq!(
            SmtpSettings::parse("smtp://relay:2587?tls=starttls")
                .unwrap()
                .security(),
            SmtpSecurity::StartTls
        );
        assert_eq!(
            SmtpSettings::parse("smtp://[::1]:25?tls=none")
                .unwrap()
                .host(),
            "::1"
        );
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let settings = SmtpSettings::parse(
            "smtps://alice%40example.com:p%40ss%3Aw%2Frd@mail.example.com:2465",
        )
        .unwrap();
        let (user, password) = settings.credentials.as_ref().unwrap();
        assert_eq!(user, "alice@example.com");
        assert_eq!(password.expose_secret(), "p@ss:w/rd");
        assert_eq!(settings.port(), 2465);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        let cases = [
            "mail.example.com",
            "http://alice:hunter2@mail.example.com",
            "smtp://alice:hunter2@mail.example.com?tls=maybe",
            "smtps://alice:hunter2@mail.example.com?tls=none",
            "smtp://alice:hunter2@mail.example.com?port=25",
            "smtp://alice:hunter2@mail.example.com/path",
            "smtp://alice@mail.example.com",
            "smtp://:hunter2@mail.example.com",
            "smtp://alice:hunter2@",
            "smtp://alice:hunter2%FF@mail.example.com",
        ];
        for url in cases {
            let error = SmtpSettings::parse(url).unwrap_err().to_string();
            assert!(error.starts_with("TWOFOLD_SMTP_URL "), "{error}");
            assert!(!error.contains("hunter2"), "{url}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
        let settings = SmtpSettings::parse("smtp://alice:hunter2@mail.example.com").unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert_eq!(
            settings.describe(),
            "mail.example.com:587 (STARTTLS, user alice)"
        );
    }

    #[test]
    fn senders_parse_and_default_to_the_public_host() {
        let sender = parse_sender("Twofold Login <login@example.com>").unwrap();
        assert_eq!(sender.name.as_deref(), Some("Twofold Login"));
        assert_eq!(sender.email.to_string(), "login@example.com");
        assert!(parse_sender("not an address").is_err());
        let public = Url::parse("https://login.example.com/").unwrap();
        assert_eq!(
            default_sender(&public).to_string(),
            "Twofold <twofold@login.example.com>"
        );
        let by_ip = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            default_sender(&by_ip).to_string(),
            "Twofold <twofold@localhost>"
        );
    }

    #[test]
    fn the_message_is_multipart_text_and_html_with_a_stable_id() {
        let from = parse_sender("Twofold <twofold@example.org>").unwrap();
        let id = Uuid::new_v4();
        let message = EmailMessage {
            to: twofold_core::email::Email::parse("bob@example.com").unwrap(),
            subject: "Your code".into(),
            text_body: "Your code is:\n\n123456\n".into(),
            html_body: None,
        };
        let created_at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let raw = String::from_utf8(
            build_message(&from, id, &message, created_at)
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(
            raw.contains("From: Twofold <twofold@example.org>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("To: bob@example.com\r\n"), "{raw}");
        assert!(raw.contains("Subject: Your code\r\n"), "{raw}");
        assert!(
            raw.contains(&format!("Message-ID: <{}@example.org>", id.simple())),
            "{raw}"
        );
        assert!(
            raw.contains("Date: Fri, 15 Jan 2027 08:00:00 +0000"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("\r\n123456\r\n"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("mail.example.com"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
