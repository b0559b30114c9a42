//! Tests of the `twofold` binary as users run it: the CLI, first start, and durability under
//! SIGKILL, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod admin;
mod audit;
mod backup;
mod cli;
mod codes_delivery;
mod delivery;
mod durability;
mod factors;
mod keys;
mod metrics;
mod process;
mod scale_out;
mod smtp;
