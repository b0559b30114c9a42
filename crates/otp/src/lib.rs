//! One-time passwords for Twofold: HOTP (RFC 4226), TOTP (RFC 6238), `otpauth://` key URIs,
//! QR codes for enrolment, and recovery codes.
//!
//! The crate is pure: it does no I/O and never reads the clock. Time is always a parameter
//! (unix seconds), and the only outside input is the operating system's CSPRNG, used to
//! generate secrets and recovery codes.
//!
//! ```
//! use twofold_otp::{KeyUri, OtpError, Secret, Totp, TotpCode, TotpParams, qr_svg};
//!
//! # fn main() -> Result<(), OtpError> {
//! // Enrolment: a new secret, shown as a QR code of its key URI.
//! let secret = Secret::generate()?;
//! let key = KeyUri::new("Twofold", "alice@example.com", secret.clone(), TotpParams::default())?;
//! let svg = qr_svg(&key.to_uri())?;
//! assert!(svg.starts_with("<svg"));
//!
//! // Sign-in: the caller supplies the time; the matched step is what it records to refuse
//! // a replay of the same code.
//! let totp = Totp::new(secret, TotpParams::default());
//! let now = 1_700_000_000;
//! let code = TotpCode::parse(&totp.code_at(now), 6)?;
//! assert_eq!(totp.verify(&code, now, 1), Some(totp.step_at(now)));
//! # Ok(())
//! # }
//! ```

mod algorithm;
mod code;
mod error;
mod hotp;
mod key_uri;
mod qr;
mod recovery;
mod secret;
mod totp;

pub use algorithm::Algorithm;
pub use code::TotpCode;
pub use error::OtpError;
pub use hotp::{format_code, hotp};
pub use key_uri::KeyUri;
pub use qr::qr_svg;
pub use recovery::RecoveryCode;
pub use secret::Secret;
pub use totp::{Totp, TotpParams};
