//! The shared TOTP secret: generating it, holding it so it is wiped and never printed, and its
//! base32 text forms.

use std::fmt;
use std::sync::OnceLock;

use data_encoding::{BASE32_NOPAD, Encoding, Specification};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::OtpError;

/// Bytes in a generated secret: 160 bits, the HMAC-SHA-1 output size RFC 4226 recommends.
const GENERATED_SECRET_BYTES: usize = 20;

/// RFC 4226 section 4 requires at least 128 bits and recommends 160, but many deployed
/// authenticators issued 80-bit secrets; refusing those would lock people out on import.
const MIN_SECRET_BYTES: usize = 10;

const BASE32_SYMBOLS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A shared HOTP/TOTP key.
///
/// The bytes are wiped from memory when the value is dropped, `Debug` never shows them, and
/// equality is checked in constant time.
#[derive(Clone)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
}

impl Secret {
    /// A fresh 160-bit secret from the operating system's CSPRNG.
    pub fn generate() -> Result<Secret, OtpError> {
        let mut bytes = Zeroizing::new(vec![0u8; GENERATED_SECRET_BYTES]);
        getrandom::fill(&mut bytes).map_err(|_| OtpError::Random)?;
        Ok(Secret { bytes })
    }

    /// Wraps raw key bytes as they are, without a length check, so stored keys of any size
    /// keep working.
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// RFC 4648 base32, upper case, without `=` padding (what authenticator apps expect).
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.bytes)
    }

    /// [`Secret::to_base32`] in groups of four separated by single spaces, for people who type
    /// the secret instead of scanning the QR code.
    pub fn to_base32_grouped(&self) -> String {
        let plain = Zeroizing::new(self.to_base32());
        let mut grouped = String::with_capacity(plain.len() + plain.len() / 4);
        for (index, symbol) in plain.chars().enumerate() {
            if index > 0 && index % 4 == 0 {
                grouped.push(' ');
            }
            grouped.push(symbol);
        }
        grouped
    }

    /// Reads base32 as people and other apps write it: any case, with spaces or dashes
    /// between groups, with or without trailing `=` padding, and with non-zero unused
    /// trailing bits (some generators leave them set).
    ///
    /// Refuses empty input and anything else that is not base32 with
    /// [`OtpError::InvalidBase32`], and secrets under 80 bits with
    /// [`OtpError::SecretTooShort`].
    pub fn parse_base32(input: &str) -> Result<Secret, OtpError> {
        let mut normalised = Zeroizing::new(String::with_capacity(input.len()));
        for symbol in input.chars() {
            if symbol.is_whitespace() || symbol == '-' {
                continue;
            }
            normalised.push(symbol.to_ascii_uppercase());
        }
        let unpadded = normalised.trim_end_matches('=');
        if unpadded.is_empty() {
            return Err(OtpError::InvalidBase32);
        }
        let decoded = tolerant_base32()
            .ok_or(OtpError::InvalidBase32)?
            .decode(unpadded.as_bytes())
            .map_err(|_| OtpError::InvalidBase32)?;
        let secret = Secret::from_bytes(decoded);
        if secret.as_bytes().len() < MIN_SECRET_BYTES {
            return Err(OtpError::SecretTooShort);
        }
        Ok(secret)
    }
}

