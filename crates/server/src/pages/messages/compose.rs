//! Writing a message: `GET /messages/new` and its `multipart/form-data` POST, read as a stream
//! in the form's order. The CSRF token comes first and is checked (token and origin, as
//! [`PageForm`](crate::pages::PageForm) does) before anything else is read or done; then the
//! text fields; then the files. The messages are made as drafts once the text is read, each
//! file streams into an attachment of every draft (sealed in chunks as it arrives, never whole
//! in memory), and only then is each draft sent. Any failure deletes the drafts: a message goes
//! out with all its files or not at all.

use askama::Template;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use twofold_core::email::Email;
use twofold_core::messages::{
    AttachmentUpload, DEFAULT_EXPIRY_DAYS, MAX_ATTACHMENTS, MAX_BODY_BYTES, MessageDraft,
    MessageError, READ_GRACE,
};
use twofold_core::user::User;
use uuid::Uuid;

use super::{administration, busy_page, message_failure, send_wait_message, size_text};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::pages::forms::sentence;
use crate::pages::{Csrf, MessagePage, csrf_failure, csrf_matches, render, with_retry_after};
use crate::state::AppState;

/// The lifetimes offered, in days.
const EXPIRY_CHOICES: [u32; 6] = [1, 3, 7, 14, 30, 90];

/// The most read of each text field: enough for any acceptable value, so that a huge field
/// is refused as it arrives instead of held in memory.
const CSRF_MAX_BYTES: usize = 256;
const TO_MAX_BYTES: usize = 32 * 1024;
const SUBJECT_MAX_BYTES: usize = 4 * 1024;
/// Room for the longest body with every newline sent as CRLF.
const BODY_MAX_BYTES: usize = 2 * MAX_BODY_BYTES;
const CHOICE_MAX_BYTES: usize = 64;

/// What was typed, kept to show the form again.
#[derive(Default)]
struct ComposeForm {
    to: String,
    subject: String,
    body: String,
    expires_in_days: Option<String>,
    delete_after_read: bool,
}

struct ExpiryChoice {
    days: u32,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "messages_new.html")]
struct ComposePage<'a> {
    title: &'a str,
    csrf: &'a str,
    signed_in: bool,
    administration: bool,
    to: &'a str,
    subject: &'a str,
    body: &'a str,
    choices: Vec<ExpiryChoice>,
    delete_after_read: bool,
    grace_minutes: i64,
    error: Option<&'a str>,
    file_limit: String,
    max_attachments: usize,
}

impl<'a> ComposePage<'a> {
    fn new(
        state: &AppState,
        csrf: &'a str,
        administration: bool,
        form: &'a ComposeForm,
        error: Option<&'a str>,
    ) -> Self {
        let chosen = form
            .expires_in_days
            .as_deref()
            .and_then(|days| days.trim().parse().ok())
            .unwrap_or(DEFAULT_EXPIRY_DAYS);
        Self {
            title: "New secure message",
            csrf,
            signed_in: true,
            administration,
            to: &form.to,
            subject: &form.subject,
            body: &form.body,
            choices: EXPIRY_CHOICES
                .iter()
                .map(|&days| ExpiryChoice {
                    days,
                    label: if days == 1 {
                        "1 day".to_owned()
                    } else {
                        format!("{days} days")
                    },
                    selected: days == chosen,
                })
                .collect(),
            delete_after_read: form.delete_after_read,
            grace_minutes: READ_GRACE.whole_minutes(),
            error,
            file_limit: size_text(state.service.settings().attachment_limit_bytes),
            max_attachments: MAX_ATTACHMENTS,
        }
    }
}

