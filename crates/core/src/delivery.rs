//! What the domain hands to the outside world to deliver: emails and text messages. The server
//! crate implements the senders (the outbox directory by default; SMTP and an SMS gateway are
//! configured instead when set, behind a durable queue in the database).
//!
//! The queue's rules live here because they are policy, not plumbing: the channels a queued
//! delivery can take, and [`RetryPolicy`], the backoff after a failed attempt.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::email::Email;

/// An email to send. `text_body` is always present; one-time codes stand alone on their line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    pub to: Email,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
}

/// A text message to a phone number in E.164 form (`+441212345678`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    pub to: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[error("delivery failed: {0}")]
pub struct DeliveryError(#[from] pub anyhow::Error);

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Returns once the message is durably handed over (written to the outbox, or accepted by
    /// the next hop).
    async fn send_email(
        &self,
        message: &EmailMessage,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError>;
}

#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send_sms(
        &self,
        message: &SmsMessage,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError>;
}

/// Which kind of message a queued delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryChannel {
    Email,
    Sms,
}

impl DeliveryChannel {
    /// The name stored in the database and shown in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryChannel::Email => "email",
            DeliveryChannel::Sms => "sms",
        }
    }
}

impl std::fmt::Display for DeliveryChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a delivery channel (email or sms)")]
pub struct UnknownChannel(pub String);

impl std::str::FromStr for DeliveryChannel {
    type Err = UnknownChannel;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "email" => Ok(DeliveryChannel::Email),
            "sms" => Ok(DeliveryChannel::Sms),
            other => Err(UnknownChannel(other.to_owned())),
        }
    }
}

/// What happens to a queued delivery after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAttempt {
    /// Try again at this instant.
    At(OffsetDateTime),
    /// Stop: the delivery is kept as failed (with its error, without its message) for the
    /// administrator to see.
    Never,
}

/// When to retry a delivery that failed: exponential backoff from `first_delay`, doubling up to
/// `max_delay`, until the delivery is older than `give_up_after`. A one-time code is useless
/// long before a day has passed, but the person may still want to know a message was lost, so
/// the limit is generous and the failure stays visible after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_delay: time::Duration,
    pub max_delay: time::Duration,
    pub give_up_after: time::Duration,
}

impl Default for RetryPolicy {
    /// 5 s, 10 s, 20 s, … capped at 15 min, for 24 h.
    fn default() -> Self {
        RetryPolicy {
            first_delay: time::Duration::seconds(5),
            max_delay: time::Duration::minutes(15),
            give_up_after: time::Duration::hours(24),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt (1 for the first failure).
    pub fn delay_after(&self, attempts: u32) -> time::Duration {
        // 2^20 × 5 s is far past any sensible cap; stopping the doubling there avoids overflow.
        let doublings = attempts.saturating_sub(1).min(20);
        self.first_delay
            .checked_mul(2_i32.pow(doublings))
            .map_or(self.max_delay, |delay| delay.min(self.max_delay))
    }

    /// Decides what follows the `attempts`-th failure of a delivery created at `created_at`,
    /// observed at `now`. A `permanent` failure (the recipient or the message was refused, not
    /// the connection) is never retried.
    pub fn after_failure(
        &self,
        attempts: u32,
        created_at: OffsetDateTime,
        now: OffsetDateTime,
        permanent: bool,
    ) -> NextAttempt {
        if permanent {
            return NextAttempt::Never;
        }
        match now.checked_add(self.delay_after(attempts)) {
            Some(next) if next - created_at <= self.give_up_after => NextAttempt::At(next),
            _ => NextAttempt::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn delays_double_from_five_seconds_up_to_fifteen_minutes() {
        let policy = RetryPolicy::default();
        let seconds: Vec<i64> = (1..=10)
            .map(|attempts| policy.delay_after(attempts).whole_seconds())
            .collect();
        assert_eq!(seconds, [5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
        assert_eq!(policy.delay_after(0).whole_seconds(), 5);
        assert_eq!(policy.delay_after(u32::MAX).whole_seconds(), 900);
    }

    #[test]
    fn retries_stop_after_a_day_or_at_once_when_permanent() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.after_failure(1, at(0), at(1), false),
            NextAttempt::At(at(6))
        );
        assert_eq!(
            policy.after_failure(1, at(0), at(1), true),
            NextAttempt::Never
        );
        let almost_a_day = 24 * 3600 - 900;
        assert_eq!(
            policy.after_failure(30, at(0), at(almost_a_day), false),
            NextAttempt::At(at(24 * 3600))
        );
        assert_eq!(
            policy.after_failure(31, at(0), at(almost_a_day + 1), false),
            NextAttempt::Never
        );
    }

    #[test]
    fn channels_round_trip_through_their_names() {
        for channel in [DeliveryChannel::Email, DeliveryChannel::Sms] {
            assert_eq!(
                channel.as_str().parse::<DeliveryChannel>().unwrap(),
                channel
            );
        }
        assert!("fax".parse::<DeliveryChannel>().is_err());
    }
}
