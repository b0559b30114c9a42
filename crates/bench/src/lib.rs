//! Twofold's benchmark tooling, shared by the `twofold-bench` binary (the load runs of
//! `bench/load.sh`) and the criterion micro-benchmarks in `benches/`.
//!
//! - [`argon2_verify`]: Argon2id verification as a hashing worker does it, and the
//!   single-thread rate that bounds password logins.
//! - [`service`]: a `Service` built as `twofold serve` builds it.
//! - [`seed`]: a database of users with authenticators and sessions, ready for the load runs.

pub mod argon2_verify;
pub mod seed;
pub mod service;
