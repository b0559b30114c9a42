//! Argon2id password hashing on a bounded pool of worker threads.
//!
//! Hashing is deliberately slow (~15 ms and 19 MiB each), so it never runs on the async runtime:
//! each worker thread owns one preallocated memory buffer and reuses it for every hash, which
//! keeps resident memory at `workers × m_cost` instead of letting the allocator hoard freed
//! buffers. The queue in front of the workers is bounded; when it is full the caller gets
//! [`HashError::Overloaded`] at once (the server answers 503) instead of queueing without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use password_hash::PasswordHash;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

/// Argon2id cost parameters. The defaults are OWASP's recommended minimum for Argon2id
/// (m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Settings {
    fn params(&self) -> Result<Params, HashError> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(OUTPUT_BYTES),
        )
        .map_err(|error| HashError::Unexpected(format!("invalid Argon2 settings: {error}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is busy and the queue is full: shed the request.
    #[error("password hashing is overloaded")]
    Overloaded,
    #[error("password hashing failed: {0}")]
    Unexpected(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash uses weaker parameters than the configured ones; rehash it now that the
    /// password is known.
    pub needs_rehash: bool,
}

enum Job {
    Hash {
        password: SecretString,
        reply: oneshot::Sender<Result<String, HashError>>,
    },
    Verify {
        password: SecretString,
        phc: String,
        reply: oneshot::Sender<Result<Verification, HashError>>,
    },
}

/// A handle to the hashing pool; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: crossbeam_channel::Sender<Job>,
    settings: Argon2Settings,
    dummy_hash: std::sync::Arc<str>,
    /// Threads started, and how many of them are hashing right now (for the metrics).
    workers: usize,
    busy: Arc<AtomicUsize>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Starts `workers` hashing threads behind a queue of `queue_capacity` waiting jobs.
    pub fn start(
        settings: Argon2Settings,
        workers: usize,
        queue_capacity: usize,
    ) -> Result<Self, HashError> {
        let params = settings.params()?;
        let (jobs, receiver) = crossbeam_channel::bounded::<Job>(queue_capacity.max(1));
        let busy = Arc::new(AtomicUsize::new(0));
        let workers = workers.max(1);
        for index in 0..workers {
            let receiver = receiver.clone();
            let busy = Arc::clone(&busy);
            let mut worker = Worker::new(params.clone(), settings);
            thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    while let Ok(job) = receiver.recv() {
                        busy.fetch_add(1, Ordering::Relaxed);
                        worker.run(job);
                        busy.fetch_sub(1, Ordering::Relaxed);
                    }
                })
                .map_err(|error| {
                    HashError::Unexpected(format!("cannot start hashing thread: {error}"))
                })?;
        }
        // The dummy hash is what unknown accounts are checked against, so that a login for an
        // address that has no account costs the same time as one that has.
        let mut seed = [0u8; 32];
        fill_random(&mut seed)?;
        let dummy_password = SecretString::from(STANDARD_NO_PAD.encode(seed));
        let dummy_hash = Worker::new(params, settings).hash(&dummy_password)?;
        Ok(Self {
            jobs,
            settings,
            dummy_hash: dummy_hash.into(),
            workers,
            busy,
        })
    }

    pub fn settings(&self) -> Argon2Settings {
        self.settings
    }

    /// Jobs waiting for a free worker (the queue that sheds when full).
    pub fn queue_depth(&self) -> usize {
        self.jobs.len()
    }

    /// Workers hashing right now, of [`PasswordHasher::workers`].
    pub fn busy_workers(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// The number of hashing threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    #[tracing::instrument(skip_all)]
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash {
            password: password.clone(),
            reply,
        })?;
        answer
            .await
            .map_err(|_| HashError::Unexpected("hashing worker stopped".into()))?
    }

    /// Checks a password against a stored PHC string in constant time.
    #[tracing::instrument(skip_all)]
    pub async fn verify(
        &self,
        password: &SecretString,
        phc: &str,
    ) -> Result<Verification, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify {
            password: password.clone(),
            phc: phc.to_owned(),
            reply,
        })?;
        answer
            .await
            .map_err(|_| HashError::Unexpected("hashing worker stopped".into()))?
    }

    /// Spends the time of one verification for an account that does not exist.
    #[tracing::instrument(skip_all)]
    pub async fn verify_dummy(&self, password: &SecretString) -> Result<(), HashError> {
        let dummy = self.dummy_hash.clone();
        self.verify(password, &dummy).await.map(|_| ())
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs.try_send(job).map_err(|error| match error {
            crossbeam_channel::TrySendError::Full(_) => HashError::Overloaded,
            crossbeam_channel::TrySendError::Disconnected(_) => {
                HashError::Unexpected("hashing workers stopped".into())
            }
        })
    }
}

