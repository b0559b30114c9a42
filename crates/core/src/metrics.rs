//! What the domain counts for Prometheus: sign-in attempts by step, method and outcome, lockouts
//! as they begin, sign-ins shed because the hashing queue was full, deliveries by channel and
//! outcome, and the depths of the hashing and delivery queues. The server adds its request
//! latencies and serves them all (`twofold_server::metrics`) on a listener of their own.
//!
//! The counting sits here, in the flows, rather than in the server's handlers because the JSON
//! API and the pages share these flows and only they see a lockout begin: one place counts both.
//! It is on the hot path (the password and second-factor steps), so every series is made once,
//! in [`Metrics::new`], and counting is one atomic add: no lock, no allocation, no label built
//! per call. Labels are fixed sets of words, never a user, an address or a path. Nothing here
//! reads a clock: latencies are measured by the server.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use secrecy::SecretString;

use crate::delivery::DeliveryChannel;
use crate::factors::FactorError;
use crate::login::{ActiveSession, LoginError, LoginStep};
use crate::service::Service;
use crate::store::StoreError;
use crate::user::Method;

type Labels<const N: usize> = [(&'static str, &'static str); N];

/// How a sign-in step ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The right password or code (the step passed).
    Success,
    /// A wrong password or code (401).
    Failure,
    /// Refused under a lockout or the per-address limit (429).
    Throttled,
}

impl AttemptOutcome {
    const ALL: [AttemptOutcome; 3] = [Self::Success, Self::Failure, Self::Throttled];

    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Throttled => "throttled",
        }
    }
}

/// What a lockout that begins locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockoutStep {
    /// An account's password (or an address without an account).
    Password,
    /// An account's second-factor codes.
    SecondFactor,
    /// A client address, under the per-address limit.
    ClientAddress,
}

impl LockoutStep {
    const ALL: [LockoutStep; 3] = [Self::Password, Self::SecondFactor, Self::ClientAddress];

    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::SecondFactor => "second_factor",
            Self::ClientAddress => "client_address",
        }
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The transport took the message.
    Sent,
    /// It failed and will be tried again.
    Failed,
    /// It failed for good (a permanent error, or too long retrying): the message is erased.
    GivenUp,
}

impl DeliveryOutcome {
    const ALL: [DeliveryOutcome; 3] = [Self::Sent, Self::Failed, Self::GivenUp];

    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::GivenUp => "given_up",
        }
    }
}

const METHODS: [Method; 4] = [
    Method::Totp,
    Method::Sms,
    Method::Email,
    Method::RecoveryCode,
];
const CHANNELS: [DeliveryChannel; 2] = [DeliveryChannel::Email, DeliveryChannel::Sms];

fn method_index(method: Method) -> usize {
    match method {
        Method::Totp => 0,
        Method::Sms => 1,
        Method::Email => 2,
        Method::RecoveryCode => 3,
    }
}

fn channel_index(channel: DeliveryChannel) -> usize {
    match channel {
        DeliveryChannel::Email => 0,
        DeliveryChannel::Sms => 1,
    }
}

