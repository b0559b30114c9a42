//! `otpauth://totp/` key URIs (the Google Authenticator "Key Uri Format"): building the URI
//! an authenticator app scans at enrolment, and reading one back.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::{Algorithm, OtpError, Secret, TotpParams};

/// Everything but RFC 3986 unreserved characters is percent-encoded, so a space becomes
/// `%20` (never `+`, which apps would show literally) and `:`, `&`, `?`, `#`, `%` and `/`
/// in names cannot break the label or the query.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const SCHEME_AND_TYPE: &str = "otpauth://totp/";

/// A TOTP key as an authenticator app receives it: who issued it, for which account, the
/// secret and the parameters. Equality compares the secret in constant time; `Debug` hides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    /// The service name shown in the app, e.g. "Twofold". May be empty, then the URI has
    /// no issuer at all.
    pub issuer: String,
    /// The account name shown under it, e.g. an email address. Never empty.
    pub account: String,
    /// The shared secret.
    pub secret: Secret,
    /// Algorithm, digits and period.
    pub params: TotpParams,
}

impl KeyUri {
    /// A checked key URI. The issuer and account must not contain `:` (it separates them in
    /// the label) or control characters, nor begin or end with whitespace (apps trim the
    /// space after the colon, so the name would not survive a round trip); the account must
    /// not be empty. Any of these is [`OtpError::InvalidLabel`].
    pub fn new(
        issuer: impl Into<String>,
        account: impl Into<String>,
        secret: Secret,
        params: TotpParams,
    ) -> Result<KeyUri, OtpError> {
        let issuer = issuer.into();
        let account = account.into();
        if account.is_empty() || !label_part_is_valid(&issuer) || !label_part_is_valid(&account) {
            return Err(OtpError::InvalidLabel);
        }
        Ok(KeyUri {
            issuer,
            account,
            secret,
            params,
        })
    }

    /// `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&algorithm=SHA1&digits=6&period=30`,
    /// with the issuer left out of both places when it is empty. The parameters are always
    /// written, even the defaults, so no app has to guess.
    pub fn to_uri(&self) -> String {
        let mut uri = String::from(SCHEME_AND_TYPE);
        if !self.issuer.is_empty() {
            uri.extend(utf8_percent_encode(&self.issuer, ENCODE));
            uri.push(':');
        }
        uri.extend(utf8_percent_encode(&self.account, ENCODE));
        uri.push_str("?secret=");
        uri.push_str(&self.secret.to_base32());
        if !self.issuer.is_empty() {
            uri.push_str("&issuer=");
            uri.extend(utf8_percent_encode(&self.issuer, ENCODE));
        }
        uri.push_str("&algorithm=");
        uri.push_str(self.params.algorithm.as_str());
        uri.push_str(&format!("&digits={}", self.params.digits));
        uri.push_str(&format!("&period={}", self.params.period));
        uri
    }

    /// Reads a TOTP key URI, the inverse of [`KeyUri::to_uri`], tolerant of what other
    /// generators write: scheme and type in any case, parameters in any order and any key
    /// case, a literal or encoded (`%3A`) colon in the label, spaces after it, unknown
    /// parameters (such as `image`) and a fragment are ignored, and missing algorithm,
    /// digits and period take the defaults. A `secret` is required; an issuer in the label
    /// and in the `issuer` parameter must agree. A repeated parameter is refused, so there
    /// is never a question of which one an app would use. Never panics.
    pub fn parse(uri: &str) -> Result<KeyUri, OtpError> {
        let uri = uri.split_once('#').map_or(uri, |(before, _)| before);
        let rest = strip_prefix_ignore_ascii_case(uri, "otpauth://")
            .ok_or(OtpError::InvalidUri("not an otpauth URI"))?;
        let rest = strip_prefix_ignore_ascii_case(rest, "totp/")
            .ok_or(OtpError::InvalidUri("not a TOTP key"))?;
        let (label, query) = rest
            .split_once('?')
            .ok_or(OtpError::InvalidUri("no parameters"))?;
        let (label_issuer, account) = parse_label(label)?;
        let query = parse_query(query)?;

        let secret_text = query.secret.ok_or(OtpError::InvalidUri("no secret"))?;
        let secret = Secret::parse_base32(&secret_text)?;
        let algorithm = match query.algorithm {
            Some(name) => name.parse::<Algorithm>()?,
            None => Algorithm::default(),
        };
        let defaults = TotpParams::default();
        let digits = match query.digits {
            Some(text) => parse_number::<u32>(&text).ok_or(OtpError::InvalidDigits)?,
            None => defaults.digits,
        };
        let period = match query.period {
            Some(text) => parse_number::<u64>(&text).ok_or(OtpError::InvalidPeriod)?,
            None => defaults.period,
        };
        let params = TotpParams::new(algorithm, digits, period)?;

        let issuer = match (label_issuer, query.issuer) {
            (Some(from_label), Some(from_query)) if from_label != from_query => {
                return Err(OtpError::InvalidUri("issuer in label and parameter differ"));
            }
            (_, Some(issuer)) | (Some(issuer), None) => issuer,
            (None, None) => String::new(),
        };
        KeyUri::new(issuer, account, secret, params)
    }
}

