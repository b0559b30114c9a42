//! The audit log in the administration: a filter (user, kind of event, dates), the entries
//! newest first with "Older" paging by sequence number, a link to the JSON-lines export of the
//! API, and "Verify chain", which walks the whole hash chain and says whether it is intact.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time};
use twofold_core::accounts::AccountError;
use twofold_core::audit::EventKind;
use twofold_core::store::{AuditFilter, AuditRecord};
use twofold_core::user::UserId;

use super::admin::{
    Section, Tab, describe, details_text, query_value, tabs, user_href, utc_second,
};
use super::login::CsrfOnlyForm;
use super::{Csrf, PageForm, render};
use crate::error::ApiError;
use crate::state::AppState;

/// Entries on one page of the log.
const ENTRIES_PER_PAGE: u32 = 50;
/// User agents are cut to this many characters in the table (the whole one is its title).
const USER_AGENT_SHOWN: usize = 40;

/// Where the API serves the whole log as JSON lines.
pub const EXPORT_HREF: &str = "/api/v1/admin/audit/export";

/// A user named in an entry.
struct Person {
    text: String,
    href: Option<String>,
}

fn person(id: Option<UserId>, email: Option<&str>) -> Person {
    match (id, email) {
        (Some(id), Some(email)) => Person {
            text: email.to_owned(),
            href: Some(user_href(id)),
        },
        (Some(id), None) => Person {
            text: format!("removed user {id}"),
            href: None,
        },
        (None, _) => Person {
            text: "—".to_owned(),
            href: None,
        },
    }
}

struct EntryRow {
    seq: u64,
    at: String,
    what: String,
    actor: Person,
    subject: Person,
    ip: String,
    user_agent: String,
    user_agent_short: String,
    details: String,
}

fn shortened(text: &str) -> String {
    if text.chars().count() <= USER_AGENT_SHOWN {
        text.to_owned()
    } else {
        let head: String = text.chars().take(USER_AGENT_SHOWN - 1).collect();
        format!("{head}…")
    }
}

impl From<AuditRecord> for EntryRow {
    fn from(record: AuditRecord) -> Self {
        let what = describe(&record);
        let event = record.event;
        let user_agent = event.user_agent.unwrap_or_default();
        EntryRow {
            seq: record.seq,
            at: utc_second(event.at),
            what,
            actor: person(event.actor, record.actor_email.as_deref()),
            subject: person(event.subject, record.subject_email.as_deref()),
            ip: event.ip.unwrap_or_default(),
            user_agent_short: shortened(&user_agent),
            user_agent,
            details: details_text(&event.detail),
        }
    }
}

/// A kind of event in the filter's list.
struct KindOption {
    value: &'static str,
    text: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    user: &'a str,
    kinds: Vec<KindOption>,
    since: &'a str,
    until: &'a str,
    error: Option<String>,
    entries: Vec<EntryRow>,
    /// The filtered log's next page, if there may be one.
    older: Option<String>,
    /// The newest page of the same filter, when this is an older one.
    newest: Option<String>,
    export_href: &'static str,
}

/// The filter as typed in the query string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Typed {
    user: String,
    kind: String,
    since: String,
    until: String,
    before: Option<u64>,
}

impl Typed {
    fn from_query(query: Option<&str>) -> Self {
        let value = |key| query_value(query, key).map(|text| text.trim().to_owned());
        Typed {
            user: value("user").unwrap_or_default(),
            kind: value("kind").unwrap_or_default(),
            since: value("since").unwrap_or_default(),
            until: value("until").unwrap_or_default(),
            before: value("before").and_then(|text| text.parse().ok()),
        }
    }

    /// This filter's address, on the page before `before` (or the newest page).
    fn href(&self, before: Option<u64>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("user", &self.user),
            ("kind", &self.kind),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if let Some(before) = before {
            query.append_pair("before", &before.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/admin/audit".to_owned()
        } else {
            format!("/admin/audit?{query}")
        }
    }
}

/// Midnight UTC at the start of a `YYYY-MM-DD` day.
fn day_start(text: &str) -> Option<OffsetDateTime> {
    let date = Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.with_time(Time::MIDNIGHT).assume_utc())
}

/// The filter's dates and kind, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bounds {
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    kind: Option<EventKind>,
}

/// The filter's dates and kind, or what is wrong with them.
fn bounds(typed: &Typed) -> Result<Bounds, String> {
    let date = |text: &str, name: &str| -> Result<Option<OffsetDateTime>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        day_start(text)
            .map(Some)
            .ok_or_else(|| format!("{name} must be a date like 2027-01-31."))
    };
    let since = date(&typed.since, "From")?;
    // "Until" includes its day: entries before the next midnight.
    let until = date(&typed.until, "Until")?.map(|day| day + Duration::days(1));
    let kind = match typed.kind.as_str() {
        "" => None,
        name => Some(EventKind::parse(name).ok_or("Choose a kind of event from the list.")?),
    };
    Ok(Bounds { since, until, kind })
}