/// `GET /messages/new`.
pub async fn compose_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let administration = administration(&state, &session).await?;
    let form = ComposeForm::default();
    let page = ComposePage::new(&state, &csrf.token, administration, &form, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// Why a message was not sent.
enum Refusal {
    /// The form again, with what was typed and the reason.
    Form {
        status: StatusCode,
        error: String,
        retry_after: Option<time::Duration>,
    },
    /// A page of its own.
    Page(Response),
    Failed(ApiError),
}

impl Refusal {
    fn form(status: StatusCode, error: impl Into<String>) -> Self {
        Refusal::Form {
            status,
            error: error.into(),
            retry_after: None,
        }
    }

    fn invalid(error: impl Into<String>) -> Self {
        Refusal::form(StatusCode::UNPROCESSABLE_ENTITY, error)
    }
}

impl From<MessageError> for Refusal {
    fn from(error: MessageError) -> Self {
        match error {
            MessageError::Invalid(reason) => Refusal::invalid(sentence(reason)),
            MessageError::InvalidRecipient(reason) => {
                Refusal::invalid(sentence(&reason.to_string()))
            }
            MessageError::TooManyAttachments => {
                Refusal::invalid(format!("A message has at most {MAX_ATTACHMENTS} files."))
            }
            MessageError::Throttled { retry_after } => Refusal::Form {
                status: StatusCode::TOO_MANY_REQUESTS,
                error: send_wait_message(retry_after),
                retry_after: Some(retry_after),
            },
            MessageError::TooLarge { limit } => Refusal::Page(too_large_page(limit)),
            MessageError::Overloaded => Refusal::Page(busy_page()),
            other => match message_failure(other) {
                Ok(page) => Refusal::Page(page),
                Err(error) => Refusal::Failed(error),
            },
        }
    }
}

/// The 413 page: a file (or the whole form) past the limit; nothing was sent.
fn too_large_page(limit: u64) -> Response {
    let message = format!(
        "Each file may be at most {}, and a message may have at most {MAX_ATTACHMENTS} files. Nothing was sent.",
        size_text(limit)
    );
    let page = MessagePage {
        title: "A file is too large",
        message: &message,
        link_href: "/messages/new",
        link_text: "Write the message again",
    };
    render(StatusCode::PAYLOAD_TOO_LARGE, &page)
}

fn unreadable_page(status: StatusCode) -> Response {
    let page = MessagePage {
        title: "This form could not be read",
        message: "Go back, reload the page and try again. Nothing was sent.",
        link_href: "/messages/new",
        link_text: "Write the message again",
    };
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    render(status, &page)
}

fn multipart_refusal(error: &MultipartError, limit: u64) -> Refusal {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Refusal::Page(too_large_page(limit))
    } else {
        Refusal::Page(unreadable_page(error.status()))
    }
}

/// `POST /messages/new`: makes and sends one message per recipient, with the files.
pub async fn compose_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let Ok(mut multipart) = multipart else {
        return Ok(unreadable_page(StatusCode::BAD_REQUEST));
    };
    let limit = state.service.settings().attachment_limit_bytes;
    // The token is the form's first field, checked before anything else is read or done.
    let token = match first_field_text(&mut multipart, "csrf", CSRF_MAX_BYTES, limit).await {
        Ok(Some(token)) if csrf_matches(&state, &headers, &token) => token,
        Ok(_) => return Ok(csrf_failure()),
        Err(Refusal::Page(page)) => return Ok(page),
        Err(_) => return Ok(csrf_failure()),
    };
    let mut form = ComposeForm::default();
    let mut drafts = Vec::new();
    let refusal = match receive(
        &state,
        &session.user,
        &mut multipart,
        &mut form,
        &mut drafts,
    )
    .await
    {
        Ok(()) => return Ok(Redirect::to("/messages?done=sent").into_response()),
        Err(refusal) => refusal,
    };
    discard(&state, &session.user, &drafts).await;
    match refusal {
        Refusal::Form {
            status,
            error,
            retry_after,
        } => {
            let administration = administration(&state, &session).await?;
            let page = ComposePage::new(&state, &token, administration, &form, Some(&error));
            let response = render(status, &page);
            Ok(match retry_after {
                Some(wait) => with_retry_after(response, wait),
                None => response,
            })
        }
        Refusal::Page(page) => Ok(page),
        Refusal::Failed(error) => Err(error),
    }
}

/// The text of the body's first field if it is named `name`; `None` for any other field.
async fn first_field_text(
    multipart: &mut Multipart,
    name: &str,
    max: usize,
    limit: u64,
) -> Result<Option<String>, Refusal> {
    let field = multipart
        .next_field()
        .await
        .map_err(|error| multipart_refusal(&error, limit))?;
    match field {
        Some(field) if field.name() == Some(name) && field.file_name().is_none() => {
            text(field, max, "", limit).await.map(Some)
        }
        _ => Ok(None),
    }
}

/// Reads the rest of the form, makes the drafts and their attachments, and sends them; the
/// drafts made so far are in `drafts` whatever happens.
async fn receive(
    state: &AppState,
    sender: &User,
    multipart: &mut Multipart,
    form: &mut ComposeForm,
    drafts: &mut Vec<Uuid>,
) -> Result<(), Refusal> {
    let limit = state.service.settings().attachment_limit_bytes;
    let mut drafted = false;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|error| multipart_refusal(&error, limit))?
    {
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            if !drafted {
                *drafts = make_drafts(state, sender, form).await?;
                drafted = true;
            }
            // A browser sends an empty part when no file was chosen.
            if !file_name.is_empty() {
                attach(state, sender, drafts, &file_name, field, limit).await?;
            }
        } else if !drafted {
            read_text_field(form, field, limit).await?;
        }
        // Text after the files (which no browser sends) is ignored: the drafts are made.
    }
    if !drafted {
        *drafts = make_drafts(state, sender, form).await?;
    }
    for id in drafts.iter() {
        state.service.send_draft(sender, *id).await?;
    }
    Ok(())
}

