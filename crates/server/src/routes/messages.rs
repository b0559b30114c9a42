//! `/api/v1/messages…`: secure messages (seed 000). Sending needs a full session; reading
//! needs the recipient's full session with a second factor enabled (403
//! `two_factor_required` otherwise) and is a 404 to anyone else; an expired or deleted message
//! is a 410. Attachments arrive as multipart uploads marked `X-Twofold-Request: 1`, streamed
//! to the store in sealed chunks, and leave as a stream.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Multipart, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use twofold_core::messages::{
    AttachmentDownload, AttachmentInfo, Direction, MessageDraft, MessageError, MessageSummary,
    OpenedMessage,
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};
use crate::gate::{CurrentSession, MaybeSession};
use crate::json::JsonBody;
use crate::routes::login::{EmptyBody, LoginStateResponse};
use crate::state::AppState;

/// One address or a list of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Recipients {
    One(String),
    Many(Vec<String>),
}

impl Recipients {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Recipients::One(one) => vec![one],
            Recipients::Many(many) => many,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessageRequest {
    /// The recipient's address, or a list of up to 20 (each gets a message of their own). An
    /// address without an account is invited.
    #[schema(example = "bob@example.com")]
    pub to: Recipients,
    /// One line, at most 200 characters; it appears in the notification email.
    pub subject: String,
    /// At most 50,000 bytes; never sent by email.
    pub body: String,
    /// 1 to 90 (default 7). The content is erased when it runs out.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// Erase the message 15 minutes after the recipient first opens it.
    #[serde(default)]
    pub delete_after_read: bool,
    /// Keep it as a draft: attachments can be added, then `POST /api/v1/messages/{id}/send`.
    #[serde(default)]
    pub draft: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedMessage {
    pub id: String,
    pub to: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedMessagesResponse {
    /// The message of the first recipient.
    pub id: String,
    /// One message per recipient, in the order given.
    pub messages: Vec<CreatedMessage>,
}

/// Writes a message; unless a draft, each recipient is emailed a link to it (never the body).
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = NewMessageRequest,
    responses(
        (status = 201, description = "Stored (and sent unless a draft)", body = CreatedMessagesResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_email`, `invalid_message` or `invalid_body`", body = ErrorBody),
        (status = 429, description = "`too_many_messages`: 100 recipients per hour per sender", body = ErrorBody),
    ))]
pub async fn send(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    JsonBody(request): JsonBody<NewMessageRequest>,
) -> Result<Response, ApiError> {
    let to = request.to.into_vec();
    let sent = state
        .service
        .send_messages(
            &session.user,
            MessageDraft {
                to: &to,
                subject: &request.subject,
                body: &request.body,
                expires_in_days: request.expires_in_days,
                delete_after_read: request.delete_after_read,
                send: !request.draft,
            },
        )
        .await?;
    let messages: Vec<CreatedMessage> = sent
        .into_iter()
        .map(|message| CreatedMessage {
            id: message.id.to_string(),
            to: message.recipient.to_string(),
        })
        .collect();
    let id = messages
        .first()
        .map(|message| message.id.clone())
        .ok_or_else(|| ApiError::internal(&"a send made no message"))?;
    let mut response = (
        StatusCode::CREATED,
        Json(CreatedMessagesResponse {
            id: id.clone(),
            messages,
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/messages/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Sends a draft.
#[utoipa::path(post, path = "/api/v1/messages/{id}/send", tag = "messages", request_body = EmptyBody,
    params(("id" = String, Path, description = "The message")),
    responses(
        (status = 204, description = "Sent: the recipient is emailed a link"),
        (status = 404, description = "`not_found`: no such draft of yours", body = ErrorBody),
        (status = 409, description = "`already_sent`", body = ErrorBody),
        (status = 410, description = "`message_expired` or `message_deleted`", body = ErrorBody),
    ))]
pub async fn send_draft(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    MessagePath(id): MessagePath,
    JsonBody(EmptyBody {}): JsonBody<EmptyBody>,
) -> Result<StatusCode, ApiError> {
    state.service.send_draft(&session.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct MessageListItem {
    pub id: String,
    /// `received` or `sent`.
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    /// Null once the message is erased.
    pub subject: Option<String>,
    /// `draft`, `sent`, `read`, `expired` or `deleted`.
    pub status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// The read receipt: when the recipient first opened it.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<OffsetDateTime>,
}

impl From<MessageSummary> for MessageListItem {
    fn from(summary: MessageSummary) -> Self {
        Self {
            id: summary.id.to_string(),
            direction: match summary.direction {
                Direction::Received => "received",
                Direction::Sent => "sent",
            },
            from: summary.from,
            to: summary.to,
            subject: summary.subject,
            status: summary.status.as_str(),
            created_at: summary.created_at,
            sent_at: summary.sent_at,
            expires_at: summary.expires_at,
            read_at: summary.read_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageListResponse {
    /// Received and sent messages, newest first (never a body).
    pub messages: Vec<MessageListItem>,
}

/// The messages the session's user received and sent.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages",
    responses(
        (status = 200, body = MessageListResponse),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
) -> Result<Json<MessageListResponse>, ApiError> {
    let messages = state.service.list_messages(&session.user).await?;
    Ok(Json(MessageListResponse {
        messages: messages.into_iter().map(MessageListItem::from).collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: String,
    pub name: String,
    pub size: u64,
}

impl From<AttachmentInfo> for AttachmentView {
    fn from(info: AttachmentInfo) -> Self {
        Self {
            id: info.id.to_string(),
            name: info.name,
            size: info.size,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub from: String,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<AttachmentView>,
    /// When the content will be erased.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
    pub delete_after_read: bool,
}

impl From<OpenedMessage> for MessageView {
    fn from(message: OpenedMessage) -> Self {
        Self {
            id: message.id.to_string(),
            from: message.from,
            subject: message.subject,
            body: message.body.to_string(),
            attachments: message
                .attachments
                .into_iter()
                .map(AttachmentView::from)
                .collect(),
            expires_at: message.expires_at,
            sent_at: message.sent_at,
            delete_after_read: message.delete_after_read,
        }
    }
}

/// Opens a message: only its recipient, with a second factor enabled.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The message")),
    responses(
        (status = 200, body = MessageView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`two_factor_required`: the recipient must set up a second factor first", body = ErrorBody),
        (status = 404, description = "`not_found`: no such message, or not sent to you", body = ErrorBody),
        (status = 410, description = "`message_expired` or `message_deleted`: the content is erased", body = ErrorBody),
    ))]
pub async fn read(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    MessagePath(id): MessagePath,
) -> Result<Json<MessageView>, ApiError> {
    let message = state.service.read_message(&session.user, id).await?;
    Ok(Json(message.into()))
}

/// Deletes a message (its sender or recipient): the content is erased for both.
#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "messages", request_body = EmptyBody,
    params(("id" = String, Path, description = "The message")),
    responses(
        (status = 204, description = "Deleted; the content is erased"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 410, description = "`message_expired` or `message_deleted`", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    MessagePath(id): MessagePath,
    JsonBody(EmptyBody {}): JsonBody<EmptyBody>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_message(&session.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct UploadResponse {
    /// The first file's attachment.
    pub id: String,
    pub name: String,
    pub size: u64,
    /// Every file of the upload.
    pub attachments: Vec<AttachmentView>,
}

/// Adds attachments (every file part of a `multipart/form-data` body) to a message of yours,
/// before or after sending it. Needs `X-Twofold-Request: 1`.
#[utoipa::path(post, path = "/api/v1/messages/{id}/attachments", tag = "messages",
    params(("id" = String, Path, description = "The message")),
    request_body(content_type = "multipart/form-data", description = "One or more file parts"),
    responses(
        (status = 201, body = UploadResponse),
        (status = 400, description = "`invalid_upload`: not a readable multipart body, or no file in it", body = ErrorBody),
        (status = 404, description = "`not_found`: no such message of yours", body = ErrorBody),
        (status = 409, description = "`too_many_attachments`", body = ErrorBody),
        (status = 410, description = "`message_expired` or `message_deleted`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a file is larger than the configured limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not multipart with `X-Twofold-Request: 1`", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    MessagePath(id): MessagePath,
    headers: axum::http::HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    // The JSON rule of the API lets JSON through; this call takes files only.
    let multipart_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("multipart/form-data"));
    if !multipart_body {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send files as multipart/form-data with the header X-Twofold-Request: 1",
        ));
    }
    let mut multipart = multipart.map_err(|rejection| invalid_upload(&rejection.body_text()))?;
    let stored = receive_files(&state, &session.user, id, &mut multipart).await?;
    let Some(first) = stored.first() else {
        return Err(invalid_upload("the body holds no file"));
    };
    let body = UploadResponse {
        id: first.id.to_string(),
        name: first.name.clone(),
        size: first.size,
        attachments: stored.into_iter().map(AttachmentView::from).collect(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Streams every file part of `multipart` into attachments of message `id`. Also used by the
/// compose page.
pub async fn receive_files(
    state: &AppState,
    sender: &twofold_core::user::User,
    id: Uuid,
    multipart: &mut Multipart,
) -> Result<Vec<AttachmentInfo>, ApiError> {
    let mut stored = Vec::new();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|error| multipart_error(&error))?
    {
        let Some(name) = field.file_name().map(str::to_owned) else {
            continue;
        };
        // A browser sends an empty part when no file was chosen.
        if name.is_empty() {
            continue;
        }
        let mut upload = state.service.start_attachment(sender, id, &name).await?;
        loop {
            match field.chunk().await {
                Ok(Some(bytes)) => upload.push(&bytes).await?,
                Ok(None) => break,
                Err(error) => {
                    upload.abort().await;
                    return Err(multipart_error(&error));
                }
            }
        }
        stored.push(upload.finish().await?);
    }
    Ok(stored)
}

fn invalid_upload(reason: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_upload", reason.to_owned())
}

fn multipart_error(error: &axum::extract::multipart::MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return crate::json::payload_too_large();
    }
    invalid_upload(&error.body_text())
}

/// Downloads an attachment: only the message's recipient, with a second factor enabled.
#[utoipa::path(get, path = "/api/v1/messages/{id}/attachments/{aid}", tag = "messages",
    params(("id" = String, Path, description = "The message"), ("aid" = String, Path, description = "The attachment")),
    responses(
        (status = 200, description = "The file, as `application/octet-stream` with its name in `Content-Disposition`", content_type = "application/octet-stream"),
        (status = 403, description = "`two_factor_required`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 410, description = "`message_expired` or `message_deleted`", body = ErrorBody),
    ))]
pub async fn download(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    Path((id, aid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (Ok(id), Ok(aid)) = (id.parse::<Uuid>(), aid.parse::<Uuid>()) else {
        return Err(ApiError::not_found());
    };
    let download = state
        .service
        .open_attachment(&session.user, id, aid)
        .await?;
    Ok(file_response(download))
}

/// The file as a streamed response. It is never shown inline: any type is sent as bytes to
/// save, so an uploaded page cannot run in this origin.
pub fn file_response(download: AttachmentDownload) -> Response {
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        ascii_name(&download.name),
        utf8_percent_encode(&download.name, NON_ALPHANUMERIC)
    );
    let size = download.size;
    let stream = futures_util::stream::unfold(download, |mut download| async move {
        match download.next_chunk().await {
            Ok(Some(chunk)) => Some((
                Ok::<_, MessageError>(axum::body::Bytes::from(chunk.to_vec())),
                download,
            )),
            Ok(None) => None,
            Err(error) => {
                tracing::error!(error = %error, "an attachment download failed part-way");
                Some((Err(error), download))
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The name for clients that do not read `filename*`: ASCII letters, digits and `._-` kept,
/// the rest as `_`.
fn ascii_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The `invitation` parameter of the link in the email.
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationStateResponse {
    #[serde(flatten)]
    pub step: LoginStateResponse,
    /// The message the invitation is for.
    pub message_id: String,
}

/// Uses an invitation link (once): starts a session at choosing a password
/// (`password_change_required`), or at `enrollment_required` when the message carries the
/// temporary password. The message can be read once the session is `authenticated` with a
/// second factor.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "messages", request_body = AcceptInvitationRequest,
    responses(
        (status = 200, description = "A session in its first state; the cookie is set", body = InvitationStateResponse),
        (status = 404, description = "`invitation_invalid`: used, expired, or never valid", body = ErrorBody),
    ))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    MaybeSession(previous): MaybeSession,
    JsonBody(request): JsonBody<AcceptInvitationRequest>,
) -> Result<Response, ApiError> {
    let (step, message_id) = state.service.accept_invitation(&request.token).await?;
    // The link's session replaces whatever session this client held.
    if let Some(previous) = previous {
        state.service.logout(&previous.id_hash).await?;
    }
    let cookie = state.cookies.session_cookie(step.token.expose());
    let body = InvitationStateResponse {
        step: LoginStateResponse {
            state: step.state,
            methods: step.methods,
        },
        message_id: message_id.to_string(),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Refuses HEAD (which axum answers by running the GET handler) on the routes whose GET opens
/// a message: a link checker's HEAD must not count as the first reading, send the receipt or
/// start a "delete after reading" clock.
pub async fn refuse_head(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == axum::http::Method::HEAD {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed here",
        )
        .into_response();
    }
    next.run(request).await
}

/// The message named by the path's `{id}`: a malformed id names none, so it is a 404.
#[derive(Debug, Clone, Copy)]
pub struct MessagePath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for MessagePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        id.parse()
            .map(MessagePath)
            .map_err(|_| ApiError::not_found())
    }
}
