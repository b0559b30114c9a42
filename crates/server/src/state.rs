//! The state every handler shares.

use std::sync::Arc;

use secrecy::SecretString;

use twofold_core::Service;
use url::Url;

use crate::context::ClientIpSettings;
use crate::cookies::CookieSettings;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where users reach this server; links and the TOTP issuer come from it, never from the
    /// request's Host header.
    pub public_url: Url,
    /// Largest accepted JSON or form body, in bytes.
    pub body_limit_bytes: usize,
    /// The token that signs the SMS gateway's inbound webhook (Twilio's auth token); `None`
    /// turns the webhook off (404).
    pub inbound_sms_token: Option<SecretString>,
    /// Where the client's address comes from (the peer, or a trusted proxy's header).
    pub client_ip: ClientIpSettings,
}

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub http: Arc<HttpSettings>,
    pub cookies: Arc<CookieSettings>,
    /// Request latencies, served with the service's metrics by [`crate::metrics::router`].
    pub http_metrics: Arc<crate::metrics::HttpMetrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(service: Service, http: HttpSettings) -> Self {
        let secure = http.public_url.scheme() == "https";
        Self {
            service,
            http: Arc::new(http),
            cookies: Arc::new(CookieSettings::new(secure)),
            http_metrics: Arc::default(),
        }
    }

    pub fn is_https(&self) -> bool {
        self.cookies.secure
    }
}