fn label_part_is_valid(part: &str) -> bool {
    !part.contains(':') && !part.chars().any(char::is_control) && part.trim() == part
}

fn strip_prefix_ignore_ascii_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

fn decode(text: &str, what: &'static str) -> Result<String, OtpError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| OtpError::InvalidUri(what))
}

/// Splits `Issuer:account` (after decoding, so an encoded colon counts too) and drops the
/// spaces the format allows after the colon.
fn parse_label(label: &str) -> Result<(Option<String>, String), OtpError> {
    let label = decode(label, "label is not UTF-8")?;
    match label.split_once(':') {
        Some((issuer, account)) => {
            if account.contains(':') {
                return Err(OtpError::InvalidLabel);
            }
            Ok((Some(issuer.to_owned()), account.trim_start().to_owned()))
        }
        None => Ok((None, label)),
    }
}

#[derive(Default)]
struct Query {
    secret: Option<String>,
    issuer: Option<String>,
    algorithm: Option<String>,
    digits: Option<String>,
    period: Option<String>,
}

fn parse_query(query: &str) -> Result<Query, OtpError> {
    let mut parsed = Query::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or(OtpError::InvalidUri("parameter without a value"))?;
        let key = key.to_ascii_lowercase();
        let slot = match key.as_str() {
            "secret" => &mut parsed.secret,
            "issuer" => &mut parsed.issuer,
            "algorithm" => &mut parsed.algorithm,
            "digits" => &mut parsed.digits,
            "period" => &mut parsed.period,
            _ => continue,
        };
        if slot.is_some() {
            return Err(OtpError::InvalidUri("repeated parameter"));
        }
        *slot = Some(decode(value, "parameter is not UTF-8")?);
    }
    Ok(parsed)
}

