//! The session-state gate: every route is added through [`RouteTable::route`] with the
//! [`Gate`] it needs, so the rule for each route is declared once, where the route is, and the
//! table doubles as the inventory that tests check. Deny is the default: a route handler that
//! reads the session gets it only when the gate put it there.
//!
//! A password-only session is in state `second_factor`, `password_change_required` or
//! `enrollment_required`; the gate keeps it to the routes of that next step.

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::MethodRouter;
use twofold_core::login::ActiveSession;
use twofold_core::session::{SessionState, SessionToken};

use crate::cookies::read_cookie;
use crate::error::ApiError;
use crate::state::AppState;

pub const AUTHENTICATED: &[SessionState] = &[SessionState::Authenticated];
pub const PASSWORD_CHANGE: &[SessionState] = &[SessionState::PasswordChangeRequired];
pub const ENROLLMENT: &[SessionState] = &[SessionState::EnrollmentRequired];
pub const SECOND_FACTOR: &[SessionState] = &[SessionState::SecondFactor];
/// Enrolling a factor: at forced enrollment, or by a signed-in user adding or replacing one.
pub const ENROLLED_OR_ENROLLING: &[SessionState] = &[
    SessionState::EnrollmentRequired,
    SessionState::Authenticated,
];

/// What a route requires of the caller's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Anyone; the session is not looked at.
    Public,
    /// Anyone; the session, if live, is handed to the handler ([`MaybeSession`]).
    OptionalSession,
    /// An API call that needs a session in one of these states; else 401.
    Api(&'static [SessionState]),
    /// A page that needs a session in one of these states; else a redirect to where the
    /// session (or its absence) belongs.
    Page(&'static [SessionState]),
    /// An administration call: a fully signed-in administrator with a second factor
    /// ([`twofold_core::Service::may_administer`]); 401 without a full session, 403 for
    /// anyone else.
    AdminApi,
    /// An administration page: as [`Gate::AdminApi`], but a redirect to sign in without a
    /// full session and a "not allowed" page for anyone else.
    AdminPage,
}

/// One row of the inventory.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub path: &'static str,
    pub gate: Gate,
}

/// Builds the router and the inventory together.
pub struct RouteTable {
    state: AppState,
    router: Router<AppState>,
    entries: Vec<RouteEntry>,
}

impl RouteTable {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            router: Router::new(),
            entries: Vec::new(),
        }
    }

    pub fn route(
        mut self,
        path: &'static str,
        gate: Gate,
        handlers: MethodRouter<AppState>,
    ) -> Self {
        let handlers = if gate == Gate::Public {
            handlers
        } else {
            handlers.route_layer(middleware::from_fn_with_state(
                (self.state.clone(), gate),
                enforce,
            ))
        };
        self.router = self.router.route(path, handlers);
        self.entries.push(RouteEntry { path, gate });
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<RouteEntry>) {
        (self.router, self.entries)
    }
}

/// The live session of a gated request.
#[derive(Debug, Clone)]
pub struct CurrentSession(pub ActiveSession);

/// The live session, if any, of a request behind [`Gate::OptionalSession`].
#[derive(Debug, Clone)]
pub struct MaybeSession(pub Option<ActiveSession>);

impl<S: Send + Sync> FromRequestParts<S> for CurrentSession {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentSession>()
            .cloned()
            .ok_or_else(|| {
                ApiError::internal(&"a handler asked for a session its gate does not provide")
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeSession {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<MaybeSession>()
            .cloned()
            .ok_or_else(|| {
                ApiError::internal(&"a handler asked for a session its gate does not look up")
            })
    }
}

/// Resolves the request's session cookie to a live session.
pub async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<ActiveSession>, ApiError> {
    let Some(token) =
        read_cookie(headers, &state.cookies.session_name).and_then(SessionToken::parse)
    else {
        return Ok(None);
    };
    Ok(state.service.resolve_session(&token).await?)
}

async fn enforce(
    State((state, gate)): State<(AppState, Gate)>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = match session_of(&state, request.headers()).await {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    match gate {
        Gate::Public => next.run(request).await,
        Gate::OptionalSession => {
            request.extensions_mut().insert(MaybeSession(session));
            next.run(request).await
        }
        Gate::Api(allowed) => match session {
            Some(session) if allowed.contains(&session.state) => {
                request.extensions_mut().insert(CurrentSession(session));
                next.run(request).await
            }
            Some(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "finish signing in first",
            )
            .into_response(),
            None => ApiError::unauthenticated().into_response(),
        },
        Gate::Page(allowed) => match session {
            Some(session) if allowed.contains(&session.state) => {
                request.extensions_mut().insert(CurrentSession(session));
                next.run(request).await
            }
            other => Redirect::to(page_for(other.map(|session| session.state))).into_response(),
        },
        Gate::AdminApi | Gate::AdminPage => {
            let Some(session) =
                session.filter(|session| session.state == SessionState::Authenticated)
            else {
                return if gate == Gate::AdminApi {
                    ApiError::unauthenticated().into_response()
                } else {
                    Redirect::to("/login").into_response()
                };
            };
            match state.service.may_administer(&session).await {
                Ok(true) => {
                    request.extensions_mut().insert(CurrentSession(session));
                    next.run(request).await
                }
                Ok(false) if gate == Gate::AdminApi => ApiError::forbidden().into_response(),
                Ok(false) => crate::pages::forbidden_page(&session).into_response(),
                Err(error) => ApiError::from(error).into_response(),
            }
        }
    }
}

/// The page where a session in `state` (or no session) continues.
pub fn page_for(state: Option<SessionState>) -> &'static str {
    match state {
        None => "/login",
        Some(SessionState::PasswordChangeRequired) => "/login/password",
        Some(SessionState::SecondFactor) => "/login/verify",
        Some(SessionState::EnrollmentRequired) => "/login/enroll",
        Some(SessionState::Authenticated) => "/account",
    }
}
