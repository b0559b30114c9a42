//! Twofold's HTTP face: the JSON API, the server-rendered pages, the session-state gate in front
//! of both, and the delivery of emails and text messages.

pub mod context;
pub mod cookies;
pub mod delivery;
pub mod error;
pub mod gate;
pub mod headers;
pub mod json;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod routes;
pub mod state;

pub use routes::app;
pub use state::{AppState, HttpSettings};
