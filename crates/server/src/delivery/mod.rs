//! Delivery of emails and text messages. The outbox (files in the data directory) is the
//! embedded default for both. When SMTP (`TWOFOLD_SMTP_URL`) or an SMS gateway
//! (`TWOFOLD_SMS_URL`) is configured, messages of that channel go through the durable queue
//! instead: [`queue::DeliveryQueue`] seals and stores them, and [`worker::DeliveryWorker`]
//! hands them to the [`smtp`] or [`sms_gateway`] transport, with retries and backoff.

pub mod html;
pub mod outbox;
pub mod payload;
pub mod queue;
pub mod sms_gateway;
pub mod smtp;
pub mod transport;
pub mod worker;

#[cfg(test)]
mod tests;
