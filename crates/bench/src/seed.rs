//! `twofold-bench seed`: a database ready for the load runs, made in seconds, and the files the
//! wrk scripts read (emails, session tokens, TOTP codes).
//!
//! - **Users** share one Argon2id hash of one known password: a login costs a verification,
//!   not the creation, so one hash made once stands for all of them. They go in through
//!   [`UserStore::insert_user`](twofold_core::store::UserStore::insert_user).
//! - **Authenticators** are enrolled through the real flow, as a person would: from a session
//!   of their own (password-only sign-in, 2FA not yet required) the pending authenticator is
//!   stored as `start_totp_enrollment` stores it (that call itself, with `--draw-qr`: it also
//!   draws the QR code, which is half the seeding's CPU), then `Service::confirm_totp` with the
//!   code of the *previous* 30-s step (accepted with the default skew of one step) activates it,
//!   with recovery codes, the audit entry and the session rotation. The authenticator's last
//!   used step is then one before the seeding's, so every code of the seeding's step and later
//!   signs in. Many users are enrolled at once.
//! - **Sessions** are inserted through
//!   [`SessionStore::insert_session`](twofold_core::store::SessionStore::insert_session) with
//!   tokens from [`SessionToken::generate`] once every enrollment is done (confirming a factor
//!   ends the user's other sessions). A TOTP step can be consumed once and only after an earlier
//!   one, so a user carries at most two `second_factor` sessions: the scripts use the current
//!   step's code for the first and the next step's for the second, in that order.
//!
//! Users are split so that no scenario spends another's codes: the first ones carry the
//! `second_factor` sessions, the next ones the sessions for wrong codes (which lock the user's
//! second factor), and the rest are listed in `PREFIX.users` for the login scenarios.
//! Authenticated sessions are spread over every user.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use secrecy::SecretString;
use time::OffsetDateTime;
use twofold_core::Service;
use twofold_core::email::Email;
use twofold_core::factors::{FactorError, totp_context};
use twofold_core::hasher::{Argon2Settings, PasswordHasher};
use twofold_core::password::LoginPassword;
use twofold_core::session::{SessionState, SessionToken};
use twofold_core::store::{NewSession, NewTotp, NewUser};
use twofold_core::user::{Method, UserId};
use twofold_otp::{Secret, Totp, TotpParams};
use uuid::Uuid;

/// What to make.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Default: `DATA_DIR/master.key`, as the server's.
    pub master_key_file: Option<PathBuf>,
    pub users: usize,
    pub second_factor_sessions: usize,
    pub wrong_code_sessions: usize,
    pub authenticated_sessions: usize,
    pub password: String,
    /// Where the files go: `PREFIX.users`, `PREFIX.second_factor`, `PREFIX.wrong_code`,
    /// `PREFIX.authenticated`.
    pub out: PathBuf,
    /// Users enrolled (and sessions inserted) at once.
    pub concurrency: usize,
    /// TOTP codes written per line, from the seeding's step on (41: twenty minutes).
    pub code_steps: u64,
    /// Start each enrollment through `Service::start_totp_enrollment`, which also draws the QR
    /// code (about half the seeding's CPU); otherwise the pending authenticator is stored as
    /// that call stores it, and only the drawing is skipped.
    pub draw_qr: bool,
    /// `second_factor` sessions are stamped this far ahead, so that a step taken within that
    /// time finds its session as a login that just happened would leave it: not due for the
    /// once-a-minute activity write.
    pub second_factor_lead_seconds: i64,
}

/// One enrolled user.
struct Seeded {
    id: UserId,
    email: String,
    totp: Totp,
}

/// How long each part took, for the summary line.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub users: usize,
    pub users_seconds: f64,
    pub sessions: usize,
    pub sessions_seconds: f64,
}

