//! One-time codes sent by email or SMS: six digits from the CSPRNG, valid for ten minutes,
//! usable once, dead after five wrong tries, one live code per user and purpose (a new send
//! replaces the old code), and sends throttled: one a minute and ten an hour per user and
//! purpose, ten an hour per destination (whatever the purpose, so that a flow that sends two
//! kinds of code to one phone in a minute works, while no number can be flooded).
//!
//! The stored form is SHA-256 of the user id, the purpose and the code. With only 10^6 possible
//! codes (20 bits) that hash protects nothing against an offline guess: whoever reads the
//! database can try them all in a blink. It only keeps the codes out of plain sight. The
//! protection is elsewhere: a code lives ten minutes, allows five tries, works once, and
//! never reaches a log (it leaves this module only to be delivered).

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::audit::{Event, EventKind};
use crate::delivery::DeliveryError;
use crate::notices::CodePurpose;
use crate::phone::PhoneNumber;
use crate::service::Service;
use crate::session::{RandomError, SessionIdHash};
use crate::store::{CodeCheck, NewCode, SendLimit, StoreError};
use crate::user::{User, UserId};

/// How long a code is accepted after it was sent.
pub const CODE_TTL: Duration = Duration::minutes(10);
/// Wrong tries a code survives; after them even the right code is refused.
pub const MAX_TRIES: u32 = 5;
/// The number of digits of a code.
pub const CODE_DIGITS: usize = 6;
/// The shortest time between two sends to one user for one purpose.
pub const RESEND_INTERVAL: Duration = Duration::minutes(1);
/// The most sends in [`SEND_WINDOW`] to one user for one purpose, or to one destination.
pub const MAX_SENDS_PER_WINDOW: u32 = 10;
pub const SEND_WINDOW: Duration = Duration::hours(1);

/// 10^6: the number of codes.
const CODE_SPACE: u32 = 1_000_000;
/// The largest multiple of [`CODE_SPACE`] that fits a `u32`: draws at or above it are rejected,
/// so that `draw % CODE_SPACE` is uniform.
const UNBIASED_LIMIT: u32 = (u32::MAX / CODE_SPACE) * CODE_SPACE;

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// A wrong code for the live one: it cost one of that code's tries.
    #[error("the code is not right")]
    InvalidCode,
    /// There is no live code to try: never sent, expired, replaced, out of tries, or used
    /// already (a replay, or the loser of a race with the request that used it). Answered
    /// like a wrong code, so the client cannot tell the two apart; but it is no guess at a
    /// live code, so callers do not count it towards the second-factor lockout (which would
    /// otherwise lock out an owner whose code was submitted twice).
    #[error("the code is not right")]
    NoLiveCode,
    #[error("a code was sent recently; wait before asking for another")]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for CodeError {
    fn from(error: StoreError) -> Self {
        CodeError::Unexpected(anyhow::Error::new(error))
    }
}

impl From<RandomError> for CodeError {
    fn from(error: RandomError) -> Self {
        CodeError::Unexpected(anyhow::Error::new(error))
    }
}

impl From<DeliveryError> for CodeError {
    fn from(error: DeliveryError) -> Self {
        CodeError::Unexpected(anyhow::Error::new(error))
    }
}

/// How a code reached the person, as the audit log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeChannel {
    Email,
    Sms,
    /// Shown on the page, for the person to text from their phone to the system number.
    InboundSms,
}

impl CodeChannel {
    fn as_str(self) -> &'static str {
        match self {
            CodeChannel::Email => "email",
            CodeChannel::Sms => "sms",
            CodeChannel::InboundSms => "inbound_sms",
        }
    }
}

/// The audit entry of a code sent to (or shown to) its user: the purpose and channel, and for
/// a phone only its last two digits. Never the code.
pub(crate) fn code_sent_event(
    user_id: UserId,
    purpose: CodePurpose,
    channel: CodeChannel,
    phone: Option<&PhoneNumber>,
) -> Event {
    let event = Event::own(EventKind::CodeSent, user_id)
        .with("purpose", purpose.as_str())
        .with("channel", channel.as_str());
    match phone {
        Some(phone) => event.with("to", phone.masked()),
        None => event,
    }
}

/// A fresh six-digit code, uniform over `000000..=999999`.
pub fn generate_code() -> Result<String, RandomError> {
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).map_err(|error| RandomError(error.to_string()))?;
        let draw = u32::from_le_bytes(bytes);
        // Rejects fewer than 1 draw in 4,000.
        if draw < UNBIASED_LIMIT {
            return Ok(format!("{:06}", draw % CODE_SPACE));
        }
    }
}

