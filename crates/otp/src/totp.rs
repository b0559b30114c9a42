//! TOTP (RFC 6238): the parameters of a key, codes for a given time, and verification of a
//! submitted code within a window of steps.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::{Algorithm, OtpError, Secret, TotpCode, format_code, hotp};

/// The fewest and most digits a TOTP code may have; authenticator apps support 6 and 8.
const DIGITS: std::ops::RangeInclusive<u32> = 6..=8;

/// How a TOTP key turns time into codes. The default is what every authenticator app
/// assumes when a key URI says nothing: SHA-1, 6 digits, 30-second steps.
///
/// The fields are public for reading and for pattern matching; build values with
/// [`TotpParams::new`] so that they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TotpParams {
    /// The HMAC hash function.
    pub algorithm: Algorithm,
    /// Digits in a code, 6..=8.
    pub digits: u32,
    /// Seconds per time step, at least 1.
    pub period: u64,
}

impl TotpParams {
    /// Checked parameters: `digits` must be 6..=8 ([`OtpError::InvalidDigits`]) and `period`
    /// at least one second ([`OtpError::InvalidPeriod`]). There is no upper bound on the
    /// period; a long one only makes codes live longer.
    pub fn new(algorithm: Algorithm, digits: u32, period: u64) -> Result<TotpParams, OtpError> {
        if !DIGITS.contains(&digits) {
            return Err(OtpError::InvalidDigits);
        }
        if period == 0 {
            return Err(OtpError::InvalidPeriod);
        }
        Ok(TotpParams {
            algorithm,
            digits,
            period,
        })
    }

    /// Whether `digits` is a digit count [`TotpParams::new`] accepts.
    pub(crate) fn digits_are_valid(digits: u32) -> bool {
        DIGITS.contains(&digits)
    }
}

impl Default for TotpParams {
    fn default() -> Self {
        TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// A TOTP key: a secret with its parameters. `Debug` shows the parameters, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    secret: Secret,
    params: TotpParams,
}

impl Totp {
    /// A TOTP key. The parameters are not re-checked here: a zero period, possible only by
    /// building [`TotpParams`] by hand, is treated as one second rather than dividing by zero.
    pub fn new(secret: Secret, params: TotpParams) -> Totp {
        Totp { secret, params }
    }

    /// The time step `unix_time` falls in: RFC 6238's T with T0 = 0.
    pub fn step_at(&self, unix_time: u64) -> u64 {
        unix_time / self.params.period.max(1)
    }

    /// The code for time step `step`, zero-padded to the configured digits.
    pub fn code_at_step(&self, step: u64) -> String {
        let value = hotp(
            self.secret.as_bytes(),
            step,
            self.params.algorithm,
            self.params.digits,
        );
        format_code(value, self.params.digits)
    }

    /// The code an authenticator shows at `unix_time`.
    pub fn code_at(&self, unix_time: u64) -> String {
        self.code_at_step(self.step_at(unix_time))
    }

    /// Checks `code` against steps `step_at(t)-skew ..= step_at(t)+skew` and returns the
    /// step that matched.
    ///
    /// Every candidate is computed and compared in constant time (subtle), with no early
    /// return, so timing reveals neither which step nor how many digits matched. Work is
    /// linear in `skew_steps`; callers pass a small constant (1 is usual).
    ///
    /// If the same code happens to appear at several steps of the window, the latest is
    /// returned: a caller that records the last accepted step then refuses a replay of the
    /// code for the rest of the window, which returning an earlier step would not.
    ///
    /// A code with a different number of digits than these parameters never matches.
    pub fn verify(&self, code: &TotpCode, unix_time: u64, skew_steps: u64) -> Option<u64> {
        let current = self.step_at(unix_time);
        let first = current.saturating_sub(skew_steps);
        let last = current.saturating_add(skew_steps);
        let submitted = code.as_str().as_bytes();
        let mut found = Choice::from(0);
        let mut matched_step = 0u64;
        for step in first..=last {
            let expected = self.code_at_step(step);
            let is_match = expected.as_bytes().ct_eq(submitted);
            matched_step = u64::conditional_select(&matched_step, &step, is_match);
            found |= is_match;
        }
        bool::from(found).then_some(matched_step)
    }

