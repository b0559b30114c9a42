//! `twofold serve`: opens the database, creates the first administrator on an empty one, and
//! serves HTTP until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use twofold_core::accounts::FIRST_ADMIN_EMAIL;
use twofold_core::clock::SystemClock;
use twofold_core::hasher::{Argon2Settings, PasswordHasher};
use twofold_core::{Service, ServiceSettings};
use twofold_server::delivery::outbox::Outbox;
use twofold_server::{AppState, HttpSettings};

use crate::config::Config;
use crate::master_key;

const PURGE_INTERVAL: Duration = Duration::from_secs(300);

/// Opens the stores and starts the hashing pool.
pub async fn build_service(config: &Config, hashing_workers: usize) -> anyhow::Result<Service> {
    let stores = twofold_store::open(&config.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&config.database_url)))?;
    let argon2 = Argon2Settings {
        memory_kib: config.argon2_memory_kib,
        iterations: config.argon2_iterations,
        parallelism: 1,
    };
    let hasher = PasswordHasher::start(argon2, hashing_workers, config.hashing_queue)?;
    let settings = ServiceSettings {
        session_idle_timeout: time::Duration::minutes(config.session_idle_timeout_minutes),
        session_absolute_timeout: time::Duration::minutes(config.session_absolute_timeout_minutes),
        login_step_timeout: time::Duration::minutes(config.login_step_timeout_minutes),
        ..ServiceSettings::default()
    };
    Ok(Service::new(
        stores,
        hasher,
        Arc::new(SystemClock),
        settings,
    ))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging();
    if config.smtp_url.is_some() || config.sms_url.is_some() {
        bail!(
            "TWOFOLD_SMTP_URL and TWOFOLD_SMS_URL are not supported by this version yet; unset them to use the outbox"
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    master_key::load_or_create(&config.master_key_file)?;
    let service = build_service(&config, config.hashing_workers).await?;
    let first_admin = service
        .ensure_first_admin()
        .await
        .context("cannot create the first administrator")?;
    if let Some(password) = first_admin.and_then(|admin| admin.temporary_password) {
        // The one line the contract promises on stdout: ends with the temporary password.
        println!(
            "Created the first administrator {FIRST_ADMIN_EMAIL} with temporary password: {}",
            password.expose_secret()
        );
    }
    let outbox = Arc::new(
        Outbox::open(config.data_dir.join("outbox"))
            .context("cannot create the outbox directory")?,
    );
    let http = HttpSettings {
        public_url: config.public_url.clone(),
        body_limit_bytes: config.body_limit_bytes,
    };
    let state = AppState::new(service.clone(), http, outbox.clone(), outbox);
    let (app, _inventory) = twofold_server::app(state);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, public_url = %config.public_url, "serving");
    tokio::spawn(purge_sessions(service));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the HTTP server stopped")?;
    tracing::info!("stopped");
    Ok(())
}

async fn purge_sessions(service: Service) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    loop {
        interval.tick().await;
        match service.purge_expired_sessions().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "expired sessions deleted"),
            Err(error) => tracing::warn!(error = %error, "could not delete expired sessions"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TWOFOLD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("TWOFOLD_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A database URL without its password, for error messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
