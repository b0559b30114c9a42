//! The `PhoneNumber` newtype: a number libphonenumber's metadata (through the `phonenumber`
//! crate) calls valid, kept in E.164 form (`+441212345678`), which is what SMS gateways take and
//! what the outbox records.

use std::fmt;
use std::str::FromStr;

use phonenumber::{Mode, country};

/// Longest input accepted; the longest E.164 number is 15 digits, and people add spaces,
/// brackets and dashes.
const MAX_INPUT_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// Why a phone number was refused; the message is shown to the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPhone {
    #[error("enter the number with its country code (+44 …), or choose the country")]
    NoCountry,
    #[error("{0:?} is not a country code we know; use the two-letter ISO code, like GB or US")]
    UnknownCountry(String),
    #[error("this is not a valid phone number")]
    NotANumber,
}

impl PhoneNumber {
    /// Parses a number typed in international form (`+44 121 234 5678`) or, with the person's
    /// country (ISO 3166 alpha-2), in national form (`0121 234 5678`).
    pub fn parse(input: &str, country: Option<&str>) -> Result<PhoneNumber, InvalidPhone> {
        let input = input.trim();
        if input.chars().count() > MAX_INPUT_CHARS
            || input.chars().any(char::is_control)
            || !input.chars().any(|c| c.is_ascii_digit())
        {
            return Err(InvalidPhone::NotANumber);
        }
        let country = match country.map(str::trim).filter(|code| !code.is_empty()) {
            Some(code) => Some(
                country::Id::from_str(&code.to_ascii_uppercase())
                    .map_err(|_| InvalidPhone::UnknownCountry(code.chars().take(8).collect()))?,
            ),
            None if input.starts_with('+') => None,
            None => return Err(InvalidPhone::NoCountry),
        };
        // A number typed with its country code is read without the chosen country: the crate
        // otherwise applies that country's national prefix to it (seen: US + "+44 121…").
        let region = if input.starts_with('+') {
            None
        } else {
            country
        };
        let number = phonenumber::parse(region, input).map_err(|_| InvalidPhone::NotANumber)?;
        if !number.is_valid() {
            return Err(InvalidPhone::NotANumber);
        }
        let e164 = number.format().mode(Mode::E164).to_string();
        // What is stored must read back as the same number on its own: libphonenumber reads
        // some inputs typed with a country (`(+7855-0845123` in the US) as numbers it calls
        // invalid in E.164 (found by the `phone` fuzz target).
        if region.is_some() {
            match phonenumber::parse(None, &e164) {
                Ok(again)
                    if again.is_valid() && again.format().mode(Mode::E164).to_string() == e164 => {}
                _ => return Err(InvalidPhone::NotANumber),
            }
        }
        Ok(PhoneNumber(e164))
    }

    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// The number with all but its last two digits hidden, for logs and "we sent a code to …".
    pub fn masked(&self) -> String {
        mask_e164(&self.0)
    }
}

/// A stored E.164 number with all but its last two digits hidden. Works on any stored number,
/// even one that newer libphonenumber metadata no longer calls valid.
pub fn mask_e164(e164: &str) -> String {
    let digits = e164.chars().count().saturating_sub(1);
    let shown: String = e164.chars().skip(digits.saturating_sub(1)).collect();
    format!("+{}{shown}", "•".repeat(digits.saturating_sub(2)))
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by the `phone` fuzz target: an accepted number reads back as itself.
    #[test]
    fn a_number_accepted_with_a_country_reads_back_without_it() {
        for (input, country) in [("(+7855-0845123", "US"), ("0121 234 5678", "GB")] {
            if let Ok(number) = PhoneNumber::parse(input, Some(country)) {
                assert_eq!(PhoneNumber::parse(number.as_e164(), None), Ok(number));
            }
        }
        assert!(PhoneNumber::parse("0121 234 5678", Some("GB")).is_ok());
    }

    #[test]
    fn international_and_national_forms_become_e164() {
        let expected = "+441212345678";
        for (typed, country) in [
            ("+441212345678", None),
            ("+44 121 234 5678", None),
            ("+44 (0)121 234-5678", None),
            ("0121 234 5678", Some("GB")),
            ("0121 234 5678", Some("gb")),
            ("+44 121 234 5678", Some("US")),
        ] {
            assert_eq!(
                PhoneNumber::parse(typed, country).unwrap().as_e164(),
                expected,
                "{typed:?} {country:?}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("(650) 253-0000", Some("US"))
                .unwrap()
                .as_e164(),
            "+16502530000"
        );
        assert_eq!(
            PhoneNumber::parse("030 901820", Some("DE"))
                .unwrap()
                .as_e164(),
            "+4930901820"
        );
    }

    #[test]
    fn what_is_not_a_number_is_refused_with_a_reason() {
        assert_eq!(
            PhoneNumber::parse("0121 234 5678", None),
            Err(InvalidPhone::NoCountry)
        );
        assert!(matches!(
            PhoneNumber::parse("0121 234 5678", Some("XX")),
            Err(InvalidPhone::UnknownCountry(_))
        ));
        for bad in [
            "",
            "   ",
            "+44 121",
            "+44 1212 345 678 999 12",
            "hello",
            "+0000000000",
            "+44\u{0}1212345678",
        ] {
            assert_eq!(
                PhoneNumber::parse(bad, None),
                Err(InvalidPhone::NotANumber),
                "{bad:?}"
            );
        }
        assert_eq!(
            PhoneNumber::parse(&"1".repeat(100), Some("GB")),
            Err(InvalidPhone::NotANumber)
        );
    }

    #[test]
    fn masking_keeps_only_the_last_two_digits() {
        let number = PhoneNumber::parse("+441212345678", None).unwrap();
        assert_eq!(number.masked(), "+••••••••••78");
        assert!(!number.masked().contains("1212"));
        // A stored number is masked alike whether or not the metadata still accepts it.
        assert_eq!(mask_e164("+441212345678"), number.masked());
        assert_eq!(mask_e164("+999"), "+•99");
        assert_eq!(mask_e164(""), "+");
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_e164_reparses_to_itself(input in "\\PC{0,40}", country in "[A-Za-z]{0,3}") {
            if let Ok(number) = PhoneNumber::parse(&input, Some(&country)) {
                prop_assert_eq!(PhoneNumber::parse(number.as_e164(), None).unwrap(), number);
            }
        }
    }
}
