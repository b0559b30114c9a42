//! Recovery codes: single-use 80-bit codes a person writes down in case the authenticator is
//! lost. This module owns their alphabet, generation, the forgiving parser for what people
//! type back, and the two text forms (canonical for hashing, grouped for showing).
//!
//! # Alphabet
//!
//! Crockford's base32 (`0-9` and `A-Z` without `I L O U`). The brief asked for 32 symbols
//! without any of `0 O 1 I L`, but only 31 alphanumerics remain once those five are gone,
//! and 32 are needed for exactly 5 uniform bits per symbol. Crockford keeps the digits `0`
//! and `1` and removes the letters that look like them, and the parser maps those letters
//! back (`O` to `0`, `I` and `L` to `1`), so each look-alike group still has exactly one
//! member in the alphabet and a misread code still parses to the right one. `U` is also left
//! out (Crockford's choice, against accidental words) and is refused, not mapped.
//!
//! # Case
//!
//! The canonical form (hashed and stored) is upper case; [`RecoveryCode::display`] is lower
//! case because the alphabet then has no letter shaped like a digit (`o`, `i` and `l` are not
//! in it) and lower-case text is easier to read back. Input of either case is accepted.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::OtpError;

/// Crockford's base32 symbols, in value order.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Symbols in a code: 16 symbols of 5 bits each are 80 bits.
const CODE_LENGTH: usize = 16;

/// Random bytes behind one code: 16 symbols * 5 bits = 80 bits = 10 bytes, so every symbol
/// takes its 5 bits straight from the CSPRNG and there is no modulo bias.
const CODE_BYTES: usize = 10;

/// Symbols between dashes in [`RecoveryCode::display`].
const GROUP_LENGTH: usize = 4;