/// Makes the users, their authenticators and the sessions, and writes the files.
pub async fn run(options: &SeedOptions) -> anyhow::Result<SeedReport> {
    let reserved = options.second_factor_sessions.div_ceil(2) + options.wrong_code_sessions;
    if options.users <= reserved {
        bail!(
            "--users {} leaves none for the login scenarios: the second-factor sessions need {} users (two each) and the wrong-code sessions {} (one each)",
            options.users,
            options.second_factor_sessions.div_ceil(2),
            options.wrong_code_sessions
        );
    }
    create_private_directory(&options.data_dir)?;
    let key_file = options
        .master_key_file
        .clone()
        .unwrap_or_else(|| options.data_dir.join("master.key"));
    let service = crate::service::build(&options.database_url, &key_file, 1).await?;
    // As `twofold serve` refuses to start then: sealing under a new key next to secrets of
    // another would leave a database no key file opens.
    let needed = service.stores().factors.sealed_key_ids().await?;
    let keys = service.sealer().keys();
    if let Some(unknown) = needed
        .iter()
        .find(|id| !keys.key_ids().any(|loaded| loaded == id.as_str()))
    {
        bail!(
            "the database holds secrets sealed with key {unknown}, which {} does not hold",
            key_file.display()
        );
    }
    let policy = service.policy().await?;
    if !policy.policy.allows(Method::Totp) {
        bail!("the security policy does not allow authenticator apps (totp)");
    }
    if policy.policy.totp_skew_steps < 1 {
        bail!("the security policy's totp_skew_steps is 0: the seeding needs at least 1");
    }
    let password_hash = hash_password(&options.password).await?;

    let started = Instant::now();
    let users = seed_users(&service, options, &password_hash).await?;
    let users_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let plan = SessionPlan::new(options, users.len());
    let tokens = insert_sessions(&service, options, &users, &plan).await?;
    let sessions_seconds = started.elapsed().as_secs_f64();

    write_files(&service, options, &users, &plan, &tokens)?;
    Ok(SeedReport {
        users: users.len(),
        users_seconds,
        sessions: tokens.len(),
        sessions_seconds,
    })
}

/// The hash every seeded user gets, made by the server's own hasher from the password as a
/// login normalises it.
async fn hash_password(password: &str) -> anyhow::Result<String> {
    let typed = SecretString::from(password.to_owned());
    let normalised = LoginPassword::parse(&typed).context("the password is too long")?;
    let hasher = PasswordHasher::start(Argon2Settings::default(), 1, 1)?;
    Ok(hasher.hash(normalised.secret()).await?)
}

/// Inserts and enrolls `options.users` users, `options.concurrency` at a time; in index order.
async fn seed_users(
    service: &Service,
    options: &SeedOptions,
    password_hash: &str,
) -> anyhow::Result<Vec<Seeded>> {
    let next = Arc::new(AtomicUsize::new(0));
    let password_hash: Arc<str> = password_hash.into();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let service = service.clone();
        let next = Arc::clone(&next);
        let password_hash = Arc::clone(&password_hash);
        let total = options.users;
        let draw_qr = options.draw_qr;
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    return anyhow::Ok(done);
                }
                let seeded = seed_user(&service, index, &password_hash, draw_qr)
                    .await
                    .with_context(|| format!("seeding user {index}"))?;
                done.push((index, seeded));
                if (index + 1).is_multiple_of(5_000) {
                    eprintln!("twofold-bench seed: {} users enrolled", index + 1);
                }
            }
        });
    }
    let mut all = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("a seeding task failed")??);
    }
    Ok(all.into_values().collect())
}