/// The domain's metric families, and a handle on each of their series (a handle shares the
/// series' atomic, so counting through it needs no look-up). One per [`Service`].
#[derive(Debug)]
pub struct Metrics {
    login_attempts: Family<Labels<3>, Counter>,
    lockouts: Family<Labels<1>, Counter>,
    logins_shed: Counter,
    deliveries: Family<Labels<2>, Counter>,
    delivery_queue_depth: Family<Labels<1>, Gauge>,
    hashing_queue_depth: Gauge,
    hashing_workers_busy: Gauge,
    hashing_workers: Gauge,
    /// By [`AttemptOutcome`].
    password_attempts: [Counter; 3],
    /// By method (as [`METHODS`]), then [`AttemptOutcome`].
    second_factor_attempts: [[Counter; 3]; 4],
    /// By [`LockoutStep`].
    lockout_starts: [Counter; 3],
    /// By channel (as [`CHANNELS`]), then [`DeliveryOutcome`].
    delivery_attempts: [[Counter; 3]; 2],
    /// By channel (as [`CHANNELS`]).
    delivery_depths: [Gauge; 2],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series, at zero.
    pub fn new() -> Self {
        let login_attempts = Family::<Labels<3>, Counter>::default();
        let password_attempts = AttemptOutcome::ALL.map(|outcome| {
            login_attempts.get_or_create_owned(&[
                ("step", "password"),
                ("method", "password"),
                ("outcome", outcome.as_str()),
            ])
        });
        let second_factor_attempts = METHODS.map(|method| {
            AttemptOutcome::ALL.map(|outcome| {
                login_attempts.get_or_create_owned(&[
                    ("step", "second_factor"),
                    ("method", method.as_str()),
                    ("outcome", outcome.as_str()),
                ])
            })
        });
        let lockouts = Family::<Labels<1>, Counter>::default();
        let lockout_starts =
            LockoutStep::ALL.map(|step| lockouts.get_or_create_owned(&[("step", step.as_str())]));
        let deliveries = Family::<Labels<2>, Counter>::default();
        let delivery_attempts = CHANNELS.map(|channel| {
            DeliveryOutcome::ALL.map(|outcome| {
                deliveries.get_or_create_owned(&[
                    ("channel", channel.as_str()),
                    ("outcome", outcome.as_str()),
                ])
            })
        });
        let delivery_queue_depth = Family::<Labels<1>, Gauge>::default();
        let delivery_depths = CHANNELS.map(|channel| {
            delivery_queue_depth.get_or_create_owned(&[("channel", channel.as_str())])
        });
        Self {
            login_attempts,
            lockouts,
            logins_shed: Counter::default(),
            deliveries,
            delivery_queue_depth,
            hashing_queue_depth: Gauge::default(),
            hashing_workers_busy: Gauge::default(),
            hashing_workers: Gauge::default(),
            password_attempts,
            second_factor_attempts,
            lockout_starts,
            delivery_attempts,
            delivery_depths,
        }
    }

    /// Adds every family to `registry` (whose prefix, `twofold`, starts each name).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "login_attempts",
            "Sign-in steps answered, by step (password, second_factor), method and outcome (success, failure, throttled)",
            self.login_attempts.clone(),
        );
        registry.register(
            "lockouts",
            "Lockouts begun, by what they lock (password, second_factor, client_address)",
            self.lockouts.clone(),
        );
        registry.register(
            "logins_shed",
            "Passwords not checked because the hashing queue was full (answered 503)",
            self.logins_shed.clone(),
        );
        registry.register(
            "hashing_queue_depth",
            "Password hashing jobs waiting for a worker",
            self.hashing_queue_depth.clone(),
        );
        registry.register(
            "hashing_workers_busy",
            "Password hashing workers at work",
            self.hashing_workers_busy.clone(),
        );
        registry.register(
            "hashing_workers",
            "Password hashing workers started",
            self.hashing_workers.clone(),
        );
        registry.register(
            "delivery_queue_depth",
            "Messages waiting in the durable delivery queue (retries included), by channel",
            self.delivery_queue_depth.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts, by channel and outcome (sent, failed and to be retried, given_up)",
            self.deliveries.clone(),
        );
    }

    // Each label enum's `ALL` lists it in declaration order, so `as usize` indexes its series.

    pub(crate) fn count_password_attempt(&self, outcome: AttemptOutcome) {
        self.password_attempts[outcome as usize].inc();
    }

    pub(crate) fn count_second_factor_attempt(&self, method: Method, outcome: AttemptOutcome) {
        self.second_factor_attempts[method_index(method)][outcome as usize].inc();
    }

    pub(crate) fn count_lockout(&self, step: LockoutStep) {
        self.lockout_starts[step as usize].inc();
    }

    /// A delivery attempt's outcome (the delivery worker's).
    pub fn count_delivery(&self, channel: DeliveryChannel, outcome: DeliveryOutcome) {
        self.delivery_attempts[channel_index(channel)][outcome as usize].inc();
    }

    /// The delivery attempts counted so far with this outcome.
    pub fn deliveries(&self, channel: DeliveryChannel, outcome: DeliveryOutcome) -> u64 {
        self.delivery_attempts[channel_index(channel)][outcome as usize].get()
    }
}

