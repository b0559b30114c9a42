//! `/api/v1/admin/audit…`: the audit log for administrators (search, export as JSON lines,
//! chain verification), and the event shape that `/api/v1/account/activity` shares.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use twofold_core::Service;
use twofold_core::accounts::AccountError;
use twofold_core::audit::{EventKind, MAX_AUDIT_PAGE, to_hex};
use twofold_core::store::{AuditFilter, AuditRecord};
use twofold_core::user::UserId;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::routes::query::{QueryParams, instant, invalid_parameter, number, present};
use crate::state::AppState;

/// Entries per page when the query names no limit.
const DEFAULT_PAGE: u32 = 50;
/// Entries read from the database per chunk of the export.
const EXPORT_BATCH: u32 = 500;

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Its place in the chain: 1, 2, 3, … without gaps.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    #[schema(example = "sign_in_failed")]
    pub kind: String,
    #[schema(example = "Failed sign-in")]
    pub description: String,
    /// Who did it (a user id); null for the command line, the system, or someone unknown.
    pub actor: Option<String>,
    /// The actor's current email address.
    pub actor_email: Option<String>,
    /// Whose account it concerns (a user id).
    pub subject: Option<String>,
    pub subject_email: Option<String>,
    #[schema(example = "192.0.2.10")]
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Details of the event (never a secret).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// The hash of the entry before, lowercase hex.
    pub prev_hash: String,
    /// HMAC-SHA256 over this entry and `prev_hash`, lowercase hex.
    pub hash: String,
}

impl From<AuditRecord> for EventView {
    fn from(record: AuditRecord) -> Self {
        let event = record.event;
        let description = EventKind::parse(&event.kind)
            .map_or_else(|| event.kind.clone(), |kind| kind.describe().to_owned());
        // Stored details are always an object; anything else is shown as the text it is.
        let detail = serde_json::from_str(&event.detail)
            .unwrap_or_else(|_| serde_json::Value::String(event.detail.clone()));
        Self {
            seq: record.seq,
            at: event.at,
            kind: event.kind,
            description,
            actor: event.actor.map(|id| id.to_string()),
            actor_email: record.actor_email,
            subject: event.subject.map(|id| id.to_string()),
            subject_email: record.subject_email,
            ip: event.ip,
            user_agent: event.user_agent,
            detail,
            prev_hash: to_hex(&record.prev_hash),
            hash: to_hex(&record.hash),
        }
    }
}

/// The filters of the audit log. Every parameter is optional.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries where this user (an id or an email address) is actor or subject.
    pub user: Option<String>,
    /// Only entries of this kind (`sign_in_succeeded`, `sign_in_failed`, `factor_added`, …).
    pub kind: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only entries before this RFC 3339 time.
    pub until: Option<String>,
    /// Only entries with a smaller `seq` (the next page: the previous answer's `next_before`).
    pub before: Option<String>,
    /// Entries per page, 1 to 500 (default 50).
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<EventView>,
    /// The `before` of the next (older) page; null on the last page.
    pub next_before: Option<u64>,
}

/// Searches the audit log, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an administrator signed in with two factors", body = ErrorBody),
        (status = 422, description = "`invalid_query`: a parameter has a bad value (the message names it)", body = ErrorBody),
    ))]
pub async fn audit_log(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let kind = match present(query.kind.as_deref()) {
        Some(name) => Some(
            EventKind::parse(name)
                .ok_or_else(|| invalid_parameter("kind", "one of the event kinds"))?,
        ),
        None => None,
    };
    let since = instant("since", query.since.as_deref())?;
    let until = instant("until", query.until.as_deref())?;
    let before_seq = number("before", query.before.as_deref(), 1, u64::MAX)?;
    let limit = number("limit", query.limit.as_deref(), 1, MAX_AUDIT_PAGE)?.unwrap_or(DEFAULT_PAGE);
    let user = match present(query.user.as_deref()) {
        Some(text) => match user_named(&state.service, text).await? {
            Some(id) => Some(id),
            // Nobody has that address, so nothing in the log is theirs.
            None => {
                return Ok(Json(AuditPage {
                    events: Vec::new(),
                    next_before: None,
                }));
            }
        },
        None => None,
    };
    let records = state
        .service
        .audit_log(&AuditFilter {
            user,
            kind: kind.map(EventKind::as_str),
            since,
            until,
            before_seq,
            limit,
            subject: None,
        })
        .await?;
    let full = records.len() >= limit as usize;
    let next_before = records.last().filter(|_| full).map(|record| record.seq);
    Ok(Json(AuditPage {
        events: records.into_iter().map(EventView::from).collect(),
        next_before,
    }))
}

