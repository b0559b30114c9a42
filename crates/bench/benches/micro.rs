//! Criterion micro-benchmarks of what a sign-in costs apart from the network:
//!
//! - `totp`: checking a TOTP code with a skew of one step (three HMAC-SHA1s, constant time);
//! - `recovery_code`: the CPU part of checking a recovery code (parsing what was typed, the
//!   SHA-256 over user id and code), and the store's conditional UPDATE for a code that is not
//!   there (a wrong guess) on SQLite;
//! - `session`: `SessionStore::session_by_id_hash` on a SQLite file holding 10,000 sessions, and
//!   `Service::resolve_session` end to end (session, user, policy cache) on it;
//! - `argon2id`: one verification at the default cost (m = 19,456 KiB, t = 2, p = 1), with the
//!   memory buffer kept across calls as the hashing workers do, and with a fresh allocation per
//!   call, for comparison.
//!
//! Run: `cargo bench -p twofold-bench` (or `-- --quick` for a short pass). The async store calls
//! are driven with `Runtime::block_on`; `session/block_on_baseline` is what that alone costs.

use std::hint::black_box;
use std::time::Duration;

use anyhow::Context;
use criterion::Criterion;
use twofold_bench::argon2_verify::{Memory, Verifier, default_params, phc_for};
use twofold_core::Service;
use twofold_core::email::Email;
use twofold_core::recovery::hash_recovery_code;
use twofold_core::session::{SessionState, SessionToken};
use twofold_core::store::{NewSession, NewUser, Stores};
use twofold_core::user::UserId;
use twofold_otp::{RecoveryCode, Secret, Totp, TotpCode, TotpParams};

/// Sessions in the database the session benchmarks read.
const SESSIONS: usize = 10_000;
/// Users those sessions belong to.
const USERS: usize = 100;

fn totp(c: &mut Criterion) -> anyhow::Result<()> {
    let totp = Totp::new(Secret::from_bytes(vec![7u8; 20]), TotpParams::default());
    let now = 1_800_000_000u64;
    let right = TotpCode::parse(&totp.code_at(now), 6)?;
    let mut group = c.benchmark_group("totp");
    group.bench_function("verify_skew_1", |b| {
        b.iter(|| black_box(totp.verify(black_box(&right), black_box(now), 1)))
    });
    group.bench_function("parse_and_verify_skew_1", |b| {
        b.iter(|| {
            let code = TotpCode::parse(black_box("123456"), 6).ok();
            black_box(code.and_then(|code| totp.verify(&code, now, 1)))
        })
    });
    group.finish();
    Ok(())
}

fn recovery_code(c: &mut Criterion, fixture: &Fixture) -> anyhow::Result<()> {
    let user = fixture.users[0];
    let typed = RecoveryCode::generate()?.display();
    let mut group = c.benchmark_group("recovery_code");
    group.bench_function("parse_and_hash", |b| {
        b.iter(|| {
            let code = RecoveryCode::parse(black_box(&typed)).ok();
            black_box(code.map(|code| hash_recovery_code(user, &code)))
        })
    });
    // A wrong guess: the conditional UPDATE finds no unused code with this hash.
    let unknown = [0u8; 32];
    group.bench_function("store_consume_unknown_sqlite", |b| {
        b.iter(|| {
            fixture.runtime.block_on(async {
                let now = fixture.service.clock().now();
                black_box(
                    fixture
                        .stores
                        .factors
                        .consume_recovery_code(user, &unknown, now)
                        .await
                        .ok(),
                )
            })
        })
    });
    group.finish();
    Ok(())
}

