//! Feeds arbitrary text to every parser of `twofold-otp` (key URIs, base32 secrets, TOTP
//! codes, recovery codes). None may panic, and whatever one accepts must survive being
//! written out and read back unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use twofold_otp::{KeyUri, RecoveryCode, Secret, TotpCode};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(key) = KeyUri::parse(input) {
        let uri = key.to_uri();
        assert_eq!(
            KeyUri::parse(&uri).as_ref(),
            Ok(&key),
            "key URI round trip: {uri}"
        );
    }

    if let Ok(secret) = Secret::parse_base32(input) {
        assert!(secret.as_bytes().len() >= 10);
        for text in [secret.to_base32(), secret.to_base32_grouped()] {
            let again = Secret::parse_base32(&text);
            assert_eq!(again.as_ref(), Ok(&secret), "base32 round trip: {text}");
        }
    }

    for digits in 6..=8 {
        if let Ok(code) = TotpCode::parse(input, digits) {
            assert_eq!(code.as_str().len(), digits as usize);
            assert!(code.as_str().bytes().all(|byte| byte.is_ascii_digit()));
            assert_eq!(TotpCode::parse(code.as_str(), digits).as_ref(), Ok(&code));
        }
    }

    if let Ok(code) = RecoveryCode::parse(input) {
        assert_eq!(code.as_str().len(), 16);
        assert_eq!(RecoveryCode::parse(&code.display()).as_ref(), Ok(&code));
        assert_eq!(RecoveryCode::parse(code.as_str()).as_ref(), Ok(&code));
    }
});
