//! Sessions: the login state machine's states, the secret token in the cookie, and its hash in
//! the database.
//!
//! The token is 256 bits from the OS CSPRNG; only its SHA-256 is stored, so a copy of the
//! database does not hand out live sessions. A new token replaces the old one at every state
//! change, so an id seen before a login step is useless after it (no session fixation).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::user::UserId;

const TOKEN_BYTES: usize = 32;

/// Where a login stands. Each state admits only the routes that serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The password was a temporary one; the only way on is to set a new one.
    PasswordChangeRequired,
    /// The password was right; a second factor is still owed.
    SecondFactor,
    /// 2FA is required and none is enrolled; the only way on is to enroll one.
    EnrollmentRequired,
    /// Fully signed in.
    Authenticated,
}

impl SessionState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionState::PasswordChangeRequired => "password_change_required",
            SessionState::SecondFactor => "second_factor",
            SessionState::EnrollmentRequired => "enrollment_required",
            SessionState::Authenticated => "authenticated",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session state {0:?}")]
pub struct UnknownSessionState(pub String);

impl FromStr for SessionState {
    type Err = UnknownSessionState;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "password_change_required" => SessionState::PasswordChangeRequired,
            "second_factor" => SessionState::SecondFactor,
            "enrollment_required" => SessionState::EnrollmentRequired,
            "authenticated" => SessionState::Authenticated,
            other => return Err(UnknownSessionState(other.to_owned())),
        })
    }
}

/// The secret session token carried by the cookie.
pub struct SessionToken(SecretString);

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the OS random generator failed: {0}")]
pub struct RandomError(pub String);

impl SessionToken {
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(|error| RandomError(error.to_string()))?;
        Ok(Self(SecretString::from(
            URL_SAFE_NO_PAD.encode(bytes.as_ref()),
        )))
    }

    /// Accepts a cookie value only when it has the shape of a token we issued.
    pub fn parse(cookie_value: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(cookie_value).ok()?;
        (decoded.len() == TOKEN_BYTES).then(|| Self(SecretString::from(cookie_value.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn id_hash(&self) -> SessionIdHash {
        SessionIdHash(Sha256::digest(self.0.expose_secret().as_bytes()).into())
    }
}

/// SHA-256 of a session token: the session's key in the database.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionIdHash(pub [u8; 32]);

impl fmt::Debug for SessionIdHash {
    // Only a prefix: enough to correlate log lines, useless to an attacker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SessionIdHash({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: SessionIdHash,
    pub user_id: UserId,
    pub state: SessionState,
    /// When the login began; the absolute timeout counts from here across rotations.
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_distinct_and_hash_stably() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
        let reparsed = SessionToken::parse(a.expose()).unwrap();
        assert!(reparsed.id_hash() == a.id_hash());
        assert!(a.id_hash() != b.id_hash());
    }

    #[test]
    fn malformed_cookies_are_not_tokens() {
        for bad in ["", "abc", "!!!!", &"A".repeat(44), &"A".repeat(42)] {
            assert!(SessionToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn states_round_trip_through_text() {
        for state in [
            SessionState::PasswordChangeRequired,
            SessionState::SecondFactor,
            SessionState::EnrollmentRequired,
            SessionState::Authenticated,
        ] {
            assert_eq!(state.as_str().parse::<SessionState>().unwrap(), state);
        }
        assert!("root".parse::<SessionState>().is_err());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = SessionToken::generate().unwrap();
        assert!(!format!("{token:?}").contains(token.expose()));
    }
}
