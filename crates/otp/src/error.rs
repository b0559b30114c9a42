//! The one error type of the crate: every way an OTP input or operation can be refused.

/// Why a secret, code, key URI or QR code was refused, or why randomness failed.
///
/// These are all *expected* failures of untrusted input except [`OtpError::Qr`] and
/// [`OtpError::Random`], which callers should treat as unexpected.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpError {
    /// The text is not RFC 4648 base32 (after spaces, dashes and padding are dropped).
    #[error("the secret is not valid base32")]
    InvalidBase32,
    /// The secret decodes to fewer than 80 bits, the minimum RFC 4226 allows.
    #[error("the secret is shorter than 80 bits")]
    SecretTooShort,
    /// A one-time or recovery code does not have the expected shape.
    #[error("the code is not in the expected format")]
    InvalidCode,
    /// The number of digits is outside 6..=8.
    #[error("the number of digits must be between 6 and 8")]
    InvalidDigits,
    /// The TOTP period is zero.
    #[error("the period must be at least one second")]
    InvalidPeriod,
    /// An issuer or account name is empty, contains ':' or control characters, or has
    /// leading or trailing whitespace.
    #[error("the issuer or account name is not allowed in a key URI label")]
    InvalidLabel,
    /// An `otpauth://` URI is malformed; the text says which part.
    #[error("the key URI is invalid: {0}")]
    InvalidUri(&'static str),
    /// The data does not fit in a QR code.
    #[error("the data cannot be encoded as a QR code")]
    Qr,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}
