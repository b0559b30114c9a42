//! A small ESMTP server on loopback for the tests: enough of RFC 5321 for lettre (EHLO, AUTH
//! PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT), recording every command and message, with
//! scripted answers to RCPT for the failure cases. It never offers STARTTLS.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The DATA section, dot-unstuffed, with CRLF line ends.
    pub data: String,
}

#[derive(Default)]
struct State {
    commands: Vec<String>,
    /// The decoded AUTH PLAIN responses (`\0user\0password`).
    auth: Vec<String>,
    received: Vec<Received>,
    /// Answers for the next RCPT commands; "250 2.1.5 OK" once they run out.
    rcpt_replies: VecDeque<String>,
}

pub struct FakeSmtp {
    pub port: u16,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSmtp {
    /// Listens on a free loopback port; `rcpt_replies` answer the first RCPT commands.
    pub async fn start(rcpt_replies: &[&str]) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            rcpt_replies: rcpt_replies.iter().map(|reply| reply.to_string()).collect(),
            ..State::default()
        }));
        let arrived = Arc::new(Notify::new());
        let (accept_state, accept_arrived) = (state.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, arrived) = (accept_state.clone(), accept_arrived.clone());
                tokio::spawn(async move {
                    // A client that hangs up early only ends its own session.
                    let _ = session(stream, state, arrived).await;
                });
            }
        });
        FakeSmtp {
            port,
            state,
            arrived,
            task,
        }
    }

    pub fn commands(&self) -> Vec<String> {
        self.state.lock().unwrap().commands.clone()
    }

    pub fn auth(&self) -> Vec<String> {
        self.state.lock().unwrap().auth.clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits (10 s at most) until `count` messages have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "{count} message(s) did not arrive; got {}",
                received.len()
            );
        }
    }
}

async fn session(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 fake.test ESMTP ready\r\n").await?;
    let (mut mail_from, mut rcpt_to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        state.lock().unwrap().commands.push(command.clone());
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => "250-fake.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 10485760"
                .to_owned(),
            "HELO" | "NOOP" => "250 OK".to_owned(),
            "RSET" => {
                (mail_from, rcpt_to) = (String::new(), Vec::new());
                "250 OK".to_owned()
            }
            "AUTH" => {
                let encoded = command.split_whitespace().nth(2).unwrap_or("");
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default();
                state.lock().unwrap().auth.push(decoded);
                "235 2.7.0 Authentication successful".to_owned()
            }
            "MAIL" => {
                mail_from = command[command.find(':').map_or(0, |at| at + 1)..]
                    .trim()
                    .to_owned();
                "250 2.1.0 OK".to_owned()
            }
            "RCPT" => {
                let reply = state
                    .lock()
                    .unwrap()
                    .rcpt_replies
                    .pop_front()
                    .unwrap_or_else(|| "250 2.1.5 OK".to_owned());
                if reply.starts_with('2') {
                    rcpt_to.push(
                        command[command.find(':').map_or(0, |at| at + 1)..]
                            .trim()
                            .to_owned(),
                    );
                }
                reply
            }
            "DATA" => {
                writer
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    let mut data_line = String::new();
                    if reader.read_line(&mut data_line).await? == 0 {
                        return Ok(());
                    }
                    if data_line == ".\r\n" {
                        break;
                    }
                    data.push_str(data_line.strip_prefix('.').unwrap_or(&data_line));
                }
                state.lock().unwrap().received.push(Received {
                    mail_from: mail_from.clone(),
                    rcpt_to: rcpt_to.clone(),
                    data,
                });
                arrived.notify_waiters();
                "250 2.0.0 OK queued".to_owned()
            }
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not recognised".to_owned(),
        };
        writer.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// A received message taken apart: its headers (unfolded) and its MIME parts, decoded.
#[derive(Debug)]
pub struct ParsedMail {
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
}

#[derive(Debug)]
pub struct Part {
    pub content_type: String,
    pub body: String,
}

impl ParsedMail {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    pub fn part(&self, content_type: &str) -> &Part {
        self.parts
            .iter()
            .find(|part| part.content_type.starts_with(content_type))
            .unwrap_or_else(|| panic!("no {content_type} part in {:?}", self.parts))
    }
}

fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'=' && index + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Parses a `multipart/alternative` message as lettre writes it.
pub fn parse_mail(data: &str) -> ParsedMail {
    let (headers, body) = split_headers(data);
    let content_type = header(&headers, "Content-Type").unwrap_or("").to_owned();
    let boundary = content_type
        .split(';')
        .find_map(|parameter| parameter.trim().strip_prefix("boundary="))
        .map(|boundary| boundary.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("not multipart: {content_type}"));
    let delimiter = format!("--{boundary}");
    let parts = body
        .split(&delimiter)
        .skip(1)
        .filter(|section| !section.starts_with("--"))
        .map(|section| {
            let (part_headers, part_body) = split_headers(section.trim_start_matches("\r\n"));
            let part_body = part_body.strip_suffix("\r\n").unwrap_or(part_body);
            let body = match header(&part_headers, "Content-Transfer-Encoding") {
                Some(encoding) if encoding.eq_ignore_ascii_case("quoted-printable") => {
                    decode_quoted_printable(part_body)
                }
                Some(encoding) if encoding.eq_ignore_ascii_case("base64") => String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(part_body.replace("\r\n", ""))
                        .unwrap(),
                )
                .unwrap(),
                _ => part_body.to_owned(),
            };
            Part {
                content_type: header(&part_headers, "Content-Type")
                    .unwrap_or("")
                    .to_owned(),
                body,
            }
        })
        .collect();
    ParsedMail { headers, parts }
}
