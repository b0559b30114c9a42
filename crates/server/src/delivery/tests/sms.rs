//! Text messages through the queue to an axum app on loopback that plays the gateway and
//! records the exact requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use time::OffsetDateTime;
use twofold_core::delivery::{SmsMessage, SmsSender};
use uuid::Uuid;

use super::{Harness, gave_up};
use crate::delivery::sms_gateway::{SmsGateway, SmsGatewaySettings};
use crate::delivery::transport::{SmsTransport, TransportError};

const SID: &str = "AC0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone)]
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Request {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

#[derive(Default)]
struct GatewayState {
    requests: Mutex<Vec<Request>>,
    /// Answers for the next requests; 201 with `{}` once they run out.
    answers: Mutex<VecDeque<(StatusCode, &'static str)>>,
}

struct Gateway {
    base: String,
    state: Arc<GatewayState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gateway {
    async fn start(answers: &[(StatusCode, &'static str)]) -> Gateway {
        let state = Arc::new(GatewayState {
            answers: Mutex::new(answers.iter().copied().collect()),
            ..GatewayState::default()
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Gateway { base, state, task }
    }

    fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }
}

async fn record(
    State(state): State<Arc<GatewayState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], &'static str) {
    state.requests.lock().unwrap().push(Request {
        method,
        uri,
        headers,
        body,
    });
    let (status, body) = state
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((StatusCode::CREATED, "{}"));
    (status, [("content-type", "application/json")], body)
}

fn code_sms() -> SmsMessage {
    SmsMessage {
        to: "+441212345678".into(),
        body: "Your Twofold code is 123456".into(),
    }
}

fn gateway(settings: SmsGatewaySettings) -> Arc<SmsGateway> {
    Arc::new(SmsGateway::new(settings).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_webhook_gets_to_and_body_with_the_bearer_token() {
    let server = Gateway::start(&[]).await;
    let harness = Harness::new().await;
    let settings = SmsGatewaySettings::parse(
        &format!("{}/hooks/sms?account=7", server.base),
        Some("tok-123"),
        None,
    )
    .unwrap();
    let worker = harness.worker(None, Some(gateway(settings)));
    harness
        .queue
        .send_sms(&code_sms(), harness.now())
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.uri.path(), "/hooks/sms");
    assert_eq!(request.uri.query(), Some("account=7"));
    assert_eq!(request.header("authorization"), "Bearer tok-123");
    assert_eq!(request.header("content-type"), "application/json");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"to": "+441212345678", "body": "Your Twofold code is 123456"})
    );
    assert_eq!(harness.pending().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_a_token_gets_no_authorization_header() {
    let server = Gateway::start(&[(StatusCode::OK, "ok")]).await;
    let transport =
        gateway(SmsGatewaySettings::parse(&format!("{}/sms", server.base), None, None).unwrap());
    transport
        .send_sms(Uuid::new_v4(), &code_sms(), OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert!(server.requests()[0].headers.get("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_gets_the_messages_form_with_basic_auth() {
    let server = Gateway::start(&[]).await;
    let harness = Harness::new().await;
    let settings = SmsGatewaySettings::parse(
        &format!("twilio://{SID}:auth%2Ftoken@+14155550100"),
        None,
        Some(&server.base),
    )
    .unwrap();
    let worker = harness.worker(None, Some(gateway(settings)));
    harness
        .queue
        .send_sms(&code_sms(), harness.now())
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(
        request.uri.path(),
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:auth/token"));
    assert_eq!(request.header("authorization"), format!("Basic {expected}"));
    assert_eq!(
        request.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert_eq!(
        fields,
        [
            ("To".to_owned(), "+441212345678".to_owned()),
            ("From".to_owned(), "+14155550100".to_owned()),
            ("Body".to_owned(), "Your Twofold code is 123456".to_owned()),
        ]
    );
    assert_eq!(harness.pending().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_decide_between_sent_retry_and_giving_up() {
    let cases = [
        (StatusCode::OK, Ok(())),
        (StatusCode::CREATED, Ok(())),
        (StatusCode::ACCEPTED, Ok(())),
        (StatusCode::BAD_REQUEST, Err(true)),
        (StatusCode::UNAUTHORIZED, Err(true)),
        (StatusCode::NOT_FOUND, Err(true)),
        (StatusCode::FOUND, Err(true)),
        (StatusCode::TOO_MANY_REQUESTS, Err(false)),
        (StatusCode::INTERNAL_SERVER_ERROR, Err(false)),
        (StatusCode::SERVICE_UNAVAILABLE, Err(false)),
    ];
    let answers: Vec<_> = cases.iter().map(|(status, _)| (*status, "{}")).collect();
    let server = Gateway::start(&answers).await;
    let transport =
        gateway(SmsGatewaySettings::parse(&format!("{}/sms", server.base), None, None).unwrap());
    for (status, expected) in cases {
        let outcome = transport
            .send_sms(Uuid::new_v4(), &code_sms(), OffsetDateTime::UNIX_EPOCH)
            .await;
        match (outcome, expected) {
            (Ok(()), Ok(())) => {}
            (Err(error), Err(permanent)) => {
                assert_eq!(error.is_permanent(), permanent, "{status}: {error}");
                assert!(error.to_string().contains(status.as_str()), "{error}");
            }
            (outcome, expected) => panic!("{status}: got {outcome:?}, expected {expected:?}"),
        }
    }

    // Nobody listening: a network error, retried.
    drop(server);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = gateway(
        SmsGatewaySettings::parse(
            &format!("http://127.0.0.1:{port}/sms?key=s3cret"),
            None,
            None,
        )
        .unwrap(),
    );
    let error = unreachable
        .send_sms(Uuid::new_v4(), &code_sms(), OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Retry(_)), "{error}");
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_refusal_keeps_its_error_code_but_not_its_answer() {
    let refusal = r#"{"code": 21211, "message": "The 'To' number +441212345678 is not a valid phone number.", "status": 400}"#;
    let server = Gateway::start(&[(StatusCode::BAD_REQUEST, refusal)]).await;
    let harness = Harness::new().await;
    let settings = SmsGatewaySettings::parse(
        &format!("twilio://{SID}:token@+14155550100"),
        None,
        Some(&server.base),
    )
    .unwrap();
    let worker = harness.worker(None, Some(gateway(settings)));
    harness
        .queue
        .send_sms(&code_sms(), harness.now())
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);

    let failure = harness.only_failure().await;
    assert!(gave_up(&failure), "{failure:?}");
    assert_eq!(
        failure.last_error,
        "the SMS gateway answered 400 Bad Request (Twilio error 21211)"
    );
    assert_eq!(failure.recipient, "+441212345678");
    assert_eq!(
        harness
            .database
            .query_i64("SELECT COUNT(*) FROM deliveries WHERE sealed_payload IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_gateway_is_retried_until_it_takes_the_message() {
    let server = Gateway::start(&[
        (StatusCode::SERVICE_UNAVAILABLE, "{}"),
        (StatusCode::TOO_MANY_REQUESTS, "{}"),
    ])
    .await;
    let harness = Harness::new().await;
    let settings = SmsGatewaySettings::parse(&format!("{}/sms", server.base), None, None).unwrap();
    let worker = harness.worker(None, Some(gateway(settings)));
    harness
        .queue
        .send_sms(&code_sms(), harness.now())
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);
    harness.clock.advance_seconds(5);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert_eq!(harness.only_failure().await.attempts, 2);
    harness.clock.advance_seconds(9);
    assert_eq!(
        worker.run_once().await.unwrap(),
        0,
        "the second wait is 10 s"
    );
    harness.clock.advance_seconds(1);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(harness.pending().await, 0);
}