/// One user: inserted with the shared hash, then an authenticator enrolled and confirmed
/// through the service, from a session of their own.
async fn seed_user(
    service: &Service,
    index: usize,
    password_hash: &str,
    draw_qr: bool,
) -> anyhow::Result<Seeded> {
    let now = service.clock().now();
    let email = format!("bench{index:06}@example.com");
    let id = UserId::random();
    let user = NewUser {
        id,
        email: Email::parse(&email).map_err(|error| anyhow::anyhow!("{error}"))?,
        password_hash: password_hash.to_owned(),
        password_change_required: false,
        is_admin: false,
        require_2fa: false,
        created_at: now,
    };
    service.stores().users.insert_user(&user).await?;
    // Signed in with the password alone (no factor yet, none required): authenticated.
    let token = SessionToken::generate()?;
    insert_session(service, &token, id, SessionState::Authenticated, now).await?;
    let session = service
        .resolve_session(&token)
        .await?
        .context("the enrollment session did not resolve")?;
    let secret = if draw_qr {
        let enrollment = service.start_totp_enrollment(&session, None).await?;
        Secret::parse_base32(&enrollment.secret)
            .map_err(|error| anyhow::anyhow!("the enrollment secret: {error}"))?
    } else {
        store_pending_totp(service, id).await?
    };
    let totp = Totp::new(secret, TotpParams::default());
    // The previous step's code: a crossing into the next step between reading the clock and
    // the check makes it too old, so that case gets one more try with a fresh step.
    for attempt in 0..2 {
        let step = totp
            .step_at(unix_seconds(service.clock().now()))
            .saturating_sub(1);
        match service
            .confirm_totp(&session, &totp.code_at_step(step))
            .await
        {
            Ok(_) => return Ok(Seeded { id, email, totp }),
            Err(FactorError::InvalidCode) if attempt == 0 => continue,
            Err(error) => return Err(error.into()),
        }
    }
    bail!("the authenticator was not confirmed")
}

/// What `start_totp_enrollment` stores, without drawing the QR code it shows: a fresh secret,
/// sealed under the master key for this user and row, as the user's pending authenticator.
async fn store_pending_totp(service: &Service, user_id: UserId) -> anyhow::Result<Secret> {
    let secret = Secret::generate().map_err(|error| anyhow::anyhow!("{error}"))?;
    let params = TotpParams::default();
    let id = Uuid::new_v4();
    let sealed = service
        .sealer()
        .seal(secret.as_bytes(), &totp_context(user_id, id))?;
    let pending = NewTotp {
        id,
        user_id,
        secret: sealed,
        algorithm: params.algorithm.as_str().to_owned(),
        digits: params.digits,
        period_seconds: u32::try_from(params.period)?,
        created_at: service.clock().now(),
    };
    service
        .stores()
        .factors
        .insert_pending_totp(&pending)
        .await?;
    Ok(secret)
}

async fn insert_session(
    service: &Service,
    token: &SessionToken,
    user_id: UserId,
    state: SessionState,
    created_at: OffsetDateTime,
) -> anyhow::Result<()> {
    service
        .stores()
        .sessions
        .insert_session(&NewSession {
            id_hash: token.id_hash(),
            user_id,
            state,
            created_at,
        })
        .await?;
    Ok(())
}

/// Which user each session belongs to. Users `0..pairs` carry the `second_factor` sessions
/// (two each, the last maybe one), the next `wrong_code` users one session each for wrong
/// codes, and the rest are free for the login scenarios. Authenticated sessions go round every
/// user.
struct SessionPlan {
    second_factor_users: usize,
    wrong_code_users: usize,
    /// `(user index, state, for wrong codes)`, in insertion order.
    sessions: Vec<(usize, SessionState, bool)>,
}

impl SessionPlan {
    fn new(options: &SeedOptions, users: usize) -> Self {
        let second_factor_users = options.second_factor_sessions.div_ceil(2);
        let mut sessions = Vec::new();
        for number in 0..options.second_factor_sessions {
            sessions.push((number / 2, SessionState::SecondFactor, false));
        }
        for number in 0..options.wrong_code_sessions {
            sessions.push((
                second_factor_users + number,
                SessionState::SecondFactor,
                true,
            ));
        }
        for number in 0..options.authenticated_sessions {
            sessions.push((number % users.max(1), SessionState::Authenticated, false));
        }
        Self {
            second_factor_users,
            wrong_code_users: options.wrong_code_sessions,
            sessions,
        }
    }

    fn free_users(&self) -> std::ops::RangeFrom<usize> {
        self.second_factor_users + self.wrong_code_users..
    }
}

