//! Password rules after OWASP ASVS 5.0 V6.2 and NIST SP 800-63B §3.1.1.2: at least 8 characters,
//! at most 1 KiB, every character allowed (Unicode normalised with NFKC so the same password typed
//! on two keyboards matches), no composition rules, and a refusal of passwords that are common
//! or made of the account's own address.

use std::collections::HashSet;
use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use crate::email::Email;

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Upper bound on the normalised password, in bytes (ASVS asks for at least 64 characters to be
/// allowed; 1 KiB keeps a hash request cheap to receive).
pub const MAX_PASSWORD_BYTES: usize = 1024;

static COMMON_PASSWORDS_TEXT: &str = include_str!("../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS_TEXT
            .lines()
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// Why a new password was refused. The messages are shown to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes long")]
    TooLong,
    #[error("this password is too common; choose one that is harder to guess")]
    Common,
    #[error("the password must not contain your email address")]
    ContainsEmail,
    #[error(
        "the password is too close to your email address or the name of this service; add words of your own"
    )]
    ContextWords,
    #[error("this password is too easy to guess: avoid repeated or sequential characters")]
    Trivial,
    #[error("the password must not contain control characters")]
    ControlCharacter,
    #[error("the new password must differ from the temporary one")]
    Unchanged,
}

/// A password as typed at login: NFKC-normalised, length-bounded, not checked against the rules
/// for new passwords (an old password may predate them).
pub struct LoginPassword(SecretString);

