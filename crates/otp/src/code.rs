//! `TotpCode`: a one-time code as a person submits it, normalised and checked once so that
//! the rest of the system only ever holds well-formed codes.

use std::fmt;

use zeroize::Zeroize;

use crate::{OtpError, TotpParams};

/// A submitted TOTP code: exactly the expected number of ASCII digits.
///
/// `Debug` hides the digits (a code is a credential until its step has passed), and the
/// digits are wiped when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl TotpCode {
    /// Reads a code as people type or paste it: spaces, other whitespace (a pasted
    /// non-breaking space, a trailing newline) and dashes are dropped ("123 456",
    /// "123-456"), then exactly `digits` ASCII digits must remain.
    ///
    /// Only ASCII digits count: full-width or other Unicode digits are refused rather than
    /// mapped, as authenticator apps never show them. `digits` must be 6..=8
    /// ([`OtpError::InvalidDigits`]); anything else wrong is [`OtpError::InvalidCode`].
    pub fn parse(input: &str, digits: u32) -> Result<TotpCode, OtpError> {
        if !TotpParams::digits_are_valid(digits) {
            return Err(OtpError::InvalidDigits);
        }
        let expected_length = usize::try_from(digits).map_err(|_| OtpError::InvalidDigits)?;
        let mut code = String::with_capacity(expected_length);
        for symbol in input.chars() {
            if symbol.is_whitespace() || symbol == '-' {
                continue;
            }
            if !symbol.is_ascii_digit() || code.len() == expected_length {
                code.zeroize();
                return Err(OtpError::InvalidCode);
            }
            code.push(symbol);
        }
        if code.len() != expected_length {
            code.zeroize();
            return Err(OtpError::InvalidCode);
        }
        Ok(TotpCode(code))
    }

    /// The digits, without separators.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode(..)")
    }
}

impl Drop for TotpCode {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_what_people_type() {
        for input in [
            "123456",
            "123 456",
            " 123456 ",
            "123-456",
            "12 34 56\n",
            "123\u{a0}456",
        ] {
            assert_eq!(
                TotpCode::parse(input, 6).unwrap().as_str(),
                "123456",
                "{input:?}"
            );
        }
        assert_eq!(
            TotpCode::parse("0712 3456", 8).unwrap().as_str(),
            "07123456"
        );
    }

    #[test]
    fn keeps_leading_zeros() {
        assert_eq!(TotpCode::parse("000042", 6).unwrap().as_str(), "000042");
    }

    #[test]
    fn refuses_wrong_lengths_and_non_digits() {
        for input in [
            "",
            "12345",
            "1234567",
            "12345a",
            "abcdef",
            "12.456",
            "123_456",
            "+23456",
            "１２３４５６",
            "١٢٣٤٥٦",
        ] {
            assert_eq!(
                TotpCode::parse(input, 6),
                Err(OtpError::InvalidCode),
                "{input:?}"
            );
        }
    }

    #[test]
    fn refuses_digit_counts_outside_6_to_8() {
        for digits in [0, 1, 5, 9, 10, u32::MAX] {
            assert_eq!(
                TotpCode::parse("123456", digits),
                Err(OtpError::InvalidDigits)
            );
        }
    }

    #[test]
    fn debug_hides_the_digits() {
        let code = TotpCode::parse("123456", 6).unwrap();
        assert_eq!(format!("{code:?}"), "TotpCode(..)");
    }

    proptest! {
        #[test]
        fn parses_digits_with_separators_inserted(
            digits in 6u32..=8,
            value in any::<u32>(),
            separators in proptest::collection::vec(
                proptest::sample::select(vec!["", " ", "-", "  ", "\t"]),
                9,
            ),
        ) {
            let plain = format!("{:0width$}", value % 10u32.pow(digits), width = digits as usize);
            let mut typed = String::new();
            for (index, symbol) in plain.chars().enumerate() {
                typed.push_str(separators[index]);
                typed.push(symbol);
            }
            typed.push_str(separators[8]);
            let code = TotpCode::parse(&typed, digits).unwrap();
            prop_assert_eq!(code.as_str(), plain.as_str());
        }

        #[test]
        fn parse_never_panics_and_only_yields_digits(input in "\\PC{0,20}", digits in 0u32..12) {
            if let Ok(code) = TotpCode::parse(&input, digits) {
                prop_assert_eq!(code.as_str().len(), digits as usize);
                prop_assert!(code.as_str().bytes().all(|byte| byte.is_ascii_digit()));
            }
        }
    }
}
