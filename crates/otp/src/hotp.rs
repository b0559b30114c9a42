//! HOTP (RFC 4226): the HMAC, its dynamic truncation to a decimal code, and code formatting.
//! TOTP is built on this by turning time into the counter.

use hmac::SimpleHmac;
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::{Digest, Key, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use zeroize::Zeroize;

use crate::Algorithm;

/// The RFC 4226 HOTP value for `counter`: HMAC of the big-endian counter, dynamic truncation
/// (section 5.3), reduced modulo `10^digits`.
///
/// Any key length is accepted, as HMAC allows. With `digits` of 10 or more the full 31-bit
/// truncated value is returned, since it already has fewer digits than that.
pub fn hotp(secret: &[u8], counter: u64, algorithm: Algorithm, digits: u32) -> u32 {
    let message = counter.to_be_bytes();
    let mut digest = match algorithm {
        Algorithm::Sha1 => hmac::<Sha1>(secret, &message),
        Algorithm::Sha256 => hmac::<Sha256>(secret, &message),
        Algorithm::Sha512 => hmac::<Sha512>(secret, &message),
    };
    let truncated = dynamic_truncate(&digest);
    digest.zeroize();
    match 10u64.checked_pow(digits) {
        Some(modulus) => (u64::from(truncated) % modulus) as u32,
        None => truncated,
    }
}

/// `value` left-padded with zeros to `digits` characters, as authenticator apps show it.
pub fn format_code(value: u32, digits: u32) -> String {
    let width = usize::try_from(digits).unwrap_or(usize::MAX);
    format!("{value:0width$}")
}

/// HMAC-`D` of `message` under `key`.
///
/// `Mac::new_from_slice` returns a `Result` although HMAC accepts every key length, so this
/// derives the block-sized key itself (RFC 2104 section 2: hash keys longer than a block,
/// zero-pad the rest) and uses the infallible constructor; the crate stays free of
/// `unwrap` and of an error branch that could never run.
fn hmac<D: Digest + BlockSizeUser>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block_key = Key::<SimpleHmac<D>>::default();
    if key.len() > block_key.len() {
        let mut hashed = D::digest(key);
        copy_prefix(&mut block_key, &hashed);
        hashed.zeroize();
    } else {
        copy_prefix(&mut block_key, key);
    }
    let mut mac = <SimpleHmac<D> as KeyInit>::new(&block_key);
    block_key.as_mut_slice().zeroize();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn copy_prefix(destination: &mut [u8], source: &[u8]) {
    for (to, from) in destination.iter_mut().zip(source) {
        *to = *from;
    }
}

/// RFC 4226 section 5.3: the low four bits of the last byte pick an offset, and the 31 bits
/// read there (top bit masked so the sign cannot differ between platforms) are the value.
fn dynamic_truncate(digest: &[u8]) -> u32 {
    let offset = usize::from(digest.last().copied().unwrap_or(0) & 0x0f);
    let word = digest
        .iter()
        .skip(offset)
        .take(4)
        .fold(0u32, |word, byte| (word << 8) | u32::from(*byte));
    word & 0x7fff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Hmac;

    const RFC4226_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 4226 Appendix D: (counter, truncated decimal value, 6-digit HOTP).
    const RFC4226_VECTORS: [(u64, u32, u32); 10] = [
        (0, 1284755224, 755224),
        (1, 1094287082, 287082),
        (2, 137359152, 359152),
        (3, 1726969429, 969429),
        (4, 1640338314, 338314),
        (5, 868254676, 254676),
        (6, 1918287922, 287922),
        (7, 82162583, 162583),
        (8, 673399871, 399871),
        (9, 645520489, 520489),
    ];

    #[test]
    fn rfc4226_appendix_d_hotp_values() {
        for (counter, _, expected) in RFC4226_VECTORS {
            assert_eq!(
                hotp(RFC4226_SECRET, counter, Algorithm::Sha1, 6),
                expected,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc4226_appendix_d_truncated_values() {
        for (counter, truncated, _) in RFC4226_VECTORS {
            let digest = hmac::<Sha1>(RFC4226_SECRET, &counter.to_be_bytes());
            assert_eq!(dynamic_truncate(&digest), truncated, "counter {counter}");
            // Ten or more digits keep the whole 31-bit value.
            assert_eq!(
                hotp(RFC4226_SECRET, counter, Algorithm::Sha1, 10),
                truncated
            );
        }
    }

    #[test]
    fn rfc4226_appendix_d_hmac_of_counter_0() {
        let digest = hmac::<Sha1>(RFC4226_SECRET, &0u64.to_be_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex, "cc93cf18508d94934c64b65d8ba7667fb7cde4b0");
    }

    #[test]
    fn rfc4226_section_5_4_truncation_example() {
        let digest = [
            0x1f, 0x86, 0x98, 0x69, 0x0e, 0x02, 0xca, 0x16, 0x61, 0x85, 0x50, 0xef, 0x7f, 0x19,
            0xda, 0x8e, 0x94, 0x5b, 0x55, 0x5a,
        ];
        assert_eq!(dynamic_truncate(&digest), 0x50ef7f19);
        assert_eq!(dynamic_truncate(&digest) % 1_000_000, 872921);
    }

    #[test]
    fn block_key_derivation_matches_the_hmac_crate_for_every_key_length() {
        let message = 42u64.to_be_bytes();
        for length in [0usize, 1, 20, 63, 64, 65, 127, 128, 129, 300] {
            let key: Vec<u8> = (0..length).map(|index| index as u8).collect();

            let mut reference = <Hmac<Sha1> as Mac>::new_from_slice(&key).unwrap();
            reference.update(&message);
            assert_eq!(
                hmac::<Sha1>(&key, &message),
                reference.finalize().into_bytes().to_vec(),
                "SHA1, key length {length}"
            );

            let mut reference = <Hmac<Sha512> as Mac>::new_from_slice(&key).unwrap();
            reference.update(&message);
            assert_eq!(
                hmac::<Sha512>(&key, &message),
                reference.finalize().into_bytes().to_vec(),
                "SHA512, key length {length}"
            );
        }
    }

    #[test]
    fn format_code_pads_with_zeros() {
        assert_eq!(format_code(0, 6), "000000");
        assert_eq!(format_code(42, 6), "000042");
        assert_eq!(format_code(755224, 6), "755224");
        assert_eq!(format_code(162583, 8), "00162583");
    }

    #[test]
    fn extreme_digit_counts_do_not_panic() {
        assert_eq!(hotp(RFC4226_SECRET, 0, Algorithm::Sha1, 0), 0);
        assert_eq!(
            hotp(RFC4226_SECRET, 0, Algorithm::Sha1, u32::MAX),
            1284755224
        );
    }
}