/// The stored form of `code` (see the module comment for what it does not protect). The user
/// id and purpose in the input keep a code for one user or purpose from matching another's;
/// `session`, for a code sent at a sign-in step, binds it to that sign-in (OWASP ASVS 5.0
/// 6.6.2): typed in any other session, even the same user's next one, it is a wrong code.
pub fn hash_code(
    user_id: UserId,
    purpose: &str,
    session: Option<&SessionIdHash>,
    code: &str,
) -> [u8; 32] {
    let hash = Sha256::new_with_prefix(user_id.to_string().as_bytes())
        .chain_update(b":")
        .chain_update(purpose.as_bytes());
    let hash = match session {
        Some(session) => hash.chain_update(b"@").chain_update(session.0),
        None => hash,
    };
    hash.chain_update(b":")
        .chain_update(code.as_bytes())
        .finalize()
        .into()
}

/// The code as typed, without the spaces and dashes people add; `None` unless six digits.
fn normalise_typed_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The resend throttle key of one user's codes for one purpose.
pub fn user_send_key(user_id: UserId, purpose: &str) -> String {
    format!("user:{user_id}:{purpose}")
}

/// The resend throttle key of one destination (email address or E.164 number).
pub fn destination_send_key(destination: &str) -> String {
    format!("dest:{destination}")
}

impl Service {
    /// Makes a new code for `purpose`, replacing the user's earlier one, and returns it for the
    /// caller to deliver to `destination` (it must go nowhere else, least of all a log).
    /// [`CodeError::Throttled`] when the user (for this purpose) or the destination had a code
    /// less than a minute ago, or ten in the last hour.
    #[tracing::instrument(skip_all, fields(user_id = %user.id, purpose))]
    pub async fn issue_code(
        &self,
        user: &User,
        purpose: &str,
        session: Option<&SessionIdHash>,
        destination: &str,
    ) -> Result<String, CodeError> {
        let now = self.clock.now();
        let user_key = user_send_key(user.id, purpose);
        let destination_key = destination_send_key(destination);
        let per_user: &[(Duration, u32)] =
            &[(RESEND_INTERVAL, 1), (SEND_WINDOW, MAX_SENDS_PER_WINDOW)];
        let per_destination: &[(Duration, u32)] = &[(SEND_WINDOW, MAX_SENDS_PER_WINDOW)];
        let keys = [user_key, destination_key];
        let rules = [per_user, per_destination];
        // A quick look first, for the common refusal and its Retry-After.
        if let Some(retry_after) = self.longest_wait(&keys, &rules, now).await? {
            tracing::info!("one-time code refused: resend throttle");
            return Err(CodeError::Throttled { retry_after });
        }
        // Then the decision, atomic across requests and instances: the sends are recorded
        // only if every limit still has room, before the code exists (a failure in between
        // leaves the user throttled without a code rather than with an unthrottled one).
        let limits: Vec<SendLimit<'_>> = keys
            .iter()
            .zip(rules)
            .flat_map(|(key, key_rules)| {
                key_rules.iter().map(move |&(window, max)| SendLimit {
                    key,
                    since: now - window,
                    max,
                })
            })
            .collect();
        if !self.stores.codes.admit_send(&limits, now).await? {
            let retry_after = self
                .longest_wait(&keys, &rules, now)
                .await?
                .unwrap_or(Duration::seconds(1));
            tracing::info!("one-time code refused: resend throttle (concurrent sends)");
            return Err(CodeError::Throttled { retry_after });
        }
        let code = generate_code()?;
        self.stores
            .codes
            .replace_code(&NewCode {
                user_id: user.id,
                purpose,
                destination: destination.to_owned(),
                code_hash: hash_code(user.id, purpose, session, &code),
                expires_at: now + CODE_TTL,
                created_at: now,
            })
            .await?;
        tracing::info!("one-time code issued");
        Ok(code)
    }

    /// Issues a code for `purpose` and emails it to the user's address. The send is recorded
    /// before the mail is queued: a send the audit log cannot hold does not happen.
    pub(crate) async fn email_new_code(
        &self,
        user: &User,
        purpose: CodePurpose,
        session: Option<&SessionIdHash>,
    ) -> Result<(), CodeError> {
        let code = self
            .issue_code(user, purpose.as_str(), session, user.email.as_str())
            .await?;
        self.audit(code_sent_event(user.id, purpose, CodeChannel::Email, None))
            .await?;
        self.email_code(user, purpose, &code).await?;
        Ok(())
    }