struct Worker {
    params: Params,
    settings: Argon2Settings,
    memory: Vec<Block>,
}

impl Worker {
    fn new(params: Params, settings: Argon2Settings) -> Self {
        let memory = vec![Block::default(); params.block_count()];
        Self {
            params,
            settings,
            memory,
        }
    }

    fn run(&mut self, job: Job) {
        // A caller that went away no longer wants the answer; dropping it is correct.
        match job {
            Job::Hash { password, reply } => {
                let _ = reply.send(self.hash(&password));
            }
            Job::Verify {
                password,
                phc,
                reply,
            } => {
                let _ = reply.send(self.verify(&password, &phc));
            }
        }
    }

    fn hash(&mut self, password: &SecretString) -> Result<String, HashError> {
        let mut salt = [0u8; SALT_BYTES];
        fill_random(&mut salt)?;
        let mut output = Zeroizing::new([0u8; OUTPUT_BYTES]);
        let params = self.params.clone();
        self.compute(&params, password, &salt, output.as_mut())?;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(output.as_ref()),
        ))
    }

    fn verify(&mut self, password: &SecretString, phc: &str) -> Result<Verification, HashError> {
        let parsed = PasswordHash::new(phc).map_err(|error| unexpected_stored(&error))?;
        let algorithm =
            Algorithm::try_from(parsed.algorithm).map_err(|error| unexpected_stored(&error))?;
        if algorithm != Algorithm::Argon2id {
            return Err(HashError::Unexpected(
                "stored password hash is not Argon2id".into(),
            ));
        }
        let version = match parsed.version {
            Some(number) => Version::try_from(number).map_err(|error| unexpected_stored(&error))?,
            None => Version::V0x10,
        };
        let params = Params::try_from(&parsed).map_err(|error| unexpected_stored(&error))?;
        let salt = parsed
            .salt
            .ok_or_else(|| HashError::Unexpected("stored password hash has no salt".into()))?;
        let mut salt_buffer = [0u8; 64];
        let salt = salt
            .decode_b64(&mut salt_buffer)
            .map_err(|error| unexpected_stored(&error))?;
        let expected = parsed
            .hash
            .ok_or_else(|| HashError::Unexpected("stored password hash has no output".into()))?;
        let mut output = Zeroizing::new(vec![0u8; expected.len()]);
        let params = Params::new(
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            Some(expected.len()),
        )
        .map_err(|error| unexpected_stored(&error))?;
        if version == Version::V0x13 {
            self.compute(&params, password, salt, &mut output)?;
        } else {
            Argon2::new(algorithm, version, params.clone())
                .hash_password_into(password.expose_secret().as_bytes(), salt, &mut output)
                .map_err(|error| unexpected_stored(&error))?;
        }
        let matches: bool = output.as_slice().ct_eq(expected.as_bytes()).into();
        let needs_rehash = version != Version::V0x13
            || params.m_cost() < self.settings.memory_kib
            || params.t_cost() < self.settings.iterations
            || params.p_cost() != self.settings.parallelism;
        Ok(Verification {
            matches,
            needs_rehash,
        })
    }

    /// Runs Argon2id v1.3 into `output`, reusing the worker's buffer when it is large enough.
    fn compute(
        &mut self,
        params: &Params,
        password: &SecretString,
        salt: &[u8],
        output: &mut [u8],
    ) -> Result<(), HashError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let needed = params.block_count();
        let result = if needed <= self.memory.len() {
            argon2.hash_password_into_with_memory(
                password.expose_secret().as_bytes(),
                salt,
                output,
                &mut self.memory[..needed],
            )
        } else {
            argon2.hash_password_into(password.expose_secret().as_bytes(), salt, output)
        };
        result.map_err(|error| HashError::Unexpected(format!("argon2: {error}")))
    }
}

