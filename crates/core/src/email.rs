//! The `Email` newtype: once you hold one, it is a plausible address in its normal form.
//!
//! Addresses are compared case-insensitively (the whole address is lower-cased: no real mail
//! system in use distinguishes the case of the local part, and two accounts that differ only in
//! case are a support and phishing hazard).

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// A normalised e-mail address: trimmed, NFC, lower-cased, one `@`, a non-empty local part and a
/// domain with at least one label, at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(&'static str);

impl Email {
    pub fn parse(input: &str) -> Result<Email, InvalidEmail> {
        let normalised: String = input.trim().nfc().collect::<String>().to_lowercase();
        if normalised.is_empty() {
            return Err(InvalidEmail("the email address is empty"));
        }
        if normalised.len() > 254 {
            return Err(InvalidEmail(
                "the email address is longer than 254 characters",
            ));
        }
        if normalised.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        }) {
            return Err(InvalidEmail(
                "the email address contains characters that are not allowed",
            ));
        }
        let Some((local, domain)) = normalised.rsplit_once('@') else {
            return Err(InvalidEmail("the email address needs an @"));
        };
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(InvalidEmail("the part before the @ is not valid"));
        }
        let labels_ok = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !labels_ok {
            return Err(InvalidEmail("the part after the @ is not a valid domain"));
        }
        Ok(Email(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`, used to refuse passwords built from the address.
    pub fn local_part(&self) -> &str {
        self.0
            .rsplit_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_case_and_space() {
        let email = Email::parse("  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(email.local_part(), "alice.smith");
    }

    #[test]
    fn accepts_localhost_for_the_first_admin() {
        assert!(Email::parse("admin@localhost").is_ok());
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@@example.com",
            "a b@example.com",
            "alice@example..com",
            "alice@-example.com",
            "<alice@example.com>",
            "alice@exa\u{0}mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    proptest! {
        #[test]
        fn parse_is_idempotent(input in "\\PC{0,80}") {
            if let Ok(email) = Email::parse(&input) {
                prop_assert_eq!(Email::parse(email.as_str()).unwrap(), email);
            }
        }
    }
}
