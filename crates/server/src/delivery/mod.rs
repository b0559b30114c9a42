//! Delivery of emails and text messages. The outbox (files in the data directory) is the
//! embedded default for both; SMTP and the SMS gateway plug in behind the same traits.

pub mod outbox;