/// A recovery code in canonical form: 16 upper-case symbols of Crockford's base32.
///
/// `Debug` hides it, equality is constant-time, and it is wiped when dropped.
#[derive(Clone)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// A fresh code with 80 bits from the operating system's CSPRNG.
    pub fn generate() -> Result<RecoveryCode, OtpError> {
        let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| OtpError::Random)?;
        let mut bits = Zeroizing::new(0u128);
        for byte in bytes.iter() {
            *bits = (*bits << 8) | u128::from(*byte);
        }
        let mut code = String::with_capacity(CODE_LENGTH);
        for index in (0..CODE_LENGTH).rev() {
            let value = (*bits >> (5 * index)) & 0x1f;
            let symbol = ALPHABET
                .get(usize::try_from(value).map_err(|_| OtpError::Random)?)
                .ok_or(OtpError::Random)?;
            code.push(char::from(*symbol));
        }
        Ok(RecoveryCode(code))
    }

    /// `count` distinct fresh codes.
    ///
    /// A repeat among 80-bit codes means the random source is broken, so after a few
    /// redraws this gives up with [`OtpError::Random`] instead of looping. Distinctness is
    /// checked by a linear scan, which keeps no extra copies of the codes and is quick for
    /// the handful of codes a person is given.
    pub fn generate_set(count: usize) -> Result<Vec<RecoveryCode>, OtpError> {
        let mut codes: Vec<RecoveryCode> = Vec::with_capacity(count);
        let mut redraws_left = 8usize;
        while codes.len() < count {
            let code = RecoveryCode::generate()?;
            if !codes.iter().any(|existing| existing.0 == code.0) {
                codes.push(code);
            } else if redraws_left == 0 {
                return Err(OtpError::Random);
            } else {
                redraws_left -= 1;
            }
        }
        Ok(codes)
    }

    /// Reads a code as people type it back: surrounding and inner whitespace and dashes
    /// are dropped, letters may be of either case, and the look-alikes `O`, `I` and `L` are
    /// read as `0`, `1` and `1`. Exactly 16 alphabet symbols must remain, otherwise
    /// [`OtpError::InvalidCode`].
    pub fn parse(input: &str) -> Result<RecoveryCode, OtpError> {
        let mut code = String::with_capacity(CODE_LENGTH);
        for symbol in input.chars() {
            if symbol.is_whitespace() || symbol == '-' {
                continue;
            }
            let canonical = match symbol.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            let in_alphabet = canonical.is_ascii() && ALPHABET.contains(&(canonical as u8));
            if !in_alphabet || code.len() == CODE_LENGTH {
                code.zeroize();
                return Err(OtpError::InvalidCode);
            }
            code.push(canonical);
        }
        if code.len() != CODE_LENGTH {
            code.zeroize();
            return Err(OtpError::InvalidCode);
        }
        Ok(RecoveryCode(code))
    }

    /// The canonical form: 16 upper-case symbols, no dashes. This is what gets hashed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form shown to people: lower case, in four groups of four joined by dashes,
    /// e.g. `"7k2m-x9qp-4hvd-r3tw"`.
    pub fn display(&self) -> String {
        let mut shown = String::with_capacity(CODE_LENGTH + CODE_LENGTH / GROUP_LENGTH);
        for (index, symbol) in self.0.chars().enumerate() {
            if index > 0 && index % GROUP_LENGTH == 0 {
                shown.push('-');
            }
            shown.push(symbol.to_ascii_lowercase());
        }
        shown
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

impl PartialEq for RecoveryCode {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for RecoveryCode {}

impl Drop for RecoveryCode {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn alphabet_has_32_distinct_symbols_and_no_look_alike_pairs() {
        let symbols: HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(symbols.len(), 32);
        assert!(
            ALPHABET
                .iter()
                .all(|symbol| symbol.is_ascii_digit() || symbol.is_ascii_uppercase())
        );
        // Of each group of look-alikes exactly one member is in the alphabet.
        for group in [&b"0O"[..], b"1IL"] {
            let members = group
                .iter()
                .filter(|symbol| symbols.contains(symbol))
                .count();
            assert_eq!(members, 1, "{}", String::from_utf8_lossy(group));
        }
        for excluded in *b"OILU" {
            assert!(!symbols.contains(&excluded));
        }
    }

    #[test]
    fn generated_codes_are_16_alphabet_symbols() {
        for _ in 0..100 {
            let code = RecoveryCode::generate().unwrap();
            assert_eq!(code.as_str().len(), 16);
            assert!(
                code.as_str()
                    .bytes()
                    .all(|symbol| ALPHABET.contains(&symbol))
            );
            assert_eq!(RecoveryCode::parse(code.as_str()).unwrap(), code);
        }
    }

    #[test]
    fn generation_uses_every_symbol() {
        // 200 codes have 3,200 symbols; missing one of 32 by chance is below 10^-40.
        let used: HashSet<char> = (0..200)
            .flat_map(|_| {
                RecoveryCode::generate()
                    .unwrap()
                    .as_str()
                    .chars()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(used.len(), 32);
    }

    #[test]
    fn a_set_has_the_requested_number_of_distinct_codes() {
        let codes = RecoveryCode::generate_set(10).unwrap();
        assert_eq!(codes.len(), 10);
        let distinct: HashSet<&str> = codes.iter().map(RecoveryCode::as_str).collect();
        assert_eq!(distinct.len(), 10);
        assert!(RecoveryCode::generate_set(0).unwrap().is_empty());
    }

    #[test]
    fn display_is_lower_case_groups_of_four() {
        let code = RecoveryCode::parse("7K2MX9QP4HVDR3TW").unwrap();
        assert_eq!(code.as_str(), "7K2MX9QP4HVDR3TW");
        assert_eq!(code.display(), "7k2m-x9qp-4hvd-r3tw");
    }

    #[test]
    fn parse_normalises_what_people_type() {
        let expected = "7K2MX9QP4HVDR3TW";
        for input in [
            "7k2m-x9qp-4hvd-r3tw",
            "7K2M-X9QP-4HVD-R3TW",
            "  7k2m x9qp 4hvd r3tw\n",
            "7k2mx9qp4hvdr3tw",
            "7k2m--x9qp - 4hvd\tr3tw",
        ] {
            assert_eq!(
                RecoveryCode::parse(input).unwrap().as_str(),
                expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn parse_maps_look_alikes_onto_the_alphabet() {
        let code = RecoveryCode::parse("oOiI-lL11-2345-6789").unwrap();
        assert_eq!(code.as_str(), "0011111123456789");
    }

    #[test]
    fn parse_refuses_wrong_lengths_and_foreign_symbols() {
        for input in [
            "",
            "7k2m-x9qp-4hvd-r3t",
            "7k2m-x9qp-4hvd-r3twa",
            "7k2m-x9qp-4hvd-r3tu",
            "7k2m_x9qp_4hvd_r3tw",
            "7k2m-x9qp-4hvd-r3t!",
            "7k2m-x9qp-4hvd-r3tö",
            "７k2m-x9qp-4hvd-r3tw",
        ] {
            assert_eq!(
                RecoveryCode::parse(input),
                Err(OtpError::InvalidCode),
                "{input:?}"
            );
        }
    }

    #[test]
    fn debug_hides_the_code() {
        let code = RecoveryCode::generate().unwrap();
        assert_eq!(format!("{code:?}"), "RecoveryCode(..)");
    }

    fn any_code() -> impl Strategy<Value = RecoveryCode> {
        proptest::collection::vec(proptest::sample::select(ALPHABET.to_vec()), CODE_LENGTH)
            .prop_map(|symbols| RecoveryCode(String::from_utf8(symbols).unwrap()))
    }

    proptest! {
        #[test]
        fn display_round_trips(code in any_code()) {
            prop_assert_eq!(RecoveryCode::parse(&code.display()).unwrap(), code.clone());
            prop_assert_eq!(RecoveryCode::parse(&code.display().to_uppercase()).unwrap(), code.clone());
            prop_assert_eq!(RecoveryCode::parse(code.as_str()).unwrap(), code);
        }

        #[test]
        fn round_trips_with_separators_and_case_mixed_in(
            code in any_code(),
            separators in proptest::collection::vec(
                proptest::sample::select(vec!["", "", " ", "-", " - ", "  "]),
                CODE_LENGTH + 1,
            ),
            lower in proptest::collection::vec(any::<bool>(), CODE_LENGTH),
        ) {
            let mut typed = String::new();
            for (index, symbol) in code.as_str().chars().enumerate() {
                typed.push_str(separators[index]);
                typed.push(if lower[index] { symbol.to_ascii_lowercase() } else { symbol });
            }
            typed.push_str(separators[CODE_LENGTH]);
            prop_assert_eq!(RecoveryCode::parse(&typed).unwrap(), code);
        }

        #[test]
        fn parse_never_panics_and_yields_canonical_codes(input in "\\PC{0,40}") {
            if let Ok(code) = RecoveryCode::parse(&input) {
                prop_assert_eq!(code.as_str().len(), CODE_LENGTH);
                prop_assert_eq!(RecoveryCode::parse(&code.display()).unwrap(), code);
            }
        }
    }
}