/// Inserts the planned sessions, `options.concurrency` at a time; their tokens in plan order.
async fn insert_sessions(
    service: &Service,
    options: &SeedOptions,
    users: &[Seeded],
    plan: &SessionPlan,
) -> anyhow::Result<Vec<SessionToken>> {
    let now = service.clock().now();
    let ahead = now + time::Duration::seconds(options.second_factor_lead_seconds);
    let work: Arc<Vec<(UserId, SessionState, OffsetDateTime)>> = Arc::new(
        plan.sessions
            .iter()
            .map(|(user, state, _)| {
                let created_at = if *state == SessionState::SecondFactor {
                    ahead
                } else {
                    now
                };
                (users[*user].id, *state, created_at)
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let service = service.clone();
        let next = Arc::clone(&next);
        let work = Arc::clone(&work);
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((user_id, state, created_at)) = work.get(index).copied() else {
                    return anyhow::Ok(done);
                };
                let token = SessionToken::generate()?;
                insert_session(&service, &token, user_id, state, created_at).await?;
                done.push((index, token));
            }
        });
    }
    let mut all = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("a session task failed")??);
    }
    Ok(all.into_values().collect())
}

/// `PREFIX.users` (`email base_step codes…`), `PREFIX.second_factor` (`base_step codes…
/// token [token]`: the user's sessions in the order their codes must be used),
/// `PREFIX.wrong_code` (`base_step codes… token`: the codes to avoid) and
/// `PREFIX.authenticated` (`token`). `codes…` are the user's TOTP codes for steps `base_step`,
/// `base_step + 1`, … of 30 s.
fn write_files(
    service: &Service,
    options: &SeedOptions,
    users: &[Seeded],
    plan: &SessionPlan,
    tokens: &[SessionToken],
) -> anyhow::Result<()> {
    let base = unix_seconds(service.clock().now()) / 30;
    let window = |totp: &Totp| -> String {
        let mut line = base.to_string();
        for step in base..base + options.code_steps {
            line.push(' ');
            line.push_str(&totp.code_at_step(step));
        }
        line
    };
    let mut logins = open_output(&options.out, "users")?;
    for user in users.get(plan.free_users()).unwrap_or_default() {
        writeln!(logins, "{} {}", user.email, window(&user.totp))?;
    }
    logins.flush()?;
    let mut second_factor = open_output(&options.out, "second_factor")?;
    let mut wrong_code = open_output(&options.out, "wrong_code")?;
    let mut authenticated = open_output(&options.out, "authenticated")?;
    let mut pending_user: Option<(usize, String)> = None;
    for ((user, state, wrong), token) in plan.sessions.iter().zip(tokens) {
        match (state, wrong) {
            (SessionState::SecondFactor, false) => match &mut pending_user {
                Some((pending, line)) if pending == user => {
                    line.push(' ');
                    line.push_str(token.expose());
                }
                _ => {
                    if let Some((_, line)) = pending_user.take() {
                        writeln!(second_factor, "{line}")?;
                    }
                    let line = format!("{} {}", window(&users[*user].totp), token.expose());
                    pending_user = Some((*user, line));
                }
            },
            (SessionState::SecondFactor, true) => {
                writeln!(
                    wrong_code,
                    "{} {}",
                    window(&users[*user].totp),
                    token.expose()
                )?;
            }
            _ => writeln!(authenticated, "{}", token.expose())?,
        }
    }
    if let Some((_, line)) = pending_user {
        writeln!(second_factor, "{line}")?;
    }
    for file in [&mut second_factor, &mut wrong_code, &mut authenticated] {
        file.flush()?;
    }
    Ok(())
}

fn open_output(
    prefix: &Path,
    extension: &str,
) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!(".{extension}"));
    let path = PathBuf::from(name);
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(std::io::BufWriter::new(file))
}

fn unix_seconds(time: OffsetDateTime) -> u64 {
    u64::try_from(time.unix_timestamp()).unwrap_or(0)
}

/// The data directory as the server makes it: readable by this user only.
fn create_private_directory(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    Ok(())
}
