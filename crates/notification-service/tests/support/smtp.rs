//! A small SMTP server inside the test, for what Mailpit cannot do on demand: go down and come
//! back on the same port, or refuse mail. It speaks enough ESMTP for lettre (EHLO, MAIL, RCPT,
//! DATA with dot-unstuffing, RSET, NOOP, QUIT) and keeps every message it accepted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    /// Answer every DATA with this (e.g. "550 mailbox unavailable") instead of accepting.
    reject_with: Option<String>,
}

pub struct SmtpSink {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: Option<JoinSet<()>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP sink");
        let addr = listener.local_addr().unwrap();
        let mut sink = Self {
            addr,
            state: Arc::default(),
            server: None,
        };
        sink.serve(listener);
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut set = JoinSet::new();
        let state = self.state.clone();
        set.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(session(socket, state.clone()));
            }
        });
        self.server = Some(set);
    }

    /// Stop listening and drop every open connection: the server is down.
    pub async fn stop(&mut self) {
        if let Some(mut set) = self.server.take() {
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
    }

    /// Listen again on the same port.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind SMTP sink");
        self.serve(listener);
    }

    pub fn reject_with(&self, reply: Option<&str>) {
        self.state.lock().unwrap().reject_with = reply.map(str::to_owned);
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn messages_to(&self, address: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .collect()
    }
}

fn address(arg: &str) -> String {
    arg.split_once(':')
        .map(|(_, a)| a)
        .unwrap_or(arg)
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
        .to_owned()
}

fn crlf(text: &str) -> Vec<u8> {
    format!("{text}\r\n").into_bytes()
}

async fn session(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(&crlf("220 sink ESMTP test")).await;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            "250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760".to_owned()
        } else if upper.starts_with("HELO") {
            "250 sink".to_owned()
        } else if upper.starts_with("MAIL FROM") {
            from = address(&command);
            to.clear();
            "250 OK".to_owned()
        } else if upper.starts_with("RCPT TO") {
            to.push(address(&command));
            "250 OK".to_owned()
        } else if upper == "DATA" {
            let _ = write
                .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                .await;
            let mut data = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let rejection = state.lock().unwrap().reject_with.clone();
            match rejection {
                Some(r) => r,
                None => {
                    state.lock().unwrap().messages.push(Received {
                        from: from.clone(),
                        to: to.clone(),
                        data,
                    });
                    "250 OK queued".to_owned()
                }
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            "250 OK".to_owned()
        } else if upper == "NOOP" {
            "250 OK".to_owned()
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            "502 command not implemented".to_owned()
        };
        if write.write_all(&crlf(&answer)).await.is_err() {
            return;
        }
    }
}