/// A user id, or the id of the user with this email address (`None`: no such user).
async fn user_named(service: &Service, text: &str) -> Result<Option<UserId>, ApiError> {
    if let Ok(id) = text.parse::<UserId>() {
        return Ok(Some(id));
    }
    match service.find_user(text).await {
        Ok(user) => Ok(Some(user.id)),
        Err(AccountError::NotFound) => Ok(None),
        Err(AccountError::InvalidEmail(_)) => {
            Err(invalid_parameter("user", "a user id or an email address"))
        }
        Err(other) => Err(other.into()),
    }
}

/// The whole log as JSON lines (`application/x-ndjson`), oldest first in chain order, one
/// entry per line in the shape of the search's events, so that an export can be checked on
/// its own. It is streamed: the log is read in batches as the client takes it.
#[utoipa::path(get, path = "/api/v1/admin/audit/export", tag = "admin",
    responses(
        (status = 200, description = "One JSON object per line (`EventView`), oldest first", content_type = "application/x-ndjson", body = String),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ))]
pub async fn export(State(state): State<AppState>) -> Result<Response, ApiError> {
    // The first batch is read before answering, so that a broken database is a plain 500.
    let first = state.service.audit_batch(0, EXPORT_BATCH).await?;
    let (sender, receiver) = mpsc::channel(2);
    tokio::spawn(produce_lines(state.service.clone(), first, sender));
    let mut response = Body::new(LinesBody { receiver }).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"twofold-audit.jsonl\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

type Chunk = Result<Bytes, std::io::Error>;

/// Sends the log batch by batch until its end, the client leaves, or reading fails (then the
/// response is aborted, so a client never mistakes a cut-off export for a whole one).
async fn produce_lines(service: Service, first: Vec<AuditRecord>, sender: mpsc::Sender<Chunk>) {
    let mut batch = first;
    loop {
        let Some(last_seq) = batch.last().map(|record| record.seq) else {
            return;
        };
        let complete = batch.len() < EXPORT_BATCH as usize;
        let chunk = match lines(batch) {
            Ok(chunk) => Ok(chunk),
            Err(error) => {
                tracing::error!(error = %error, "audit export: encoding an entry failed");
                Err(std::io::Error::other("the export failed"))
            }
        };
        let failed = chunk.is_err();
        if sender.send(chunk).await.is_err() || failed || complete {
            return;
        }
        batch = match service.audit_batch(last_seq, EXPORT_BATCH).await {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(error = %error, "audit export: reading the log failed");
                // The client may have left meanwhile; then there is no one to tell.
                if sender
                    .send(Err(std::io::Error::other("the export failed")))
                    .await
                    .is_err()
                {
                    tracing::debug!("audit export: the client left");
                }
                return;
            }
        };
    }
}

fn lines(batch: Vec<AuditRecord>) -> serde_json::Result<Bytes> {
    let mut buffer = Vec::with_capacity(batch.len() * 512);
    for record in batch {
        serde_json::to_writer(&mut buffer, &EventView::from(record))?;
        buffer.push(b'\n');
    }
    Ok(Bytes::from(buffer))
}

/// A response body fed through a channel: the producer waits while the client is slow, so at
/// most a couple of batches are held in memory.
struct LinesBody {
    receiver: mpsc::Receiver<Chunk>,
}

impl hyper::body::Body for LinesBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.receiver
            .poll_recv(context)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether every entry is intact and in place.
    pub ok: bool,
    /// How many entries were checked (up to the first problem).
    pub checked: u64,
    /// What is wrong, for a person; null when `ok`.
    pub problem: Option<String>,
    /// Where the chain starts after retention removed older entries; null if none were.
    pub anchor_seq: Option<u64>,
}

/// Checks the chain of the whole log: a changed, removed or inserted entry is reported.
#[utoipa::path(get, path = "/api/v1/admin/audit/verify", tag = "admin",
    responses(
        (status = 200, body = VerifyResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ))]
pub async fn verify(State(state): State<AppState>) -> Result<Json<VerifyResponse>, ApiError> {
    let report = state.service.verify_audit_chain().await?;
    Ok(Json(VerifyResponse {
        ok: report.broken.is_none(),
        checked: report.checked,
        problem: report.broken.map(|broken| broken.to_string()),
        anchor_seq: report.anchor.map(|anchor| anchor.seq),
    }))
}