fn session(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("session");
    // What `block_on` alone costs, to subtract from the store benchmarks.
    group.bench_function("block_on_baseline", |b| {
        b.iter(|| fixture.runtime.block_on(async { black_box(0) }))
    });
    let mut next = 0usize;
    group.bench_function("session_by_id_hash_sqlite_10k", |b| {
        b.iter(|| {
            next = (next + 1) % fixture.tokens.len();
            let id_hash = fixture.tokens[next].id_hash();
            fixture.runtime.block_on(async {
                black_box(
                    fixture
                        .stores
                        .sessions
                        .session_by_id_hash(&id_hash)
                        .await
                        .ok(),
                )
            })
        })
    });
    group.bench_function("resolve_session_sqlite_10k", |b| {
        b.iter(|| {
            next = (next + 1) % fixture.tokens.len();
            let token = &fixture.tokens[next];
            fixture
                .runtime
                .block_on(async { black_box(fixture.service.resolve_session(token).await.ok()) })
        })
    });
    group.finish();
}

fn argon2id(c: &mut Criterion) -> anyhow::Result<()> {
    let params = default_params()?;
    let password = "correct horse battery staple";
    let phc = phc_for(password, params.clone())?;
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for (name, memory) in [
        ("verify_default_reused_buffer", Memory::Reused),
        ("verify_default_fresh_allocation", Memory::Fresh),
    ] {
        let mut verifier = Verifier::new(memory, &params);
        group.bench_function(name, |b| {
            b.iter(|| black_box(verifier.verify(password.as_bytes(), &phc).ok()))
        });
    }
    group.finish();
    Ok(())
}

/// A SQLite file database in a temporary directory with [`USERS`] users and [`SESSIONS`]
/// authenticated sessions, and a service on it.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    stores: Stores,
    service: Service,
    users: Vec<UserId>,
    tokens: Vec<SessionToken>,
    _directory: tempfile::TempDir,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let directory = tempfile::tempdir()?;
        let url = format!("sqlite://{}", directory.path().join("twofold.db").display());
        let key_file = directory.path().join("master.key");
        let stores = runtime.block_on(twofold_store::open(&url))?;
        let service = twofold_bench::service::build_on(stores.clone(), &key_file, 1)?;
        let (users, tokens) = runtime.block_on(fill(&stores, &service))?;
        Ok(Self {
            runtime,
            stores,
            service,
            users,
            tokens,
            _directory: directory,
        })
    }
}

/// [`USERS`] users sharing [`SESSIONS`] authenticated sessions, inserted 256 at a time.
async fn fill(
    stores: &Stores,
    service: &Service,
) -> anyhow::Result<(Vec<UserId>, Vec<SessionToken>)> {
    let now = service.clock().now();
    let mut users = Vec::with_capacity(USERS);
    for index in 0..USERS {
        let id = UserId::random();
        let email = Email::parse(&format!("micro{index}@example.com"))
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let user = NewUser {
            id,
            email,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            password_change_required: false,
            is_admin: false,
            require_2fa: false,
            created_at: now,
        };
        stores.users.insert_user(&user).await?;
        users.push(id);
    }
    let mut tokens = Vec::with_capacity(SESSIONS);
    let mut inserts = tokio::task::JoinSet::new();
    for index in 0..SESSIONS {
        let token = SessionToken::generate()?;
        let session = NewSession {
            id_hash: token.id_hash(),
            user_id: users[index % USERS],
            state: SessionState::Authenticated,
            created_at: now,
        };
        tokens.push(token);
        let stores = stores.clone();
        inserts.spawn(async move { stores.sessions.insert_session(&session).await });
        if inserts.len() >= 256 {
            inserts
                .join_next()
                .await
                .context("an insert vanished")???;
        }
    }
    while let Some(done) = inserts.join_next().await {
        done??;
    }
    Ok((users, tokens))
}

fn main() -> anyhow::Result<()> {
    let mut criterion = Criterion::default().configure_from_args();
    totp(&mut criterion)?;
    let fixture = Fixture::new()?;
    recovery_code(&mut criterion, &fixture)?;
    session(&mut criterion, &fixture);
    argon2id(&mut criterion)?;
    criterion.final_summary();
    Ok(())
}