fn unexpected_stored(error: &dyn std::fmt::Display) -> HashError {
    HashError::Unexpected(format!("stored password hash is malformed: {error}"))
}

fn fill_random(buffer: &mut [u8]) -> Result<(), HashError> {
    getrandom::fill(buffer)
        .map_err(|error| HashError::Unexpected(format!("OS random generator: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use password_hash::PasswordVerifier;

    // Cheap parameters keep the unit tests fast; the production defaults are tested in one place.
    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 1024,
            iterations: 2,
            parallelism: 1,
        }
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::start(cheap(), 1, 4).unwrap();
        let phc = hasher.hash(&secret("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=2,p=1$"));
        let right = hasher.verify(&secret("correct horse"), &phc).await.unwrap();
        assert_eq!(
            right,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = hasher.verify(&secret("correct horsf"), &phc).await.unwrap();
        assert!(!wrong.matches);
    }

    #[tokio::test]
    async fn our_strings_are_standard_phc_that_the_argon2_crate_accepts() {
        let hasher = PasswordHasher::start(cheap(), 1, 4).unwrap();
        let phc = hasher.hash(&secret("interoperable")).await.unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"interoperable", &parsed)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn hashes_from_the_argon2_crate_verify_and_weaker_ones_ask_for_a_rehash() {
        use password_hash::{PasswordHasher as _, SaltString};
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(512, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = weak
            .hash_password(b"legacy password", &salt)
            .unwrap()
            .to_string();
        let hasher = PasswordHasher::start(cheap(), 1, 4).unwrap();
        let verification = hasher
            .verify(&secret("legacy password"), &phc)
            .await
            .unwrap();
        assert_eq!(
            verification,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn malformed_stored_hash_is_an_error_not_a_match() {
        let hasher = PasswordHasher::start(cheap(), 1, 4).unwrap();
        assert!(
            hasher
                .verify(&secret("x"), "$argon2id$garbage")
                .await
                .is_err()
        );
        assert!(
            hasher
                .verify(&secret("x"), "$pbkdf2$v=1$x$y")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn dummy_verification_succeeds_without_matching_anything() {
        let hasher = PasswordHasher::start(cheap(), 1, 4).unwrap();
        hasher.verify_dummy(&secret("whatever")).await.unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_sheds_instead_of_waiting() {
        // One worker, a queue of one: flooding it must produce Overloaded for some callers.
        let hasher = PasswordHasher::start(
            Argon2Settings {
                memory_kib: 8192,
                iterations: 3,
                parallelism: 1,
            },
            1,
            1,
        )
        .unwrap();
        let attempts: Vec<_> = (0..16)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&secret("flood")).await })
            })
            .collect();
        let mut overloaded = 0;
        for attempt in attempts {
            if matches!(attempt.await.unwrap(), Err(HashError::Overloaded)) {
                overloaded += 1;
            }
        }
        assert!(overloaded > 0);
    }

    #[tokio::test]
    async fn the_pool_tells_its_size_its_queue_and_its_busy_workers() {
        let hasher = PasswordHasher::start(cheap(), 3, 4).unwrap();
        assert_eq!((hasher.workers(), hasher.queue_depth()), (3, 0));
        let slow = Argon2Settings {
            memory_kib: 8192,
            iterations: 3,
            parallelism: 1,
        };
        let busy = PasswordHasher::start(slow, 1, 8).unwrap();
        let jobs: Vec<_> = (0..4)
            .map(|_| {
                let busy = busy.clone();
                tokio::spawn(async move { busy.hash(&secret("queued")).await })
            })
            .collect();
        let mut seen_busy = false;
        while !jobs.iter().all(|job| job.is_finished()) {
            seen_busy |= busy.busy_workers() == 1 && busy.queue_depth() > 0;
            tokio::task::yield_now().await;
        }
        assert!(seen_busy, "one worker at work while others wait");
        for _ in 0..100 {
            if busy.busy_workers() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!((busy.busy_workers(), busy.queue_depth()), (0, 0));
    }

    #[test]
    fn defaults_meet_owasp_minimum() {
        let defaults = Argon2Settings::default();
        assert!(
            defaults.memory_kib >= 19_456 && defaults.iterations >= 2 && defaults.parallelism == 1
        );
    }
}
