//! `twofold serve`: opens the database, creates the first administrator on an empty one, and
//! serves HTTP (with the delivery worker beside it) until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use twofold_core::accounts::FIRST_ADMIN_EMAIL;
use twofold_core::clock::SystemClock;
use twofold_core::hasher::{Argon2Settings, PasswordHasher};
use twofold_core::sealing::Sealer;
use twofold_core::store::{LockoutPolicy, Stores};
use twofold_core::{Senders, Service, ServiceSettings};
use twofold_server::delivery::outbox::Outbox;
use twofold_server::listener::ConnectionLimits;
use twofold_server::{AppState, HttpSettings};

use crate::config::Config;
use crate::delivery::{DeliverySetup, log_destinations};
use crate::master_key;

/// tokio-postgres logs statement parameters (password hashes, emails) at debug level and
/// server notices at info: only its warnings and errors are logged, whatever TWOFOLD_LOG says.
const POSTGRES_LOG_CAP: &str = "tokio_postgres=warn";

const PURGE_INTERVAL: Duration = Duration::from_secs(300);
const MESSAGE_EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// Opens (and migrates) the database the configuration names.
pub async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    twofold_store::open(&config.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&config.database_url)))
}

/// The sealer under the master key and the retired ones beside it (see `master_key`). The key
/// file is created on first use, but never while the database holds secrets sealed under a key,
/// and key files that do not hold every key those secrets need are refused: either would leave
/// second factors unusable. The sealer re-reads the files after `twofold keys rotate`.
pub async fn load_sealer(config: &Config, stores: &Stores) -> anyhow::Result<Sealer> {
    let path = &config.master_key_file;
    let needed = stores
        .factors
        .sealed_key_ids()
        .await
        .context("cannot read which master keys the database needs")?;
    if !path.exists() && !needed.is_empty() {
        anyhow::bail!(
            "the master key file {} is missing, but the database holds secrets sealed with key {}; restore the file (or point TWOFOLD_MASTER_KEY_FILE at it)",
            path.display(),
            needed.join(", ")
        );
    }
    master_key::load_or_create(path)?;
    let (keys, loader) = master_key::FileKeyLoader::start(path)?;
    if let Some(unknown) = needed
        .iter()
        .find(|id| !keys.key_ids().any(|loaded| loaded == id.as_str()))
    {
        anyhow::bail!(
            "the master key file {} holds key {} (retired keys beside it: {}), but the database holds secrets sealed with key {unknown}; use the right key file",
            path.display(),
            keys.current_key_id(),
            keys.key_ids().skip(1).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(Sealer::from_ring(keys).with_loader(Box::new(loader)))
}

/// The service and the delivery set-up its senders come from.
pub struct Built {
    pub service: Service,
    pub delivery: DeliverySetup,
}

/// Opens the stores, starts the hashing pool and sets up delivery (the outbox, or the queue
/// in front of SMTP and the SMS gateway).
pub async fn build_service(config: &Config, hashing_workers: usize) -> anyhow::Result<Built> {
    // Before the database: SQLite would otherwise create the directory with the umask's mode.
    create_private_directory(&config.data_dir)?;
    let stores = open_stores(config).await?;
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
        totp_issuer: config.totp_issuer.clone(),
        totp_skew_steps: config.totp_skew_steps,
        recovery_code_count: config.recovery_code_count,
        public_url: config.public_url.as_str().trim_end_matches('/').to_owned(),
        sms_inbound_number: config
            .sms_inbound
            .as_ref()
            .map(|inbound| inbound.number.clone()),
        ip_lockout: (config.ip_free_failures > 0).then_some(LockoutPolicy {
            free_failures: config.ip_free_failures,
            ..twofold_core::throttle::IP_LOCKOUT_POLICY
        }),
        attachment_limit_bytes: config.attachment_limit_bytes,
        ..ServiceSettings::default()
    };
    let sealer = Arc::new(load_sealer(config, &stores).await?);
    let outbox = Arc::new(
        Outbox::open(config.data_dir.join("outbox"))
            .context("cannot create the outbox directory")?,
    );
    // The key was loaded and checked against the database once, above.
    let delivery = DeliverySetup::from_config(config, &stores, Arc::clone(&sealer), outbox)?;
    let senders = Senders {
        mailer: delivery.mailer.clone(),
        sms: delivery.sms.clone(),
    };
    let service = Service::new(
        stores,
        hasher,
        Arc::new(SystemClock),
        sealer,
        settings,
        senders,
    );
    Ok(Built { service, delivery })
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging();
    let Built { service, delivery } = build_service(&config, config.hashing_workers).await?;
    let http = HttpSettings {
        public_url: config.public_url.clone(),
        body_limit_bytes: config.body_limit_bytes,
        inbound_sms_token: config
            .sms_inbound
            .as_ref()
            .map(|inbound| inbound.token.clone()),
        client_ip: config.client_ip.clone(),
    };
    let state = AppState::new(service.clone(), http);
    let (app, _inventory) = twofold_server::app(state.clone());
    // Bind before creating the first administrator, so its one-time password is never printed
    // by a server that then fails to start.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (TWOFOLD_METRICS_LISTEN)"))?,
        ),
        None => None,
    };
    let first_admin = service
        .ensure_first_admin()
        .await
        .context("cannot create the first administrator")?;
    if let Some(password) = first_admin.and_then(|admin| admin.temporary_password) {
        // The one line the contract promises on stdout: ends with the temporary password.
        out!(
            "Created the first administrator {FIRST_ADMIN_EMAIL} with temporary password: {}",
            password.expose_secret()
        );
    }
    tracing::info!(listen = %config.listen, public_url = %config.public_url, "serving");
    log_destinations(&config);
    let worker = delivery.worker(Arc::new(SystemClock));
    tokio::spawn(worker.with_metrics(Arc::clone(service.metrics())).run());
    if let Some(listener) = metrics_listener {
        tracing::info!(listen = ?listener.local_addr().ok(), "serving metrics at /metrics");
        // Its own listener, so a proxy in front of the public one never publishes it.
        let metrics = twofold_server::metrics::router(state);
        let limits = ConnectionLimits {
            max_connections: 64,
            ..ConnectionLimits::default()
        };
        let forever = std::future::pending::<()>();
        tokio::spawn(twofold_server::listener::serve(
            listener, metrics, limits, forever,
        ));
    }
    tokio::spawn(purge_periodically(
        service,
        time::Duration::days(config.audit_retention_days),
    ));
    let limits = ConnectionLimits {
        max_connections: config.max_connections,
        ..ConnectionLimits::default()
    };
    twofold_server::listener::serve(listener, app, limits, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Deletes what has outlived its use: expired sessions, old code sends, and audit entries
/// past `audit_retention`.
async fn purge_periodically(service: Service, audit_retention: time::Duration) {
    tokio::spawn(expire_messages_periodically(service.clone()));
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    loop {
        interval.tick().await;
        match service.purge_expired_sessions().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "expired sessions deleted"),
            Err(error) => tracing::warn!(error = %error, "could not delete expired sessions"),
        }
        match service.purge_old_code_sends().await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "old code sends forgotten"),
            Err(error) => tracing::warn!(error = %error, "could not forget old code sends"),
        }
        match service.purge_old_audit_entries(audit_retention).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "audit entries past retention deleted"),
            Err(error) => tracing::warn!(error = %error, "could not delete old audit entries"),
        }
    }
}

/// Erases the content of secure messages past their expiry (a read in between is refused and
/// erases at once; this catches the unread ones), every minute.
async fn expire_messages_periodically(service: Service) {
    let mut interval = tokio::time::interval(MESSAGE_EXPIRY_INTERVAL);
    loop {
        interval.tick().await;
        match service.expire_messages().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "expired secure messages erased"),
            Err(error) => tracing::warn!(error = %error, "could not erase expired secure messages"),
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive(POSTGRES_LOG_CAP.parse().unwrap_or_default());
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

/// Creates the data directory readable by this user only (it holds password hashes and the
/// master key), and warns when an existing one is open to others.
pub fn create_private_directory(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the data directory can be read by other users; consider chmod 700");
    }
    Ok(())
}