/// `GET /admin/audit?user=…&kind=…&since=…&until=…&before=…`.
pub async fn audit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let typed = Typed::from_query(query.as_deref());
    let mut error = None;
    let mut entries = Vec::new();
    match bounds(&typed) {
        Err(message) => error = Some(message),
        Ok(Bounds { since, until, kind }) => {
            let user = if typed.user.is_empty() {
                Ok(None)
            } else if let Ok(id) = typed.user.parse::<UserId>() {
                Ok(Some(id))
            } else {
                match state.service.find_user(&typed.user).await {
                    Ok(user) => Ok(Some(user.id)),
                    Err(AccountError::NotFound | AccountError::InvalidEmail(_)) => {
                        Err("No user has this email address or id.".to_owned())
                    }
                    Err(other) => return Err(other.into()),
                }
            };
            match user {
                Err(message) => error = Some(message),
                Ok(user) => {
                    entries = state
                        .service
                        .audit_log(&AuditFilter {
                            user,
                            kind: kind.map(EventKind::as_str),
                            since,
                            until,
                            before_seq: typed.before,
                            limit: ENTRIES_PER_PAGE,
                            subject: None,
                        })
                        .await?;
                }
            }
        }
    }
    let older = (entries.len() == ENTRIES_PER_PAGE as usize)
        .then(|| entries.last().map(|last| typed.href(Some(last.seq))))
        .flatten();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = AuditPage {
        title: "Audit log",
        csrf: &csrf.token,
        tabs: tabs(Section::Audit),
        user: &typed.user,
        kinds: EventKind::ALL
            .iter()
            .map(|kind| KindOption {
                value: kind.as_str(),
                text: kind.describe(),
                selected: typed.kind == kind.as_str(),
            })
            .collect(),
        since: &typed.since,
        until: &typed.until,
        error,
        entries: entries.into_iter().map(EntryRow::from).collect(),
        older,
        newest: typed.before.map(|_| typed.href(None)),
        export_href: EXPORT_HREF,
    };
    Ok(csrf.apply(render(status, &page)))
}

#[derive(Template)]
#[template(path = "admin_audit_verify.html")]
struct VerifyPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    /// `None` until the check ran.
    outcome: Option<Outcome>,
}

struct Outcome {
    intact: bool,
    checked: u64,
    /// The first entry checked when retention removed older ones.
    starts_after: Option<u64>,
    broken: String,
}

/// `GET /admin/audit/verify`: what the check does, and its button.
pub async fn verify_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = VerifyPage {
        title: "Verify the audit log",
        csrf: &csrf.token,
        tabs: tabs(Section::Audit),
        outcome: None,
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /admin/audit/verify`: walks the chain and shows the result.
pub async fn verify_submit(
    State(state): State<AppState>,
    PageForm(form): PageForm<CsrfOnlyForm>,
) -> Result<Response, ApiError> {
    let report = state.service.verify_audit_chain().await?;
    let outcome = Outcome {
        intact: report.broken.is_none(),
        checked: report.checked,
        starts_after: report.anchor.map(|anchor| anchor.seq),
        broken: report
            .broken
            .map(|broken| super::forms::sentence(&broken.to_string()))
            .unwrap_or_default(),
    };
    let page = VerifyPage {
        title: "Verify the audit log",
        csrf: super::CsrfProtected::csrf_token(&form),
        tabs: tabs(Section::Audit),
        outcome: Some(outcome),
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_whole_utc_days_and_until_includes_its_day() {
        let typed = Typed {
            since: "2027-01-15".to_owned(),
            until: "2027-01-15".to_owned(),
            ..Typed::default()
        };
        let Bounds { since, until, kind } = bounds(&typed).unwrap();
        assert_eq!(since.unwrap().unix_timestamp(), 1_800_000_000 - 28_800);
        assert_eq!((until.unwrap() - since.unwrap()).whole_hours(), 24);
        assert_eq!(kind, None);
        let wrong = Typed {
            since: "15/01/2027".to_owned(),
            ..Typed::default()
        };
        assert!(
            bounds(&wrong)
                .unwrap_err()
                .starts_with("From must be a date")
        );
        let unknown = Typed {
            kind: "nope".to_owned(),
            ..Typed::default()
        };
        assert!(bounds(&unknown).is_err());
    }

    #[test]
    fn paging_keeps_the_filter() {
        let typed = Typed::from_query(Some("user=a%40b.c&kind=signed_out&before=9&x=1"));
        assert_eq!(typed.before, Some(9));
        assert_eq!(
            typed.href(Some(4)),
            "/admin/audit?user=a%40b.c&kind=signed_out&before=4"
        );
        assert_eq!(Typed::default().href(None), "/admin/audit");
    }

    #[test]
    fn details_and_agents_read_shortly() {
        assert_eq!(
            details_text(r#"{"admin":true,"step":"password"}"#),
            "admin: true; step: password"
        );
        assert_eq!(details_text("{}"), "");
        let agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)";
        let short = shortened(agent);
        assert_eq!(short.chars().count(), USER_AGENT_SHOWN);
        assert!(short.ends_with('…'));
        assert_eq!(shortened("curl/8"), "curl/8");
    }
}