    /// The parameters of this key.
    pub fn params(&self) -> TotpParams {
        self.params
    }

    /// The shared secret of this key.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B: (time, T in hex, SHA1 code, SHA256 code, SHA512 code).
    const RFC6238_VECTORS: [(u64, &str, &str, &str, &str); 6] = [
        (59, "0000000000000001", "94287082", "46119246", "90693936"),
        (
            1111111109,
            "00000000023523EC",
            "07081804",
            "68084774",
            "25091201",
        ),
        (
            1111111111,
            "00000000023523ED",
            "14050471",
            "67062674",
            "99943326",
        ),
        (
            1234567890,
            "000000000273EF07",
            "89005924",
            "91819424",
            "93441116",
        ),
        (
            2000000000,
            "0000000003F940AA",
            "69279037",
            "90698825",
            "38618901",
        ),
        (
            20000000000,
            "0000000027BC86AA",
            "65353130",
            "77737706",
            "47863826",
        ),
    ];

    fn rfc6238_totp(seed: &[u8], algorithm: Algorithm) -> Totp {
        let params = TotpParams::new(algorithm, 8, 30).unwrap();
        Totp::new(Secret::from_bytes(seed.to_vec()), params)
    }

    #[test]
    fn rfc6238_appendix_b_steps() {
        let totp = rfc6238_totp(SEED_SHA1, Algorithm::Sha1);
        for (time, step_hex, ..) in RFC6238_VECTORS {
            assert_eq!(
                format!("{:016X}", totp.step_at(time)),
                step_hex,
                "time {time}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1() {
        let totp = rfc6238_totp(SEED_SHA1, Algorithm::Sha1);
        for (time, _, expected, _, _) in RFC6238_VECTORS {
            assert_eq!(totp.code_at(time), expected, "time {time}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha256() {
        let totp = rfc6238_totp(SEED_SHA256, Algorithm::Sha256);
        for (time, _, _, expected, _) in RFC6238_VECTORS {
            assert_eq!(totp.code_at(time), expected, "time {time}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha512() {
        let totp = rfc6238_totp(SEED_SHA512, Algorithm::Sha512);
        for (time, _, _, _, expected) in RFC6238_VECTORS {
            assert_eq!(totp.code_at(time), expected, "time {time}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_codes_verify_at_their_step() {
        let totp = rfc6238_totp(SEED_SHA512, Algorithm::Sha512);
        for (time, step_hex, _, _, code) in RFC6238_VECTORS {
            let step = u64::from_str_radix(step_hex, 16).unwrap();
            let code = TotpCode::parse(code, 8).unwrap();
            assert_eq!(totp.verify(&code, time, 0), Some(step), "time {time}");
        }
    }

    #[test]
    fn params_are_checked() {
        assert_eq!(
            TotpParams::default(),
            TotpParams::new(Algorithm::Sha1, 6, 30).unwrap()
        );
        assert!(TotpParams::new(Algorithm::Sha256, 8, 60).is_ok());
        assert!(TotpParams::new(Algorithm::Sha1, 7, 1).is_ok());
        assert_eq!(
            TotpParams::new(Algorithm::Sha1, 5, 30),
            Err(OtpError::InvalidDigits)
        );
        assert_eq!(
            TotpParams::new(Algorithm::Sha1, 9, 30),
            Err(OtpError::InvalidDigits)
        );
        assert_eq!(
            TotpParams::new(Algorithm::Sha1, 6, 0),
            Err(OtpError::InvalidPeriod)
        );
    }

    fn default_totp() -> Totp {
        Totp::new(
            Secret::from_bytes(SEED_SHA1.to_vec()),
            TotpParams::default(),
        )
    }

    #[test]
    fn verify_returns_the_step_that_matched_within_the_window() {
        let totp = default_totp();
        let now = 1_700_000_015;
        let current = totp.step_at(now);
        for offset in [-1i64, 0, 1] {
            let step = current.checked_add_signed(offset).unwrap();
            let code = TotpCode::parse(&totp.code_at_step(step), 6).unwrap();
            assert_eq!(totp.verify(&code, now, 1), Some(step), "offset {offset}");
        }
    }

    #[test]
    fn verify_refuses_codes_outside_the_window() {
        let totp = default_totp();
        let now = 1_700_000_015;
        let current = totp.step_at(now);
        for step in [current - 3, current - 2, current + 2, current + 3] {
            let code = TotpCode::parse(&totp.code_at_step(step), 6).unwrap();
            // A code from another step may coincide with one in the window (1 in 10^6).
            let coincides = (current - 1..=current + 1)
                .any(|candidate| totp.code_at_step(candidate) == code.as_str());
            if !coincides {
                assert_eq!(totp.verify(&code, now, 1), None, "step {step}");
            }
        }
        let current_code = TotpCode::parse(&totp.code_at(now), 6).unwrap();
        assert_eq!(totp.verify(&current_code, now + 30, 0), None);
    }

    #[test]
    fn verify_refuses_a_wrong_code() {
        let totp = default_totp();
        let now = 59;
        let mut wrong = totp.code_at(now).into_bytes();
        wrong[5] = if wrong[5] == b'0' { b'1' } else { b'0' };
        let wrong = TotpCode::parse(std::str::from_utf8(&wrong).unwrap(), 6).unwrap();
        assert_eq!(totp.verify(&wrong, now, 0), None);
    }

    #[test]
    fn verify_refuses_a_code_with_other_digits() {
        let totp = default_totp();
        // The 8-digit code at 59 ends with the 6-digit one; it must still not match.
        let eight = rfc6238_totp(SEED_SHA1, Algorithm::Sha1).code_at(59);
        assert!(eight.ends_with(&totp.code_at(59)));
        let code = TotpCode::parse(&eight, 8).unwrap();
        assert_eq!(totp.verify(&code, 59, 1), None);
    }

    #[test]
    fn verify_does_not_underflow_or_overflow_at_the_ends_of_time() {
        let totp = default_totp();
        let first = TotpCode::parse(&totp.code_at_step(0), 6).unwrap();
        assert_eq!(totp.verify(&first, 0, 5), Some(0));
        let last_step = totp.step_at(u64::MAX);
        let last = TotpCode::parse(&totp.code_at_step(last_step), 6).unwrap();
        assert_eq!(totp.verify(&last, u64::MAX, 5), Some(last_step));
    }

    #[test]
    fn verify_prefers_the_latest_step_when_a_code_repeats() {
        // Found by search: with the RFC seed, steps 2386 and 2394 both give 709847.
        let totp = default_totp();
        assert_eq!(totp.code_at_step(2386), "709847");
        assert_eq!(totp.code_at_step(2394), "709847");
        let code = TotpCode::parse("709847", 6).unwrap();
        assert_eq!(totp.verify(&code, 2390 * 30, 4), Some(2394));
        assert_eq!(totp.verify(&code, 2386 * 30, 0), Some(2386));
    }

    #[test]
    fn a_zero_period_built_by_hand_does_not_divide_by_zero() {
        let params = TotpParams {
            period: 0,
            ..TotpParams::default()
        };
        let totp = Totp::new(Secret::from_bytes(SEED_SHA1.to_vec()), params);
        assert_eq!(totp.step_at(59), 59);
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let rendered = format!("{:?}", default_totp());
        assert!(rendered.contains("Secret(..)"), "{rendered}");
    }
}