impl LoginPassword {
    /// Normalises a password typed at login. `None` when it is too long to be one we accepted.
    pub fn parse(input: &SecretString) -> Option<LoginPassword> {
        // Bound the raw input before normalising so a huge body cannot buy CPU time.
        if input.expose_secret().len() > MAX_PASSWORD_BYTES * 4 {
            return None;
        }
        let normalised: String = input.expose_secret().nfkc().collect();
        if normalised.len() > MAX_PASSWORD_BYTES {
            return None;
        }
        Some(LoginPassword(SecretString::from(normalised)))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A password that meets the rules for a new password.
pub struct NewPassword(SecretString);

impl NewPassword {
    /// Checks a password someone wants to set for `email`.
    pub fn parse(input: &SecretString, email: &Email) -> Result<NewPassword, WeakPassword> {
        let normalised = LoginPassword::parse(input).ok_or(WeakPassword::TooLong)?;
        let text = normalised.0.expose_secret();
        if text.chars().count() < MIN_PASSWORD_CHARS {
            return Err(WeakPassword::TooShort);
        }
        if text.chars().any(char::is_control) {
            return Err(WeakPassword::ControlCharacter);
        }
        if is_trivial(text) {
            return Err(WeakPassword::Trivial);
        }
        let lowered = text.to_lowercase();
        // "Password1!" is "password" with the decoration people add to pass composition rules.
        let core = lowered
            .trim_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation() || c == ' ');
        if common_passwords().contains(lowered.as_str()) || common_passwords().contains(core) {
            return Err(WeakPassword::Common);
        }
        let local = email.local_part();
        if lowered.contains(email.as_str()) || (local.chars().count() >= 4 && lowered == local) {
            return Err(WeakPassword::ContainsEmail);
        }
        if built_from_context_words(&lowered, email) {
            return Err(WeakPassword::ContextWords);
        }
        Ok(NewPassword(normalised.0))
    }

    /// A password this server generated itself (temporary passwords), which meets the rules by
    /// construction.
    pub(crate) fn generated(secret: SecretString) -> NewPassword {
        NewPassword(secret)
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// Words an attacker tries first against this account (OWASP ASVS 5.0 6.1.2): the product's name
/// and the words of the account's own address — its local part and the labels of its domain,
/// which name the organisation (`alice.smith@acme-corp.example` gives `alice`, `smith`, `acme`,
/// `corp`, `example`). Top-level domains are left out: they are too short to matter.
const PRODUCT_WORDS: &[&str] = &["twofold"];

/// The fewest characters of its own a password must keep once its context words, digits,
/// punctuation and spaces are taken out.
const OWN_CHARACTERS: usize = 4;

fn context_words(email: &Email) -> Vec<String> {
    let address = email.as_str();
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let labels: Vec<&str> = domain.split('.').collect();
    let without_tld = &labels[..labels.len().saturating_sub(1)];
    let mut words: Vec<String> = PRODUCT_WORDS
        .iter()
        .map(|word| (*word).to_owned())
        .collect();
    for part in std::iter::once(local).chain(without_tld.iter().copied()) {
        words.push(part.to_owned());
        words.extend(
            part.split(|c: char| !c.is_alphanumeric())
                .map(str::to_owned),
        );
    }
    words.retain(|word| word.chars().count() >= 3);
    // Longest first, so that "acmecorp" goes before "acme" would leave "corp".
    words.sort_by_key(|word| std::cmp::Reverse(word.len()));
    words.dedup();
    words
}

/// Whether `lowered` is made of context words and decoration ("Acme2024!", "twofold-alice").
fn built_from_context_words(lowered: &str, email: &Email) -> bool {
    let mut rest = lowered.to_owned();
    for word in context_words(email) {
        rest = rest.replace(&word, "");
    }
    let own = rest
        .chars()
        .filter(|c| !(c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace()))
        .count();
    own < OWN_CHARACTERS
}

/// Repetitive or sequential passwords, which NIST SP 800-63B names among those to refuse:
/// at most two distinct characters ("aaaaaaaa", "abababab"), a run of code points going up or
/// down by one ("abcdefgh", "98765432"), or a short unit repeated ("abcabcabc").
fn is_trivial(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() <= 2 {
        return true;
    }
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|pair| i64::from(u32::from(pair[1])) - i64::from(u32::from(pair[0])))
        .collect();
    if steps.iter().all(|&step| step == 1) || steps.iter().all(|&step| step == -1) {
        return true;
    }
    (1..=4).any(|unit| {
        chars.len().is_multiple_of(unit)
            && chars.len() / unit >= 2
            && chars.chunks(unit).all(|chunk| chunk == &chars[..unit])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("alice@example.com").unwrap()
    }

    fn check(password: &str) -> Result<NewPassword, WeakPassword> {
        NewPassword::parse(&SecretString::from(password.to_owned()), &email())
    }

    #[test]
    fn length_rules_count_characters_not_bytes() {
        assert_eq!(check("short").err(), Some(WeakPassword::TooShort));
        assert!(
            check("ünïcödé!").is_ok(),
            "8 characters of 2 bytes each are 8 characters"
        );
        assert_eq!(
            check(&"x".repeat(MAX_PASSWORD_BYTES + 1)).err(),
            Some(WeakPassword::TooLong)
        );
        assert!(check(&"correct horse battery staple ".repeat(30)).is_ok());
    }

    #[test]
    fn no_composition_rules() {
        assert!(check("all lower case words here").is_ok());
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        assert_eq!(check("password1").err(), Some(WeakPassword::Common));
        assert_eq!(check("PassWord1").err(), Some(WeakPassword::Common));
        assert_eq!(check("qwertyuiop").err(), Some(WeakPassword::Common));
        assert!(common_passwords().len() > 10_000);
    }

    #[test]
    fn repetitive_sequential_and_decorated_common_passwords_are_refused() {
        for trivial in [
            "aaaaaaaa",
            "        ",
            "abababab",
            "abcdefgh",
            "98765432",
            "abcabcabc",
            "xyzwxyzw",
        ] {
            assert_eq!(
                check(trivial).err(),
                Some(WeakPassword::Trivial),
                "{trivial:?}"
            );
        }
        assert_eq!(
            check("\0\0\0\0\0\0\0\0x").err(),
            Some(WeakPassword::ControlCharacter)
        );
        assert_eq!(check("Password1!").err(), Some(WeakPassword::Common));
        assert_eq!(check("!!Sunshine2024").err(), Some(WeakPassword::Common));
        assert!(check("abcdefgz, a real phrase").is_ok());
    }

    #[test]
    fn the_address_is_refused() {
        assert_eq!(
            check("alice@example.com").err(),
            Some(WeakPassword::ContainsEmail)
        );
        assert_eq!(
            check("ALICE@example.com!!").err(),
            Some(WeakPassword::ContainsEmail)
        );
    }

    #[test]
    fn context_words_are_refused() {
        let email = Email::parse("alice.smith@acme-corp.example").unwrap();
        let check = |password: &str| {
            NewPassword::parse(&SecretString::from(password.to_owned()), &email).err()
        };
        for weak in [
            "AcmeCorp2024!",
            "acme-corp-2025",
            "Twofold2024!!",
            "smith.alice.99",
            "corp acme acme",
            "twofold-acme!",
        ] {
            assert_eq!(check(weak), Some(WeakPassword::ContextWords), "{weak:?}");
        }
        for fine in [
            "acme purple giraffe",
            "twofold is a lovely name",
            "alice in wonderland 1865",
        ] {
            assert_eq!(check(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn nfkc_makes_compatibility_forms_equal() {
        // U+FB01 LATIN SMALL LIGATURE FI normalises to "fi".
        let typed =
            LoginPassword::parse(&SecretString::from("\u{FB01}nest-hour".to_owned())).unwrap();
        assert_eq!(typed.secret().expose_secret(), "finest-hour");
    }
}
