//! The HMAC hash functions a TOTP key may use, and their names in key URIs.

use std::fmt;
use std::str::FromStr;

use crate::OtpError;

/// The hash function under the HMAC of HOTP/TOTP (RFC 6238 section 1.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA-1: the RFC 4226 default and the only one every authenticator app supports.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in the `algorithm` parameter of a key URI.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = OtpError;

    /// Accepts `SHA1`, `SHA256` and `SHA512` in any case; key URIs in the wild use both.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name))
            .ok_or(OtpError::InvalidUri("unknown algorithm"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(algorithm.as_str().parse::<Algorithm>(), Ok(algorithm));
            let lower = algorithm.as_str().to_ascii_lowercase();
            assert_eq!(lower.parse::<Algorithm>(), Ok(algorithm));
            assert_eq!(algorithm.to_string(), algorithm.as_str());
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        for name in ["", "MD5", "SHA-1", "SHA384", " SHA1"] {
            assert!(name.parse::<Algorithm>().is_err(), "{name:?}");
        }
    }

    #[test]
    fn default_is_sha1() {
        assert_eq!(Algorithm::default(), Algorithm::Sha1);
    }
}
