//! A fake Sextant metrics endpoint on `127.0.0.1` (std only) and a `sextant-collector` command
//! builder.
//!
//! The server speaks just enough HTTP/1.1 for the collector and Python's urllib: keep-alive
//! connections, `Content-Length` bodies. It answers from a script (e.g. 503 for the first N
//! requests) and then with a default reply, and records every request.
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const EXPERIMENT: &str = "exp";
pub const TRIAL: &str = "exp-0001";
pub const TOKEN: &str = "trial-token";

/// One answer of the fake server.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn ok() -> Self {
        Self {
            status: 200,
            body: r#"{"accepted":1}"#.into(),
        }
    }

    /// An error in the contract's shape.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        let body = serde_json::json!({"error": {"code": code, "message": message, "field": null}});
        Self {
            status,
            body: body.to_string(),
        }
    }
}

/// A request the server saw, and the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
    pub status: u16,
}

#[derive(Default)]
struct Script {
    first: VecDeque<Reply>,
    then: Option<Reply>,
    seen: Vec<Recorded>,
}

/// The fake server; it runs until the test process ends.
#[derive(Clone)]
pub struct FakeServer {
    port: u16,
    script: Arc<Mutex<Script>>,
}

impl FakeServer {
    /// Answers 200 to everything.
    pub fn start() -> Self {
        Self::scripted(0, Vec::new(), Reply::ok())
    }

    /// Answers `first` in order, then `then`, on `port` (0: any free port).
    pub fn scripted(port: u16, first: Vec<Reply>, then: Reply) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the fake server");
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script {
            first: first.into(),
            then: Some(then),
            seen: Vec::new(),
        }));
        let shared = Arc::clone(&script);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let script = Arc::clone(&shared);
                std::thread::spawn(move || serve_connection(stream, &script));
            }
        });
        Self { port, script }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().unwrap().seen.clone()
    }

    /// Every observation of the requests answered 200, in order.
    pub fn delivered(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|request| request.status == 200)
            .flat_map(|request| {
                let body: Value = serde_json::from_str(&request.body).expect("JSON body");
                body["observations"].as_array().cloned().unwrap_or_default()
            })
            .collect()
    }

    /// `(metricName, value, step)` of every delivered observation.
    pub fn delivered_triples(&self) -> Vec<(String, f64, i64)> {
        self.delivered()
            .iter()
            .map(|o| {
                (
                    o["metricName"].as_str().unwrap().to_owned(),
                    o["value"].as_f64().unwrap(),
                    o["step"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

/// A port that was free a moment ago, for a server that starts later.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve_connection(stream: TcpStream, script: &Mutex<Script>) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut content_length = 0;
        let mut authorization = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim().to_owned();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => content_length = value.parse().unwrap_or(0),
                    "authorization" => authorization = Some(value),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let reply = {
            let mut script = script.lock().unwrap();
            let reply = script
                .first
                .pop_front()
                .or_else(|| script.then.clone())
                .unwrap_or_else(Reply::ok);
            script.seen.push(Recorded {
                method,
                path,
                authorization,
                body: String::from_utf8_lossy(&body).into_owned(),
                status: reply.status,
            });
            reply
        };
        let response = format!(
            "HTTP/1.1 {} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: keep-alive\r\n\r\n{}",
            reply.status,
            reply.body.len(),
            reply.body
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// `sextant-collector` with the trial's environment pointing at `endpoint`, and nothing from the
/// test's own environment that could change the outcome.
pub fn collector(endpoint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sextant-collector"));
    command
        .env("SEXTANT_ENDPOINT", endpoint)
        .env("SEXTANT_TRIAL", TRIAL)
        .env("SEXTANT_TOKEN", TOKEN)
        .env_remove("SEXTANT_EXPERIMENT")
        .env_remove("SEXTANT_METRICS");
    for proxy in [
        "http_proxy",
        "HTTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
    ] {
        command.env_remove(proxy);
    }
    command
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Panics with the collector's output unless `check` holds.
pub fn assert_output(output: &Output, check: bool, what: &str) {
    assert!(
        check,
        "{what}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// Polls `condition` every 10 ms for up to `timeout`.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

/// Lines in the JSON-lines files of `dir` (0 when there is no such directory).
pub fn spooled_lines(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|contents| contents.lines().count())
        .sum()
}