/// Base32 without padding that, unlike `BASE32_NOPAD`, ignores set bits in the unused tail
/// of the last symbol.
fn tolerant_base32() -> Option<&'static Encoding> {
    static ENCODING: OnceLock<Option<Encoding>> = OnceLock::new();
    ENCODING
        .get_or_init(|| {
            let mut specification = Specification::new();
            specification.symbols.push_str(BASE32_SYMBOLS);
            specification.check_trailing_bits = false;
            // Building from a constant specification cannot fail; `ok()` keeps the crate free
            // of panics all the same.
            specification.encoding().ok()
        })
        .as_ref()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_secrets_are_160_bits_and_differ() {
        let first = Secret::generate().unwrap();
        let second = Secret::generate().unwrap();
        assert_eq!(first.as_bytes().len(), 20);
        assert_ne!(first, second);
    }

    #[test]
    fn base32_matches_rfc_4648_without_padding() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            secret.to_base32_grouped(),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
        // RFC 4648 section 10: "foobar" is "MZXW6YTBOI======".
        let foobar = Secret::from_bytes(b"foobar".to_vec());
        assert_eq!(foobar.to_base32(), "MZXW6YTBOI");
    }

    #[test]
    fn grouping_leaves_a_short_last_group() {
        let secret = Secret::from_bytes(vec![0u8; 16]);
        let grouped = secret.to_base32_grouped();
        assert_eq!(grouped, "AAAA AAAA AAAA AAAA AAAA AAAA AA");
    }

    #[test]
    fn parse_tolerates_what_people_type() {
        let expected = b"12345678901234567890".to_vec();
        for input in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ",
            "  GezdGnbvGy3tQojqGezdGnbvGy3tQojq\n",
        ] {
            assert_eq!(Secret::parse_base32(input).unwrap().as_bytes(), expected);
        }
    }

    #[test]
    fn parse_accepts_optional_padding() {
        // 16 bytes encode to 26 symbols, padded to 32 with six '='.
        let secret = Secret::from_bytes((0u8..16).collect());
        let unpadded = secret.to_base32();
        let padded = format!("{unpadded}======");
        assert_eq!(Secret::parse_base32(&unpadded).unwrap(), secret);
        assert_eq!(Secret::parse_base32(&padded).unwrap(), secret);
    }

    #[test]
    fn parse_ignores_set_trailing_bits() {
        // 26 symbols carry 130 bits for 16 bytes; 'D' (0b00011) sets the two unused ones.
        let input = "AAAAAAAAAAAAAAAAAAAAAAAAAD";
        assert_eq!(Secret::parse_base32(input).unwrap().as_bytes(), [0u8; 16]);
    }

    #[test]
    fn parse_refuses_empty_and_non_base32() {
        for input in [
            "",
            "   ",
            "====",
            "-",
            "GEZDGNBVGY3TQOJ1",
            "GEZDGNBVGY3TQOJQ8",
            "ÄÖÜ",
        ] {
            assert_eq!(
                Secret::parse_base32(input),
                Err(OtpError::InvalidBase32),
                "{input:?}"
            );
        }
        // '=' is only allowed at the end.
        assert_eq!(
            Secret::parse_base32("GEZDGNBV=GY3TQOJQ"),
            Err(OtpError::InvalidBase32)
        );
    }

    #[test]
    fn parse_refuses_secrets_under_80_bits() {
        let nine_bytes = Secret::from_bytes(vec![7u8; 9]).to_base32();
        assert_eq!(
            Secret::parse_base32(&nine_bytes),
            Err(OtpError::SecretTooShort)
        );
        let ten_bytes = Secret::from_bytes(vec![7u8; 10]).to_base32();
        assert!(Secret::parse_base32(&ten_bytes).is_ok());
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert_eq!(format!("{secret:#?}"), "Secret(..)");
    }

    proptest! {
        #[test]
        fn base32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 10..80)) {
            let secret = Secret::from_bytes(bytes.clone());
            let plain = secret.to_base32();
            prop_assert_eq!(Secret::parse_base32(&plain).unwrap().as_bytes().to_vec(), bytes.clone());
            let grouped = secret.to_base32_grouped();
            prop_assert_eq!(Secret::parse_base32(&grouped).unwrap().as_bytes().to_vec(), bytes.clone());
            let lower = grouped.to_lowercase();
            prop_assert_eq!(Secret::parse_base32(&lower).unwrap().as_bytes().to_vec(), bytes.clone());
        }

        #[test]
        fn parse_never_panics(input in "\\PC*") {
            let _ = Secret::parse_base32(&input);
        }
    }
}
