//! The secure-message pages (seed 000): the inbox and the sent list (`/messages`), writing a
//! message with attachments (`compose`), reading one and downloading its files (only its
//! recipient, signed in with a second factor), deleting one, and the landing page of an
//! invitation link (`invitation`).
//!
//! A browser that asks for a message before it may read it (not signed in, halfway through
//! signing in, or without a second factor yet) is sent to its step with the message's address
//! remembered in the return cookie (`cookies::is_return_path`: only `/messages/<uuid>`); the
//! account page, where every finished sign-in and enrollment lands, sends it back there.

mod compose;
mod invitation;

pub use compose::{compose_page, compose_submit};
pub use invitation::accept_invitation;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use twofold_core::login::ActiveSession;
use twofold_core::messages::{
    Direction, MessageError, MessageStatus, MessageSummary, OpenedMessage, READ_GRACE,
};
use twofold_core::session::SessionState;
use twofold_core::store::ErasedReason;
use uuid::Uuid;

use super::account::utc_minute;
use super::admin::query_value;
use super::login::CsrfOnlyForm;
use super::{Csrf, MessagePage, PageForm, render, with_retry_after};
use crate::error::ApiError;
use crate::gate::{CurrentSession, MaybeSession, page_for};
use crate::routes::messages::file_response;
use crate::state::AppState;

/// What an erased subject shows.
const ERASED: &str = "—";

/// `/messages/{id}`.
pub fn message_path(id: Uuid) -> String {
    format!("/messages/{id}")
}

/// Adds the return cookie for message `id` to a response.
fn remember(mut response: Response, state: &AppState, id: Uuid) -> Response {
    if let Some(cookie) = state.cookies.return_cookie(&message_path(id)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A size as people read it: bytes, KiB or MiB.
pub fn size_text(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    let (unit, name) = match bytes {
        0..KIB => {
            return if bytes == 1 {
                "1 byte".to_owned()
            } else {
                format!("{bytes} bytes")
            };
        }
        KIB..MIB => (KIB, "KiB"),
        _ => (MIB, "MiB"),
    };
    let tenths = (bytes * 10 + unit / 2) / unit;
    if tenths.is_multiple_of(10) {
        format!("{} {name}", tenths / 10)
    } else {
        format!("{}.{} {name}", tenths / 10, tenths % 10)
    }
}

fn not_found_page() -> Response {
    let page = MessagePage {
        title: "Message not found",
        message: "There is no such message for you. It may have been sent to another address.",
        link_href: "/messages",
        link_text: "Your messages",
    };
    render(StatusCode::NOT_FOUND, &page)
}

fn gone_page(reason: ErasedReason) -> Response {
    let title = match reason {
        ErasedReason::Expired => "This message has expired",
        ErasedReason::Deleted => "This message was deleted",
    };
    let page = MessagePage {
        title,
        message: "Its content is erased and cannot be shown again. Ask the sender to send it again if you still need it.",
        link_href: "/messages",
        link_text: "Your messages",
    };
    render(StatusCode::GONE, &page)
}

/// The 403 page of a recipient without a second factor (the caller remembers the return path,
/// so that enrolling leads back to the message).
fn two_factor_page() -> Response {
    let page = MessagePage {
        title: "Set up two-factor authentication to read this message",
        message: "Secure messages are shown only to people who sign in with a second factor: an authenticator app or codes by text message (the link came by email, so email codes alone are not enough). Set one up; then you come back to this message.",
        link_href: "/account/two-factor",
        link_text: "Set up two-factor authentication",
    };
    render(StatusCode::FORBIDDEN, &page)
}

fn busy_page() -> Response {
    let page = MessagePage {
        title: "The server is busy",
        message: "Go back and try again in a few seconds.",
        link_href: "/messages",
        link_text: "Your messages",
    };
    with_retry_after(
        render(StatusCode::SERVICE_UNAVAILABLE, &page),
        time::Duration::seconds(2),
    )
}

/// The words for the send limit: how long to wait.
fn send_wait_message(retry_after: time::Duration) -> String {
    let minutes = (retry_after.whole_seconds().max(1) + 59) / 60;
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!(
        "You have sent too many messages in the last hour. Wait {minutes} {unit}, then try again."
    )
}

/// The page for a message failure the page at hand does not answer itself; an unexpected
/// failure stays a logged 500.
fn message_failure(error: MessageError) -> Result<Response, ApiError> {
    match error {
        MessageError::NotFound => Ok(not_found_page()),
        MessageError::Gone(reason) => Ok(gone_page(reason)),
        MessageError::TwoFactorRequired => Ok(two_factor_page()),
        MessageError::InvitationInvalid => Ok(invitation::invalid_link_page()),
        MessageError::Overloaded => Ok(busy_page()),
        MessageError::Throttled { retry_after } => {
            let message = send_wait_message(retry_after);
            let page = MessagePage {
                title: "Wait a moment",
                message: &message,
                link_href: "/messages",
                link_text: "Your messages",
            };
            Ok(with_retry_after(
                render(StatusCode::TOO_MANY_REQUESTS, &page),
                retry_after,
            ))
        }
        other => Err(other.into()),
    }
}

/// Whether the top bar links to the administration.
async fn administration(state: &AppState, session: &ActiveSession) -> Result<bool, ApiError> {
    Ok(state.service.may_administer(session).await?)
}

/// One row of the inbox or the sent list.
struct MessageRow {
    /// The read page, while the message can be read (received ones only).
    href: Option<String>,
    /// The delete page, while there is content to erase.
    delete_href: Option<String>,
    /// From (inbox) or to (sent list).
    who: String,
    subject: String,
    status: &'static str,
    sent: String,
    /// "Read …" or "Not read yet" (sent list).
    receipt: String,
    expires: String,
}

impl MessageRow {
    fn of(summary: MessageSummary) -> Self {
        let live = !matches!(
            summary.status,
            MessageStatus::Expired | MessageStatus::Deleted
        );
        let received = summary.direction == Direction::Received;
        let receipt = match (summary.read_at, summary.status) {
            (Some(at), _) => format!("Read {}", utc_minute(at)),
            (None, MessageStatus::Sent) => "Not read yet".to_owned(),
            (None, _) => ERASED.to_owned(),
        };
        Self {
            href: (received && live).then(|| message_path(summary.id)),
            delete_href: live.then(|| format!("/messages/{}/delete", summary.id)),
            who: if received { summary.from } else { summary.to },
            subject: summary.subject.unwrap_or_else(|| ERASED.to_owned()),
            status: summary.status.as_str(),
            sent: summary
                .sent_at
                .map_or_else(|| ERASED.to_owned(), utc_minute),
            receipt,
            expires: if live {
                utc_minute(summary.expires_at)
            } else {
                ERASED.to_owned()
            },
        }
    }
}

#[derive(Template)]
#[template(path = "messages_list.html")]
struct ListPage<'a> {
    title: &'a str,
    csrf: &'a str,
    signed_in: bool,
    administration: bool,
    notice: Option<&'static str>,
    received: Vec<MessageRow>,
    sent: Vec<MessageRow>,
}

/// The notice for `?done=…`, from a fixed list.
fn notice_of(query: Option<&str>) -> Option<&'static str> {
    match query_value(query, "done")?.as_str() {
        "sent" => Some(
            "Your message is sent. Each recipient is emailed a link to it; the message itself never travels by email.",
        ),
        "deleted" => Some("The message is deleted. Its content is erased for everyone."),
        _ => None,
    }
}

