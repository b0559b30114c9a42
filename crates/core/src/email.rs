//! The `Email` newtype: once you hold one, it is a plausible address in its normal form.
//!
//! Addresses are compared case-insensitively (the whole address is lower-cased: no real mail
//! system in use distinguishes the case of the local part, and two accounts that differ only in
//! case are a support and phishing hazard).

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// A normalised e-mail address: trimmed, NFKC (so full-width and other compatibility forms fold
/// to the letters they look like), lower-cased, without invisible characters, one `@`, a non-empty local part and a
/// domain with at least one label, at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(&'static str);

impl Email {
    pub fn parse(input: &str) -> Result<Email, InvalidEmail> {
        // NFKC again after lower-casing: a lower-case letter can compose with a following mark
        // where its capital could not ("W" + U+030A stays two characters, "w" + U+030A is
        // "ẘ"), and without it the same address typed two ways would be two accounts.
        let lowered = input.trim().nfkc().collect::<String>().to_lowercase();
        let normalised: String = lowered.nfkc().collect();
        if normalised.is_empty() {
            return Err(InvalidEmail("the email address is empty"));
        }
        if normalised.len() > 254 {
            return Err(InvalidEmail(
                "the email address is longer than 254 characters",
            ));
        }
        if normalised.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || is_invisible(c)
                || matches!(c, '<' | '>' | ',' | ';' | '"')
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

/// Format characters that render as nothing and would let two accounts look identical
/// (zero-width spaces and joiners, direction marks and overrides, word joiners, the BOM, the
/// soft hyphen, and the variation selectors).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{E0000}'..='\u{E007F}')
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

    /// Found by the `email` fuzz target: the normal form must itself be normal.
    #[test]
    fn a_mark_that_composes_only_with_the_lower_case_letter_is_composed() {
        let typed = Email::parse("W\u{30a}x@example.com").unwrap();
        let precomposed = Email::parse("\u{1e98}x@example.com").unwrap();
        assert_eq!(typed, precomposed);
        assert_eq!(Email::parse(typed.as_str()).unwrap(), typed);
    }

    #[test]
    fn normalises_case_and_space() {
        let email = Email::parse("  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(email.local_part(), "alice.smith");
    }

    #[test]
    fn look_alikes_fold_or_are_refused() {
        assert_eq!(
            Email::parse("ＢＯＢ@example.com").unwrap().as_str(),
            "bob@example.com"
        );
        assert!(Email::parse("bob@example.com\u{200B}").is_err());
        assert!(Email::parse("b\u{200D}ob@example.com").is_err());
        assert!(Email::parse("bob@exam\u{202E}ple.com").is_err());
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
