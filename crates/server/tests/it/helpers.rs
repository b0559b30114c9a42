//! `spawn_app`: the real router on a random port over a fresh database, with a manual clock, and
//! small HTTP helpers.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::{Client, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use twofold_core::accounts::NewAccount;
use twofold_core::clock::ManualClock;
use twofold_core::hasher::{Argon2Settings, PasswordHasher};
use twofold_core::sealing::{MasterKey, Sealer};
use twofold_core::{Senders, Service, ServiceSettings};
use twofold_server::delivery::outbox::Outbox;
use twofold_server::gate::RouteEntry;
use twofold_server::{AppState, HttpSettings};
use twofold_store::testing::TestDatabase;

pub const PASSWORD: &str = "correct horse battery staple";
/// The master key of test servers; two servers over one database must share it.
pub const MASTER_KEY: [u8; 32] = [7u8; 32];

/// Which database a case runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: SocketAddr,
    pub service: Service,
    pub clock: ManualClock,
    pub inventory: Vec<RouteEntry>,
    /// What the router was built with (the metrics listener's router takes it too).
    pub state: AppState,
    pub database: TestDatabase,
    /// Where this server's emails and text messages go.
    pub outbox_dir: std::path::PathBuf,
    _data: tempfile::TempDir,
}

pub struct Options {
    pub public_url: Option<String>,
    pub argon2: Argon2Settings,
    pub body_limit_bytes: usize,
    /// The system number for inbound phone checks and the webhook's signing token.
    pub sms_inbound: Option<(String, String)>,
    /// The per-client-address limit (`None`: off).
    pub ip_lockout: Option<twofold_core::store::LockoutPolicy>,
    /// Trusted proxies and the client-address header.
    pub client_ip: twofold_server::context::ClientIpSettings,
    /// The largest secure-message attachment.
    pub attachment_limit_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            public_url: None,
            argon2: Argon2Settings::default(),
            body_limit_bytes: 64 * 1024,
            sms_inbound: None,
            ip_lockout: ServiceSettings::default().ip_lockout,
            client_ip: Default::default(),
            attachment_limit_bytes: ServiceSettings::default().attachment_limit_bytes,
        }
    }
}

/// `None` when PostgreSQL cases are skipped (`TWOFOLD_TEST_POSTGRES=skip`).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, Options::default()).await
}

pub async fn spawn_app_with(backend: Backend, options: Options) -> Option<TestApp> {
    let database = match backend {
        Backend::Sqlite => TestDatabase::sqlite(),
        Backend::Postgres => TestDatabase::postgres().await?,
    };
    Some(start_on(database, options).await)
}

/// Starts a (further) server over an existing database.
pub async fn start_on(database: TestDatabase, options: Options) -> TestApp {
    let stores = database.open().await;
    let clock = ManualClock::at_unix(1_800_000_000);
    let hasher = PasswordHasher::start(options.argon2, 2, 64).unwrap();
    let sealer = Sealer::new(MasterKey::new(&zeroize::Zeroizing::new(MASTER_KEY)));
    let data = tempfile::tempdir().unwrap();
    let outbox_dir = data.path().join("outbox");
    let outbox = Arc::new(Outbox::open(&outbox_dir).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let public_url = options
        .public_url
        .unwrap_or_else(|| format!("http://{address}"));
    let settings = ServiceSettings {
        totp_issuer: "Twofold Test".into(),
        public_url: public_url.trim_end_matches('/').to_owned(),
        sms_inbound_number: options
            .sms_inbound
            .as_ref()
            .map(|(number, _)| number.clone()),
        ip_lockout: options.ip_lockout,
        attachment_limit_bytes: options.attachment_limit_bytes,
        ..ServiceSettings::default()
    };
    let senders = Senders {
        mailer: outbox.clone(),
        sms: outbox,
    };
    let service = Service::new(
        stores,
        hasher,
        Arc::new(clock.clone()),
        Arc::new(sealer),
        settings,
        senders,
    );
    let http = HttpSettings {
        public_url: public_url.parse().unwrap(),
        body_limit_bytes: options.body_limit_bytes,
        inbound_sms_token: options
            .sms_inbound
            .map(|(_, token)| SecretString::from(token)),
        client_ip: options.client_ip,
    };
    let state = AppState::new(service.clone(), http);
    let (router, inventory) = twofold_server::app(state.clone());
    // With the peer address, as the real accept loop gives it, for the audit log.
    let router = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestApp {
        address,
        service,
        clock,
        inventory,
        state,
        database,
        outbox_dir,
        _data: data,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// A browser-like client with its own cookie jar that does not follow redirects.
    pub fn client(&self) -> Client {
        Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub async fn create_user(
        &self,
        email: &str,
        password: Option<&str>,
        require_2fa: bool,
    ) -> Option<String> {
        let password = password.map(|text| SecretString::from(text.to_owned()));
        let created = self
            .service
            .create_account(
                None,
                NewAccount {
                    email,
                    password: password.as_ref(),
                    is_admin: false,
                    require_2fa,
                },
            )
            .await
            .unwrap();
        created
            .temporary_password
            .map(|secret| secrecy::ExposeSecret::expose_secret(&secret).to_owned())
    }

    pub async fn post(&self, client: &Client, path: &str, body: Value) -> Response {
        client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.unwrap()
    }

    /// The messages in the outbox to `to` (an address or an E.164 number), oldest first.
    pub fn messages_to(&self, to: &str) -> Vec<Value> {
        let mut files: Vec<_> = match std::fs::read_dir(&self.outbox_dir) {
            Ok(entries) => entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                .collect(),
            Err(_) => Vec::new(),
        };
        // The manual clock names files alike; the order they were written in is the mtime's.
        files.sort_by_key(|path| std::fs::metadata(path).unwrap().modified().unwrap());
        files
            .iter()
            .map(|path| serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()).unwrap())
            .filter(|message| message["to"] == to)
            .collect()
    }

    /// The one-time code in the latest message to `to`: the run of six digits in its body.
    pub fn latest_code(&self, to: &str) -> String {
        let messages = self.messages_to(to);
        let message = messages
            .last()
            .unwrap_or_else(|| panic!("no message to {to}"));
        code_in(message["body"].as_str().unwrap()).unwrap_or_else(|| panic!("no code in {message}"))
    }

    pub async fn login(&self, client: &Client, email: &str, password: &str) -> Response {
        self.post(
            client,
            "/api/v1/login",
            json!({"email": email, "password": password}),
        )
        .await
    }
}

/// The first run of exactly six digits in a message body.
pub fn code_in(body: &str) -> Option<String> {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_owned)
}

/// The session cookie a response set.
pub fn session_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.contains("twofold_session="))
        .and_then(|cookie| cookie.split(';').next())
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
}

/// Asserts a contract error: status and `{"error": code, "message": …}`.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{body}"
    );
    body
}

/// Runs a case on SQLite and on PostgreSQL as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use $crate::helpers::Backend;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$case(Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$case(Backend::Postgres).await;
                }
            }
        )*
    };
}