/// `GET /messages`: the messages received and sent.
pub async fn list_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let messages = state.service.list_messages(&session.user).await?;
    let (received, sent): (Vec<_>, Vec<_>) = messages
        .into_iter()
        // A draft deleted unsent (a refused form's) was never a message.
        .filter(|summary| summary.sent_at.is_some() || summary.status != MessageStatus::Deleted)
        .partition(|summary| summary.direction == Direction::Received);
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = ListPage {
        title: "Secure messages",
        csrf: &csrf.token,
        signed_in: true,
        administration: administration(&state, &session).await?,
        notice: notice_of(query.as_deref()),
        received: received.into_iter().map(MessageRow::of).collect(),
        sent: sent.into_iter().map(MessageRow::of).collect(),
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

struct AttachmentRow {
    href: String,
    name: String,
    size: String,
}

#[derive(Template)]
#[template(path = "messages_read.html")]
struct ReadPage<'a> {
    title: &'a str,
    csrf: &'a str,
    signed_in: bool,
    administration: bool,
    id: String,
    from: &'a str,
    sent: String,
    body: &'a str,
    attachments: Vec<AttachmentRow>,
    erased_on: String,
    delete_after_read: bool,
    /// The minutes a "delete after reading" message stays after its first opening.
    grace_minutes: i64,
}