    /// Issues a code for `purpose` and texts it to `phone`, recorded as by
    /// [`Service::email_new_code`].
    pub(crate) async fn text_new_code(
        &self,
        user: &User,
        phone: &PhoneNumber,
        purpose: CodePurpose,
        session: Option<&SessionIdHash>,
    ) -> Result<(), CodeError> {
        let code = self
            .issue_code(user, purpose.as_str(), session, phone.as_e164())
            .await?;
        self.audit(code_sent_event(
            user.id,
            purpose,
            CodeChannel::Sms,
            Some(phone),
        ))
        .await?;
        self.text_code(phone, purpose, &code).await?;
        Ok(())
    }

    /// Accepts the user's live code for `purpose` once and returns where it had been sent.
    /// Anything else, including input that is not six digits, costs a try of the live code
    /// and is [`CodeError::InvalidCode`]; with no live code it is [`CodeError::NoLiveCode`].
    #[tracing::instrument(skip_all, fields(user_id = %user.id, purpose))]
    pub async fn check_code(
        &self,
        user: &User,
        purpose: &str,
        session: Option<&SessionIdHash>,
        typed: &str,
    ) -> Result<String, CodeError> {
        // Malformed input is hashed as the empty code, which is never issued: it then counts
        // as a wrong try like any other.
        let code = normalise_typed_code(typed).unwrap_or_default();
        let code_hash = hash_code(user.id, purpose, session, &code);
        match self
            .stores
            .codes
            .consume_code(user.id, purpose, &code_hash, self.clock.now())
            .await?
        {
            CodeCheck::Accepted { destination } => {
                tracing::info!("one-time code accepted");
                Ok(destination)
            }
            CodeCheck::Wrong { tries_left } => {
                tracing::info!(tries_left, "one-time code wrong");
                Err(CodeError::InvalidCode)
            }
            CodeCheck::NoCode => {
                tracing::info!("no live one-time code");
                Err(CodeError::NoLiveCode)
            }
        }
    }

    /// Forgets sends older than the longest throttle window; run periodically.
    pub async fn purge_old_code_sends(&self) -> Result<u64, CodeError> {
        let cutoff = self.clock.now() - SEND_WINDOW;
        Ok(self.stores.codes.delete_sends_before(cutoff).await?)
    }

