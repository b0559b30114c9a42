//! A minimal SMTP server for the binary's tests: answers EHLO, MAIL, RCPT, DATA and QUIT on a
//! given loopback port and hands each message's DATA (dot-unstuffed) to a channel.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub struct SmtpServer {
    pub messages: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start(port: u16) -> SmtpServer {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (sender, messages) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let _ = session(stream, sender).await;
            });
        }
    });
    SmtpServer { messages, task }
}

async fn session(
    stream: TcpStream,
    messages: mpsc::UnboundedSender<String>,
) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 test ESMTP\r\n").await?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-test\r\n250 8BITMIME\r\n",
            "DATA" => {
                writer.write_all(b"354 go on\r\n").await?;
                let mut data = String::new();
                loop {
                    let mut data_line = String::new();
                    if reader.read_line(&mut data_line).await? == 0 || data_line == ".\r\n" {
                        break;
                    }
                    data.push_str(data_line.strip_prefix('.').unwrap_or(&data_line));
                }
                let _ = messages.send(data);
                b"250 queued\r\n"
            }
            "QUIT" => {
                writer.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 OK\r\n",
        };
        writer.write_all(reply).await?;
    }
}