/// `GET /messages/{id}[?invitation=…]`: the message to its recipient; the invitation's landing
/// page to someone not signed in; else a way to sign in that comes back here.
pub async fn read_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeSession(session): MaybeSession,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Ok(id) = id.parse::<Uuid>() else {
        return Ok(not_found_page());
    };
    let token = query_value(query.as_deref(), "invitation");
    let session = match session {
        Some(session) if session.state == SessionState::Authenticated => session,
        other => {
            if let Some(token) = token {
                return invitation::landing(&state, &headers, id, &token, None).await;
            }
            // The link is used on a GET only to show a page: sign in first, then come back.
            let to = page_for(other.map(|session| session.state));
            return Ok(remember(Redirect::to(to).into_response(), &state, id));
        }
    };
    let message = match (state.service.read_message(&session.user, id).await, token) {
        (Ok(message), _) => message,
        (Err(MessageError::TwoFactorRequired), _) => {
            return Ok(remember(two_factor_page(), &state, id));
        }
        // Someone else's invitation opened in this browser: offer to switch to it.
        (Err(MessageError::NotFound), Some(token)) => {
            return invitation::landing(&state, &headers, id, &token, Some(&session)).await;
        }
        (Err(other), _) => return message_failure(other),
    };
    let csrf = Csrf::for_request(&state, &headers)?;
    let administration = administration(&state, &session).await?;
    Ok(csrf.apply(read_response(&csrf.token, administration, &message)))
}

fn read_response(csrf: &str, administration: bool, message: &OpenedMessage) -> Response {
    let attachments = message
        .attachments
        .iter()
        .map(|attachment| AttachmentRow {
            href: format!("/messages/{}/attachments/{}", message.id, attachment.id),
            name: attachment.name.clone(),
            size: size_text(attachment.size),
        })
        .collect();
    let page = ReadPage {
        title: &message.subject,
        csrf,
        signed_in: true,
        administration,
        id: message.id.to_string(),
        from: &message.from,
        sent: message
            .sent_at
            .map_or_else(|| ERASED.to_owned(), utc_minute),
        body: message.body.as_str(),
        attachments,
        erased_on: utc_minute(message.expires_at),
        delete_after_read: message.delete_after_read,
        grace_minutes: READ_GRACE.whole_minutes(),
    };
    render(StatusCode::OK, &page)
}

/// `GET /messages/{id}/attachments/{aid}`: the file, to the message's recipient.
pub async fn download(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    Path((id, attachment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (Ok(id), Ok(attachment)) = (id.parse::<Uuid>(), attachment.parse::<Uuid>()) else {
        return Ok(not_found_page());
    };
    match state
        .service
        .open_attachment(&session.user, id, attachment)
        .await
    {
        Ok(download) => Ok(file_response(download)),
        Err(MessageError::TwoFactorRequired) => Ok(remember(two_factor_page(), &state, id)),
        Err(other) => message_failure(other),
    }
}

#[derive(Template)]
#[template(path = "messages_delete.html")]
struct DeletePage<'a> {
    title: &'a str,
    csrf: &'a str,
    signed_in: bool,
    action: String,
}

/// `GET /messages/{id}/delete`: asks first.
pub async fn delete_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Ok(id) = id.parse::<Uuid>() else {
        return Ok(not_found_page());
    };
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = DeletePage {
        title: "Delete this message?",
        csrf: &csrf.token,
        signed_in: true,
        action: format!("/messages/{id}/delete"),
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /messages/{id}/delete`: its sender or recipient erases it for both.
pub async fn delete_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    Path(id): Path<String>,
    PageForm(_checked): PageForm<CsrfOnlyForm>,
) -> Result<Response, ApiError> {
    let Ok(id) = id.parse::<Uuid>() else {
        return Ok(not_found_page());
    };
    match state.service.delete_message(&session.user, id).await {
        Ok(()) => Ok(Redirect::to("/messages?done=deleted").into_response()),
        Err(other) => message_failure(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_bytes_kib_or_mib() {
        assert_eq!(size_text(0), "0 bytes");
        assert_eq!(size_text(1), "1 byte");
        assert_eq!(size_text(1023), "1023 bytes");
        assert_eq!(size_text(1024), "1 KiB");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(25 * 1024 * 1024), "25 MiB");
        assert_eq!(size_text(614_417), "600 KiB");
    }

    #[test]
    fn the_send_wait_is_told_in_whole_minutes() {
        let text = |seconds| send_wait_message(time::Duration::seconds(seconds));
        assert!(text(1).contains("Wait 1 minute,"));
        assert!(text(59).contains("Wait 1 minute,"));
        assert!(text(60).contains("Wait 1 minute,"));
        assert!(text(61).contains("Wait 2 minutes,"));
    }

    #[test]
    fn notices_are_chosen_from_a_fixed_list() {
        assert!(notice_of(Some("done=sent")).is_some());
        assert!(notice_of(Some("done=deleted")).is_some());
        assert_eq!(notice_of(Some("done=%3Cb%3E")), None);
        assert_eq!(notice_of(None), None);
    }
}