async fn read_text_field(
    form: &mut ComposeForm,
    field: Field<'_>,
    limit: u64,
) -> Result<(), Refusal> {
    let name = field.name().unwrap_or_default().to_owned();
    match name.as_str() {
        "to" => {
            form.to = text(
                field,
                TO_MAX_BYTES,
                "The list of recipients is too long.",
                limit,
            )
            .await?;
        }
        "subject" => {
            form.subject = text(
                field,
                SUBJECT_MAX_BYTES,
                "The subject is longer than 200 characters.",
                limit,
            )
            .await?;
        }
        "body" => {
            // A browser sends a text area's line breaks as CRLF.
            let body = text(
                field,
                BODY_MAX_BYTES,
                "The message is longer than 50,000 bytes.",
                limit,
            )
            .await?;
            form.body = body.replace("\r\n", "\n");
        }
        "expires_in_days" => {
            let choice = text(
                field,
                CHOICE_MAX_BYTES,
                "Choose how long the message lasts.",
                limit,
            );
            form.expires_in_days = Some(choice.await?);
        }
        "delete_after_read" => {
            text(
                field,
                CHOICE_MAX_BYTES,
                "The form could not be read.",
                limit,
            )
            .await?;
            form.delete_after_read = true;
        }
        // Unknown fields are skipped unread.
        _ => {}
    }
    Ok(())
}

/// A text field, refused (with `too_long`) past `max` bytes as soon as it gets there.
async fn text(
    mut field: Field<'_>,
    max: usize,
    too_long: &str,
    limit: u64,
) -> Result<String, Refusal> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|error| multipart_refusal(&error, limit))?
    {
        if bytes.len() + chunk.len() > max {
            return Err(Refusal::invalid(too_long));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| Refusal::Page(unreadable_page(StatusCode::BAD_REQUEST)))
}

/// The addresses typed, separated by commas, semicolons, spaces or new lines.
fn recipients(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks the form and makes one draft per recipient.
async fn make_drafts(
    state: &AppState,
    sender: &User,
    form: &ComposeForm,
) -> Result<Vec<Uuid>, Refusal> {
    let to = recipients(&form.to);
    // Named here, so that the page can say which address is wrong.
    for address in &to {
        if let Err(reason) = Email::parse(address) {
            return Err(Refusal::invalid(format!(
                "“{address}” cannot be used: {reason}."
            )));
        }
    }
    let expires_in_days = match form.expires_in_days.as_deref() {
        None => None,
        Some(days) => Some(
            days.trim()
                .parse::<u32>()
                .map_err(|_| Refusal::invalid("Choose how long the message lasts."))?,
        ),
    };
    let made = state
        .service
        .send_messages(
            sender,
            MessageDraft {
                to: &to,
                subject: &form.subject,
                body: &form.body,
                expires_in_days,
                delete_after_read: form.delete_after_read,
                send: false,
            },
        )
        .await?;
    Ok(made.into_iter().map(|message| message.id).collect())
}

/// Streams one file into an attachment of every draft.
async fn attach(
    state: &AppState,
    sender: &User,
    drafts: &[Uuid],
    file_name: &str,
    mut field: Field<'_>,
    limit: u64,
) -> Result<(), Refusal> {
    let mut uploads = Vec::with_capacity(drafts.len());
    for id in drafts {
        match state.service.start_attachment(sender, *id, file_name).await {
            Ok(upload) => uploads.push(upload),
            Err(error) => {
                abort_all(uploads).await;
                return Err(error.into());
            }
        }
    }
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                abort_all(uploads).await;
                return Err(multipart_refusal(&error, limit));
            }
        };
        if let Err(error) = push_all(&mut uploads, &chunk).await {
            abort_all(uploads).await;
            return Err(error.into());
        }
    }
    let mut uploads = uploads.into_iter();
    while let Some(upload) = uploads.next() {
        if let Err(error) = upload.finish().await {
            abort_all(uploads).await;
            return Err(error.into());
        }
    }
    Ok(())
}

async fn push_all(uploads: &mut [AttachmentUpload], chunk: &[u8]) -> Result<(), MessageError> {
    for upload in uploads {
        upload.push(chunk).await?;
    }
    Ok(())
}

async fn abort_all(uploads: impl IntoIterator<Item = AttachmentUpload>) {
    for upload in uploads {
        upload.abort().await;
    }
}

/// Deletes the drafts of a message that was refused (their content is erased).
async fn discard(state: &AppState, sender: &User, drafts: &[Uuid]) {
    for id in drafts {
        if let Err(error) = state.service.delete_message(sender, *id).await {
            tracing::warn!(message = %id, error = %error, "could not delete the draft of a refused message; it expires unsent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_split_on_commas_semicolons_spaces_and_lines() {
        assert_eq!(
            recipients(" a@x.org,b@y.org;\r\nc@z.org  d@w.org\n"),
            ["a@x.org", "b@y.org", "c@z.org", "d@w.org"]
        );
        assert!(recipients(" ,\n ").is_empty());
    }
}
