//! The origin of each request (client IP address and user agent), handed to the domain for the
//! audit log. The address is the TCP peer's: behind a reverse proxy that is the proxy, until a
//! trusted proxy header is configured.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use twofold_core::audit::{RequestContext, with_context};

pub async fn request_context(request: Request, next: Next) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical().to_string());
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    with_context(RequestContext { ip, user_agent }, next.run(request)).await
}