/// Plain decimal only: `str::parse` would also take a leading `+`.
fn parse_number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rfc_secret() -> Secret {
        Secret::from_bytes(b"12345678901234567890".to_vec())
    }

    fn example() -> KeyUri {
        KeyUri::new(
            "Twofold",
            "alice@example.com",
            rfc_secret(),
            TotpParams::default(),
        )
        .unwrap()
    }

    #[test]
    fn to_uri_writes_every_parameter() {
        assert_eq!(
            example().to_uri(),
            "otpauth://totp/Twofold:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Twofold&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn to_uri_percent_encodes_all_but_unreserved_characters() {
        let params = TotpParams::new(Algorithm::Sha256, 8, 60).unwrap();
        let key = KeyUri::new("Acme & Co", "a b?c#d%e/f+g~h", rfc_secret(), params).unwrap();
        assert_eq!(
            key.to_uri(),
            "otpauth://totp/Acme%20%26%20Co:a%20b%3Fc%23d%25e%2Ff%2Bg~h\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20%26%20Co\
             &algorithm=SHA256&digits=8&period=60"
        );
        assert_eq!(KeyUri::parse(&key.to_uri()).unwrap(), key);
    }

    #[test]
    fn to_uri_encodes_unicode_as_utf8() {
        let key = KeyUri::new("Zwéi", "jürgen", rfc_secret(), TotpParams::default()).unwrap();
        assert!(
            key.to_uri()
                .starts_with("otpauth://totp/Zw%C3%A9i:j%C3%BCrgen?")
        );
    }

    #[test]
    fn an_empty_issuer_is_left_out() {
        let key = KeyUri::new("", "alice", rfc_secret(), TotpParams::default()).unwrap();
        let uri = key.to_uri();
        assert!(uri.starts_with("otpauth://totp/alice?secret="), "{uri}");
        assert!(!uri.contains("issuer"));
        assert_eq!(KeyUri::parse(&uri).unwrap(), key);
    }

    #[test]
    fn new_refuses_bad_labels() {
        for (issuer, account) in [
            ("Twofold", ""),
            ("Two:fold", "alice"),
            ("Twofold", "al:ice"),
            ("Twofold", "alice\n"),
            ("Two\u{7}fold", "alice"),
            ("Twofold", " alice"),
            (" Twofold", "alice"),
            ("Twofold ", "alice"),
        ] {
            assert_eq!(
                KeyUri::new(issuer, account, rfc_secret(), TotpParams::default()),
                Err(OtpError::InvalidLabel),
                "{issuer:?} {account:?}"
            );
        }
    }

    #[test]
    fn parse_reads_what_other_generators_write() {
        let expected = example();
        for uri in [
            "otpauth://totp/Twofold:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Twofold",
            "OTPAUTH://TOTP/Twofold%3Aalice@example.com?issuer=Twofold&secret=gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "otpauth://totp/Twofold:%20alice%40example.com?period=30&Secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=6&algorithm=sha1",
            "otpauth://totp/Twofold:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&image=https%3A%2F%2Fx&",
            "otpauth://totp/alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Twofold#fragment",
        ] {
            assert_eq!(KeyUri::parse(uri).unwrap(), expected, "{uri}");
        }
    }

    #[test]
    fn parse_refuses_malformed_uris() {
        let secret = "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let cases: Vec<(String, OtpError)> = vec![
            ("".into(), OtpError::InvalidUri("not an otpauth URI")),
            (
                "https://example.com".into(),
                OtpError::InvalidUri("not an otpauth URI"),
            ),
            (
                format!("otpauth://hotp/a?{secret}&counter=1"),
                OtpError::InvalidUri("not a TOTP key"),
            ),
            (
                "otpauth://totp/a".into(),
                OtpError::InvalidUri("no parameters"),
            ),
            (
                "otpauth://totp/a?issuer=b".into(),
                OtpError::InvalidUri("no secret"),
            ),
            (
                format!("otpauth://totp/a?{secret}&{secret}"),
                OtpError::InvalidUri("repeated parameter"),
            ),
            (
                format!("otpauth://totp/a?{secret}&digits"),
                OtpError::InvalidUri("parameter without a value"),
            ),
            (
                format!("otpauth://totp/A:b?{secret}&issuer=B"),
                OtpError::InvalidUri("issuer in label and parameter differ"),
            ),
            (
                format!("otpauth://totp/a?{secret}&algorithm=MD5"),
                OtpError::InvalidUri("unknown algorithm"),
            ),
            (
                format!("otpauth://totp/a%FF?{secret}"),
                OtpError::InvalidUri("label is not UTF-8"),
            ),
            (
                format!("otpauth://totp/a?{secret}&issuer=%C3"),
                OtpError::InvalidUri("parameter is not UTF-8"),
            ),
            (
                format!("otpauth://totp/a?{secret}&digits=10"),
                OtpError::InvalidDigits,
            ),
            (
                format!("otpauth://totp/a?{secret}&digits=+6"),
                OtpError::InvalidDigits,
            ),
            (
                format!("otpauth://totp/a?{secret}&digits=99999999999"),
                OtpError::InvalidDigits,
            ),
            (
                format!("otpauth://totp/a?{secret}&period=0"),
                OtpError::InvalidPeriod,
            ),
            (
                format!("otpauth://totp/a?{secret}&period=-30"),
                OtpError::InvalidPeriod,
            ),
            (
                "otpauth://totp/a?secret=GEZD".into(),
                OtpError::SecretTooShort,
            ),
            ("otpauth://totp/a?secret=G1".into(), OtpError::InvalidBase32),
            (format!("otpauth://totp/?{secret}"), OtpError::InvalidLabel),
            (
                format!("otpauth://totp/A:?{secret}"),
                OtpError::InvalidLabel,
            ),
            (
                format!("otpauth://totp/A:b:c?{secret}"),
                OtpError::InvalidLabel,
            ),
            (
                format!("otpauth://totp/a?{secret}&issuer=x%3Ay"),
                OtpError::InvalidLabel,
            ),
            (
                format!("otpauth://totp/a%0A?{secret}"),
                OtpError::InvalidLabel,
            ),
        ];
        for (uri, error) in cases {
            assert_eq!(KeyUri::parse(&uri), Err(error), "{uri}");
        }
    }

    #[test]
    fn parse_does_not_split_on_multibyte_characters() {
        // Prefix checks slice by bytes; a multi-byte character there must not panic.
        for uri in [
            "é",
            "otpauth:/é",
            "otpauth://toté",
            "otpauth://totp",
            "otpauth://",
        ] {
            assert!(KeyUri::parse(uri).is_err(), "{uri}");
        }
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[^:\\p{C}]{1,24}",
            "[ a-zA-Z0-9&?%#=+/@.~_é漢ß\u{1F600}-]{1,24}",
        ]
    }

    proptest! {
        #[test]
        fn to_uri_then_parse_round_trips(
            issuer in prop_oneof![Just(String::new()), name()],
            account in name(),
            bytes in proptest::collection::vec(any::<u8>(), 10..40),
            algorithm in proptest::sample::select(vec![Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]),
            digits in 6u32..=8,
            period in 1u64..100_000,
        ) {
            prop_assume!(issuer.trim() == issuer && account.trim() == account);
            let params = TotpParams::new(algorithm, digits, period).unwrap();
            let key = KeyUri::new(issuer, account, Secret::from_bytes(bytes), params).unwrap();
            prop_assert_eq!(KeyUri::parse(&key.to_uri()).unwrap(), key);
        }

        #[test]
        fn parse_never_panics(input in "\\PC*") {
            let _ = KeyUri::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            label in "[^?#]{0,20}",
            query in "[a-zA-Z0-9=&%:#?]{0,60}",
        ) {
            let uri = format!("otpauth://totp/{label}?{query}");
            if let Ok(key) = KeyUri::parse(&uri) {
                prop_assert_eq!(KeyUri::parse(&key.to_uri()).unwrap(), key);
            }
        }
    }
}