fn gauge_value(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

impl Service {
    /// This service's metrics.
    pub fn metrics(&self) -> &std::sync::Arc<Metrics> {
        &self.metrics
    }

    /// Counts a lockout as it begins (see [`crate::throttle`] and `factors::note_lockout`).
    pub(crate) fn count_lockout(&self, step: LockoutStep) {
        self.metrics.count_lockout(step);
    }

    /// Reads the gauges that are states rather than counts (the queues' depths), before a
    /// scrape encodes them: the hashing pool's from its atomics, the delivery queue's from the
    /// database, since other instances and the CLI queue messages too.
    pub async fn sample_metrics(&self) -> Result<(), StoreError> {
        let metrics = &self.metrics;
        metrics
            .hashing_queue_depth
            .set(gauge_value(self.hasher.queue_depth()));
        metrics
            .hashing_workers_busy
            .set(gauge_value(self.hasher.busy_workers()));
        metrics
            .hashing_workers
            .set(gauge_value(self.hasher.workers()));
        let pending = self.stores.deliveries.pending_by_channel().await?;
        for (channel, depth) in CHANNELS.into_iter().zip([pending.email, pending.sms]) {
            metrics.delivery_depths[channel_index(channel)].set(gauge_value(depth));
        }
        Ok(())
    }

    /// Checks an email and password and starts a session in the state the account calls for
    /// (see [`Service::password_step`]), counted in the metrics by its outcome; a password not
    /// checked because the hashing queue was full is counted as shed.
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<LoginStep, LoginError> {
        let step = self.password_step(email, password).await;
        let outcome = match &step {
            Ok(_) => AttemptOutcome::Success,
            Err(LoginError::InvalidCredentials) => AttemptOutcome::Failure,
            Err(LoginError::Throttled { .. }) => AttemptOutcome::Throttled,
            Err(LoginError::Overloaded) => {
                self.metrics.logins_shed.inc();
                return step;
            }
            Err(_) => return step,
        };
        self.metrics.count_password_attempt(outcome);
        step
    }

    /// The `second_factor` step (see [`Service::second_factor_step`]), counted in the metrics
    /// by method and outcome.
    pub async fn verify_second_factor(
        &self,
        session: &ActiveSession,
        method: Method,
        code: &str,
    ) -> Result<LoginStep, FactorError> {
        let step = self.second_factor_step(session, method, code).await;
        let outcome = match &step {
            Ok(_) => AttemptOutcome::Success,
            Err(FactorError::InvalidCode) => AttemptOutcome::Failure,
            Err(FactorError::Throttled { .. }) => AttemptOutcome::Throttled,
            Err(_) => return step,
        };
        self.metrics.count_second_factor_attempt(method, outcome);
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(metrics: &Metrics) -> String {
        let mut registry = Registry::with_prefix("twofold");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn every_series_is_there_from_the_start_and_counts_where_it_should() {
        let metrics = Metrics::new();
        let text = render(&metrics);
        assert!(text.contains(
            "twofold_login_attempts_total{step=\"password\",method=\"password\",outcome=\"failure\"} 0\n"
        ));
        assert!(text.contains(
            "twofold_login_attempts_total{step=\"second_factor\",method=\"recovery_code\",outcome=\"throttled\"} 0\n"
        ));
        assert!(text.contains("twofold_lockouts_total{step=\"client_address\"} 0\n"));
        assert!(text.contains("twofold_delivery_queue_depth{channel=\"sms\"} 0\n"));

        metrics.count_password_attempt(AttemptOutcome::Failure);
        metrics.count_password_attempt(AttemptOutcome::Failure);
        metrics.count_second_factor_attempt(Method::Sms, AttemptOutcome::Success);
        metrics.count_lockout(LockoutStep::SecondFactor);
        metrics.count_delivery(DeliveryChannel::Email, DeliveryOutcome::GivenUp);
        metrics.logins_shed.inc();
        let text = render(&metrics);
        for line in [
            "twofold_login_attempts_total{step=\"password\",method=\"password\",outcome=\"failure\"} 2\n",
            "twofold_login_attempts_total{step=\"password\",method=\"password\",outcome=\"success\"} 0\n",
            "twofold_login_attempts_total{step=\"second_factor\",method=\"sms\",outcome=\"success\"} 1\n",
            "twofold_login_attempts_total{step=\"second_factor\",method=\"totp\",outcome=\"success\"} 0\n",
            "twofold_lockouts_total{step=\"second_factor\"} 1\n",
            "twofold_lockouts_total{step=\"password\"} 0\n",
            "twofold_deliveries_total{channel=\"email\",outcome=\"given_up\"} 1\n",
            "twofold_deliveries_total{channel=\"sms\",outcome=\"given_up\"} 0\n",
            "twofold_logins_shed_total 1\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