    /// The longest wait any key's rules impose at `now`, if any.
    async fn longest_wait(
        &self,
        keys: &[String],
        rules: &[&[(Duration, u32)]],
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, CodeError> {
        let mut wait: Option<Duration> = None;
        for (key, key_rules) in keys.iter().zip(rules) {
            if let Some(key_wait) = self.resend_wait(key, key_rules, now).await? {
                wait = Some(wait.map_or(key_wait, |wait| wait.max(key_wait)));
            }
        }
        Ok(wait)
    }

    /// How long a send under `key` must still wait, if at all. A send leaves the throttle's
    /// count once its window has passed it, so the wait runs to when the earliest send in the
    /// full window leaves. (Sends that raced past the throttle can make that an underestimate;
    /// the next request then gets a fresh wait.)
    async fn resend_wait(
        &self,
        key: &str,
        rules: &[(Duration, u32)],
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, CodeError> {
        let mut longest: Option<Duration> = None;
        for &(window, limit) in rules {
            let since = now - window;
            if self.stores.codes.sends_since(key, since).await? < limit {
                continue;
            }
            let earliest = self.stores.codes.earliest_send_since(key, since).await?;
            let wait = earliest
                .map_or(window, |earliest| earliest + window - now)
                .max(Duration::seconds(1));
            longest = Some(longest.map_or(wait, |longest| longest.max(wait)));
        }
        Ok(longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_six_ascii_digits() {
        for _ in 0..1_000 {
            let code = generate_code().unwrap();
            assert_eq!(code.len(), CODE_DIGITS, "{code}");
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
    }

    #[test]
    fn every_digit_appears_in_every_position() {
        let mut seen = [[0u32; 10]; CODE_DIGITS];
        for _ in 0..10_000 {
            for (position, digit) in generate_code().unwrap().bytes().enumerate() {
                seen[position][usize::from(digit - b'0')] += 1;
            }
        }
        // Each count is Binomial(10000, 0.1): mean 1000, standard deviation 30. Bounds 8
        // deviations out never fail by chance, yet catch a skewed or stuck digit.
        for (position, counts) in seen.iter().enumerate() {
            for (digit, count) in counts.iter().enumerate() {
                assert!(
                    (760..=1240).contains(count),
                    "digit {digit} at position {position} appeared {count} times"
                );
            }
        }
    }

    #[test]
    fn codes_differ() {
        let codes: std::collections::HashSet<String> =
            (0..100).map(|_| generate_code().unwrap()).collect();
        // 100 draws from 10^6 collide with probability about 0.5%; 95 distinct is certain.
        assert!(codes.len() >= 95, "{}", codes.len());
    }

    #[test]
    fn the_rejection_limit_is_the_largest_multiple_of_the_code_space() {
        assert_eq!(UNBIASED_LIMIT % CODE_SPACE, 0);
        assert!(u64::from(UNBIASED_LIMIT) + u64::from(CODE_SPACE) > u64::from(u32::MAX));
    }

    #[test]
    fn the_hash_depends_on_user_purpose_and_code() {
        let user = UserId::random();
        let hash = hash_code(user, "login_sms", None, "123456");
        assert_eq!(hash, hash_code(user, "login_sms", None, "123456"));
        assert_ne!(
            hash,
            hash_code(UserId::random(), "login_sms", None, "123456")
        );
        assert_ne!(hash, hash_code(user, "login_email", None, "123456"));
        assert_ne!(hash, hash_code(user, "login_sms", None, "123457"));
        assert_ne!(hash, hash_code(user, "login_sms", None, ""));
        let session = SessionIdHash([7; 32]);
        let bound = hash_code(user, "login_sms", Some(&session), "123456");
        assert_ne!(hash, bound, "a bound code is not the unbound one");
        assert_ne!(
            bound,
            hash_code(user, "login_sms", Some(&SessionIdHash([8; 32])), "123456"),
            "nor another session's"
        );
    }

    #[test]
    fn the_hash_is_sha256_of_user_purpose_and_code() {
        let user: UserId = "6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22".parse().unwrap();
        let expected: [u8; 32] =
            Sha256::digest(b"6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22:email_verify:042017").into();
        assert_eq!(hash_code(user, "email_verify", None, "042017"), expected);
    }

    #[test]
    fn typed_codes_lose_spaces_and_dashes_and_must_be_six_digits() {
        assert_eq!(normalise_typed_code("123456").as_deref(), Some("123456"));
        assert_eq!(normalise_typed_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalise_typed_code("123-456").as_deref(), Some("123456"));
        assert_eq!(normalise_typed_code("12345"), None);
        assert_eq!(normalise_typed_code("1234567"), None);
        assert_eq!(normalise_typed_code("12345a"), None);
        assert_eq!(
            normalise_typed_code("１２３４５６"),
            None,
            "full-width digits"
        );
        assert_eq!(normalise_typed_code(""), None);
    }

    #[test]
    fn a_code_sent_is_recorded_with_purpose_channel_and_a_masked_phone_only() {
        let user = UserId::random();
        let phone = PhoneNumber::parse("+441212345678", None).unwrap();
        let event = code_sent_event(user, CodePurpose::LoginSms, CodeChannel::Sms, Some(&phone));
        assert_eq!(event.kind, EventKind::CodeSent);
        assert_eq!((event.actor, event.subject), (Some(user), Some(user)));
        assert_eq!(event.detail["purpose"], "login_sms");
        assert_eq!(event.detail["channel"], "sms");
        assert_eq!(event.detail["to"], phone.masked());
        let text = serde_json::Value::Object(event.detail).to_string();
        assert!(!text.contains("1212345678"), "{text}");

        let email = code_sent_event(
            user,
            CodePurpose::DisableTwoFactor,
            CodeChannel::Email,
            None,
        );
        assert_eq!(email.detail["purpose"], "disable_2fa");
        assert_eq!(email.detail["channel"], "email");
        assert!(!email.detail.contains_key("to"));
    }

    #[test]
    fn send_keys_name_user_and_purpose_or_destination() {
        let user: UserId = "6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22".parse().unwrap();
        assert_eq!(
            user_send_key(user, "login_sms"),
            "user:6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22:login_sms"
        );
        assert_eq!(destination_send_key("+447700900123"), "dest:+447700900123");
    }
}
