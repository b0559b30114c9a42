//! The state every handler shares.

use std::sync::Arc;

use twofold_core::Service;
use twofold_core::delivery::{Mailer, SmsSender};
use url::Url;

use crate::cookies::CookieSettings;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where users reach this server; links and the TOTP issuer come from it, never from the
    /// request's Host header.
    pub public_url: Url,
    /// Largest accepted JSON or form body, in bytes.
    pub body_limit_bytes: usize,
}

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub http: Arc<HttpSettings>,
    pub cookies: Arc<CookieSettings>,
    pub mailer: Arc<dyn Mailer>,
    pub sms: Arc<dyn SmsSender>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(
        service: Service,
        http: HttpSettings,
        mailer: Arc<dyn Mailer>,
        sms: Arc<dyn SmsSender>,
    ) -> Self {
        let secure = http.public_url.scheme() == "https";
        Self {
            service,
            http: Arc::new(http),
            cookies: Arc::new(CookieSettings::new(secure)),
            mailer,
            sms,
        }
    }

    pub fn is_https(&self) -> bool {
        self.cookies.secure
    }
}
