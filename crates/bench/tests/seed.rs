//! The seeder's promise to the load scripts: the users in `PREFIX.users` sign in with the
//! password and the code of the current step, each line of `PREFIX.second_factor` takes its
//! sessions in order (current step, then the next), `PREFIX.wrong_code` sessions refuse a wrong
//! code, and `PREFIX.authenticated` tokens are live sessions — all through a service built on
//! the same data directory, as the server would be.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::Path;

use secrecy::SecretString;
use twofold_bench::seed::{self, SeedOptions};
use twofold_core::Service;
use twofold_core::factors::FactorError;
use twofold_core::session::{SessionState, SessionToken};
use twofold_core::user::Method;

const PASSWORD: &str = "correct horse battery staple";

fn lines(prefix: &Path, extension: &str) -> Vec<Vec<String>> {
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!(".{extension}"));
    std::fs::read_to_string(name)
        .unwrap()
        .lines()
        .map(|line| line.split(' ').map(str::to_owned).collect())
        .collect()
}

/// The code of the current step plus `ahead` from a line's window starting at `words[first]`.
fn code(service: &Service, words: &[String], first: usize, ahead: u64) -> String {
    let base: u64 = words[first].parse().unwrap();
    let step = u64::try_from(service.clock().now().unix_timestamp()).unwrap() / 30 + ahead;
    words[first + 1 + usize::try_from(step - base).unwrap()].clone()
}

async fn session_of(service: &Service, token: &str) -> twofold_core::login::ActiveSession {
    let token = SessionToken::parse(token).unwrap();
    service.resolve_session(&token).await.unwrap().unwrap()
}

#[tokio::test]
async fn seeded_users_and_sessions_work_as_the_load_scripts_use_them() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let url = format!("sqlite://{}", data.join("twofold.db").display());
    let out = directory.path().join("seed");
    let options = SeedOptions {
        data_dir: data.clone(),
        database_url: url.clone(),
        master_key_file: None,
        users: 6,
        second_factor_sessions: 3,
        wrong_code_sessions: 1,
        authenticated_sessions: 4,
        password: PASSWORD.to_owned(),
        out: out.clone(),
        concurrency: 4,
        code_steps: 41,
        draw_qr: false,
        second_factor_lead_seconds: 600,
    };
    let report = seed::run(&options).await.unwrap();
    assert_eq!((report.users, report.sessions), (6, 8));
    let service = twofold_bench::service::build(&url, &data.join("master.key"), 1)
        .await
        .unwrap();

    // Two users carry the three second-factor sessions, one the wrong-code session; the other
    // three are for logins.
    let users = lines(&out, "users");
    assert_eq!(users.len(), 3);
    assert_eq!(users[0].len(), 2 + 41);
    let password = SecretString::from(PASSWORD.to_owned());
    let step = service.login(&users[0][0], &password).await.unwrap();
    assert_eq!(step.state, SessionState::SecondFactor);
    let session = service.resolve_session(&step.token).await.unwrap().unwrap();
    let signed_in = service
        .verify_second_factor(&session, Method::Totp, &code(&service, &users[0], 1, 0))
        .await
        .unwrap();
    assert_eq!(signed_in.state, SessionState::Authenticated);

    let second_factor = lines(&out, "second_factor");
    assert_eq!(second_factor.len(), 2);
    assert_eq!(second_factor[0].len(), 1 + 41 + 2);
    assert_eq!(second_factor[1].len(), 1 + 41 + 1);
    for words in &second_factor {
        for (ahead, token) in words[42..].iter().enumerate() {
            let session = session_of(&service, token).await;
            assert_eq!(session.state, SessionState::SecondFactor);
            let ahead = u64::try_from(ahead).unwrap();
            let code = code(&service, words, 0, ahead);
            let step = service
                .verify_second_factor(&session, Method::Totp, &code)
                .await
                .unwrap();
            assert_eq!(step.state, SessionState::Authenticated);
        }
    }

    let wrong_code = lines(&out, "wrong_code");
    assert_eq!(wrong_code.len(), 1);
    let session = session_of(&service, &wrong_code[0][42]).await;
    let right = code(&service, &wrong_code[0], 0, 0);
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    assert!(matches!(
        service
            .verify_second_factor(&session, Method::Totp, &wrong)
            .await,
        Err(FactorError::InvalidCode)
    ));

    let authenticated = lines(&out, "authenticated");
    assert_eq!(authenticated.len(), 4);
    for words in &authenticated {
        let session = session_of(&service, &words[0]).await;
        assert_eq!(session.state, SessionState::Authenticated);
    }
}
