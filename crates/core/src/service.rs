//! The [`Service`]: the stores, the password hasher, the clock and the settings that every flow
//! needs, bundled once. The flows themselves live in `login` and `accounts`.

use std::sync::Arc;

use time::Duration;

use crate::clock::Clock;
use crate::delivery::{Mailer, SmsSender};
use crate::hasher::PasswordHasher;
use crate::sealing::Sealer;
use crate::store::{LockoutPolicy, Stores};
use crate::user::Method;

/// Settings of the flows (from the server's configuration).
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// A session unused for this long ends.
    pub session_idle_timeout: Duration,
    /// A session ends this long after its login began, however active.
    pub session_absolute_timeout: Duration,
    /// A login that has not reached `authenticated` ends after this long without activity.
    pub login_step_timeout: Duration,
    /// Second-factor methods offered at enrollment.
    pub allowed_methods: Vec<Method>,
    /// The issuer shown in authenticator apps (the public host by default).
    pub totp_issuer: String,
    /// TOTP codes are accepted for this many 30-second steps either side of now.
    pub totp_skew_steps: u64,
    /// How many recovery codes a set has.
    pub recovery_code_count: usize,
    /// Where users reach the server (no trailing slash); links in emails start with it.
    pub public_url: String,
    /// The number people text a shown code to, to prove a phone is theirs (E.164); `None`
    /// turns that way of verifying a phone off.
    pub sms_inbound_number: Option<String>,
    /// How long an instance keeps using the security policy it read before reading it again.
    pub policy_refresh: std::time::Duration,
    /// The limit on failed checks (passwords, codes) from one client address, whatever the
    /// account; `None` turns it off. See [`crate::throttle`].
    pub ip_lockout: Option<LockoutPolicy>,
    /// The largest secure-message attachment accepted, in bytes (413 past it).
    pub attachment_limit_bytes: u64,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            session_idle_timeout: Duration::minutes(30),
            session_absolute_timeout: Duration::hours(12),
            login_step_timeout: Duration::minutes(15),
            allowed_methods: vec![Method::Totp, Method::Sms, Method::Email],
            totp_issuer: "Twofold".to_owned(),
            totp_skew_steps: 1,
            recovery_code_count: 10,
            public_url: "http://127.0.0.1:8080".to_owned(),
            sms_inbound_number: None,
            policy_refresh: std::time::Duration::from_secs(1),
            ip_lockout: Some(crate::throttle::IP_LOCKOUT_POLICY),
            attachment_limit_bytes: crate::messages::DEFAULT_ATTACHMENT_LIMIT_BYTES,
        }
    }
}

/// Where the flows hand their emails and text messages.
#[derive(Clone)]
pub struct Senders {
    pub mailer: Arc<dyn Mailer>,
    pub sms: Arc<dyn SmsSender>,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Senders")
    }
}

/// Everything the flows need; cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub(crate) stores: Stores,
    pub(crate) hasher: PasswordHasher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sealer: Arc<Sealer>,
    pub(crate) settings: Arc<ServiceSettings>,
    pub(crate) senders: Senders,
    pub(crate) policy_cache: Arc<crate::policy::PolicyCache>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Service {
    pub fn new(
        stores: Stores,
        hasher: PasswordHasher,
        clock: Arc<dyn Clock>,
        sealer: Arc<Sealer>,
        settings: ServiceSettings,
        senders: Senders,
    ) -> Self {
        Self {
            stores,
            hasher,
            clock,
            sealer,
            settings: Arc::new(settings),
            senders,
            policy_cache: Arc::default(),
            metrics: Arc::default(),
        }
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The sealer under the master key, shared with whatever else seals (the delivery queue).
    pub fn sealer(&self) -> &Arc<Sealer> {
        &self.sealer
    }

    pub fn settings(&self) -> &ServiceSettings {
        &self.settings
    }
}
