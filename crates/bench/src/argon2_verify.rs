//! Argon2id verification as the server's hashing workers do it, outside the server: the PHC
//! string parsed, then Argon2id v1.3 into a memory buffer that is either kept across calls (what
//! `twofold_core::hasher` does, one buffer per worker thread) or allocated for every call (for
//! comparison). [`verifies_per_second`] is the bound the load runs compare logins with.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, Version};

/// The server's default cost (`Argon2Settings::default()`): m = 19,456 KiB, t = 2, p = 1.
pub fn default_params() -> anyhow::Result<Params> {
    let settings = twofold_core::hasher::Argon2Settings::default();
    Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        Some(32),
    )
    .map_err(|error| anyhow!("invalid Argon2 parameters: {error}"))
}

/// A PHC string (`$argon2id$v=19$m=…`) of `password` under `params`, with a fixed salt: the
/// benchmarks need a stored hash to verify against, not a secret one.
pub fn phc_for(password: &str, params: Params) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(b"twofold-bench-salt")
        .map_err(|error| anyhow!("cannot encode the salt: {error}"))?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    Ok(hasher
        .hash_password(password.as_bytes(), &salt)
        .map_err(|error| anyhow!("cannot hash: {error}"))?
        .to_string())
}

/// Where a verification's Argon2 memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// One buffer kept by the verifier and reused, as each hashing worker of the server does.
    Reused,
    /// A fresh allocation per verification (the `argon2` crate's own way).
    Fresh,
}

/// Verifies passwords against PHC strings, one at a time, like one hashing worker.
pub struct Verifier {
    memory: Memory,
    blocks: Vec<Block>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("memory", &self.memory)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl Verifier {
    /// A verifier whose reused buffer (with [`Memory::Reused`]) fits `params`.
    pub fn new(memory: Memory, params: &Params) -> Self {
        let blocks = match memory {
            Memory::Reused => vec![Block::default(); params.block_count()],
            Memory::Fresh => Vec::new(),
        };
        Self { memory, blocks }
    }

    /// Whether `password` matches the PHC string `phc` (Argon2id v1.3 only).
    pub fn verify(&mut self, password: &[u8], phc: &str) -> anyhow::Result<bool> {
        let parsed = PasswordHash::new(phc).map_err(|error| anyhow!("bad PHC string: {error}"))?;
        if Algorithm::try_from(parsed.algorithm).ok() != Some(Algorithm::Argon2id) {
            bail!("not an Argon2id hash");
        }
        let stored = Params::try_from(&parsed).map_err(|error| anyhow!("{error}"))?;
        let salt = parsed.salt.context("the PHC string has no salt")?;
        let mut salt_buffer = [0u8; 64];
        let salt = salt
            .decode_b64(&mut salt_buffer)
            .map_err(|error| anyhow!("bad salt: {error}"))?;
        let expected = parsed.hash.context("the PHC string has no hash")?;
        let params = Params::new(
            stored.m_cost(),
            stored.t_cost(),
            stored.p_cost(),
            Some(expected.len()),
        )
        .map_err(|error| anyhow!("{error}"))?;
        let needed = params.block_count();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut output = vec![0u8; expected.len()];
        match self.memory {
            Memory::Reused if needed <= self.blocks.len() => argon2.hash_password_into_with_memory(
                password,
                salt,
                &mut output,
                &mut self.blocks[..needed],
            ),
            _ => argon2.hash_password_into(password, salt, &mut output),
        }
        .map_err(|error| anyhow!("argon2: {error}"))?;
        Ok(output.as_slice() == expected.as_bytes())
    }
}

/// Single-thread Argon2id verifications per second at the default parameters with a reused
/// buffer, measured for `duration` (at least one verification).
pub fn verifies_per_second(duration: Duration) -> anyhow::Result<f64> {
    let params = default_params()?;
    let phc = phc_for("correct horse battery staple", params.clone())?;
    let mut verifier = Verifier::new(Memory::Reused, &params);
    // One untimed verification: page faults of the fresh buffer are not the steady state.
    verifier.verify(b"correct horse battery staple", &phc)?;
    let started = Instant::now();
    let mut count = 0u64;
    while count == 0 || started.elapsed() < duration {
        if !verifier.verify(b"correct horse battery staple", &phc)? {
            bail!("the benchmark hash did not verify");
        }
        count += 1;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_verify_the_right_password_only() {
        let params = Params::new(1024, 1, 1, Some(32)).unwrap();
        let phc = phc_for("right", params.clone()).unwrap();
        for memory in [Memory::Reused, Memory::Fresh] {
            let mut verifier = Verifier::new(memory, &params);
            assert!(verifier.verify(b"right", &phc).unwrap());
            assert!(!verifier.verify(b"wrong", &phc).unwrap());
        }
    }

    #[tokio::test]
    async fn the_servers_hasher_accepts_our_hashes() {
        use twofold_core::hasher::{Argon2Settings, PasswordHasher};
        let params = Params::new(1024, 1, 1, Some(32)).unwrap();
        let phc = phc_for("right", params).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        let settings = Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let hasher = PasswordHasher::start(settings, 1, 1).unwrap();
        let right = secrecy::SecretString::from("right".to_owned());
        assert!(hasher.verify(&right, &phc).await.unwrap().matches);
    }
}
