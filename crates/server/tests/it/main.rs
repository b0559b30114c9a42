//! Integration tests: the real router over HTTP on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod helpers;

mod account_security;
mod admin;
mod api;
mod bodies;
mod bypass;
mod codes;
mod listener;
mod login;
mod messages;
mod metrics;
mod pages;
mod sessions;
mod throttle;
mod totp;
