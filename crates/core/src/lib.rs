//! Twofold's domain: accounts, passwords, sessions and the login state machine, written against
//! the store traits and a clock so that it knows nothing of HTTP, SQL or the wall clock.

pub mod account_password;
pub mod account_sessions;
pub mod accounts;
pub mod admin;
pub mod audit;
pub mod clock;
pub mod codes;
pub mod delivery;
pub mod email;
pub mod email_factor;
pub mod factors;
pub mod hasher;
pub mod login;
pub mod messages;
pub mod metrics;
pub mod notices;
pub mod password;
pub mod phone;
pub mod policy;
pub mod recovery;
pub mod sealing;
mod second_factor_attempts;
pub mod service;
pub mod session;
pub mod sms;
pub mod store;
pub mod throttle;
pub mod two_factor;
pub mod user;

pub use service::{Senders, Service, ServiceSettings};
