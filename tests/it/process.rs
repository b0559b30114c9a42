//! Running the real binary: `twofold serve` in the background and `twofold user …` to completion.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use twofold_store::testing::TestDatabase;

pub const PASSWORD: &str = "correct horse battery staple";

/// A data directory and a database that several processes share.
pub struct Installation {
    pub data_dir: tempfile::TempDir,
    pub database: TestDatabase,
}

/// `None` when PostgreSQL cases are skipped.
pub async fn installation(postgres: bool) -> Option<Installation> {
    let database = if postgres {
        TestDatabase::postgres().await?
    } else {
        TestDatabase::sqlite()
    };
    Some(Installation {
        data_dir: tempfile::tempdir().unwrap(),
        database,
    })
}

impl Installation {
    /// `twofold` with this installation's data directory and database.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_twofold"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TWOFOLD_DATA_DIR", self.data_dir.path())
            .env("TWOFOLD_DATABASE_URL", self.database.url())
            .env("TWOFOLD_LOG", "warn");
        command
    }

    /// Runs `twofold ARGS…`, feeding `stdin`.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_with_env(args, stdin, &[])
    }

    /// Like [`Self::run`], with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// Starts `twofold serve` on a free port and waits until it answers `/healthz`.
    pub async fn serve(&self) -> Server {
        self.serve_logging_to(None).await
    }

    /// Like [`Self::serve`], with the server's log (at debug level) written to `log`.
    pub async fn serve_logging_to(&self, log: Option<&Path>) -> Server {
        self.serve_with(log, &[]).await
    }

    /// Like [`Self::serve_logging_to`], with extra environment variables.
    pub async fn serve_with(&self, log: Option<&Path>, env: &[(&str, &str)]) -> Server {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = self
            .command()
            .arg("serve")
            .envs(env.iter().copied())
            .env("TWOFOLD_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .env("TWOFOLD_LOG", if log.is_some() { "debug" } else { "warn" })
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_sender.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            lines,
        };
        let started = Instant::now();
        loop {
            let health = reqwest::get(server.url("/healthz")).await;
            if health.is_ok_and(|response| response.status() == reqwest::StatusCode::OK) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }
}

pub struct Server {
    child: Child,
    pub base: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every line printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// The next line printed on stdout, waiting for the thread that reads it (the server
    /// prints before it answers `/healthz`, but the reader may not have passed it on yet).
    pub fn next_stdout_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the server printed no line")
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The temporary password at the end of a "… with temporary password: X" line.
pub fn temporary_password(line: &str) -> String {
    assert!(line.contains("temporary password"), "{line}");
    line.split_whitespace().last().unwrap().to_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_twofold"))
}

/// Runs a case on SQLite and on PostgreSQL as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$case(false).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$case(true).await;
                }
            }
        )*
    };
}

/// Signs `email` in with `password` from a new browser (a client with its own cookie jar):
/// the browser, and the login's answer.
pub async fn password_step(
    server: &Server,
    email: &str,
    password: &str,
) -> (reqwest::Client, serde_json::Value) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = client
        .post(server.url("/api/v1/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (client, login)
}
