//! `sextant serve`: the suggestion API over real HTTP on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use crate::fixture::Workspace;

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
fn http(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_answers_suggestions_over_http_and_stops_on_sigterm() {
    let ws = Workspace::new();
    let mut child = ws
        .sextant()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sextant serve");
    let mut first_line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let address = first_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_string();

    let (status, body) = http(&address, "GET", "/healthz", "");
    assert_eq!((status, body.trim()), (200, "ok"));

    let request = serde_json::json!({
        "experiment": {"name": "http", "spec": {
            "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}],
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "grid"}}},
        "trials": [],
        "currentRequestNumber": 5
    });
    let (status, body) = http(&address, "POST", "/v1/suggestions", &request.to_string());
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let values: Vec<&str> = reply["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["parameterAssignments"][0]["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, vec!["1", "2", "3"]);
    assert_eq!(reply["exhausted"], true);

    let (status, body) = http(&address, "POST", "/v1/suggestions", "{}");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"field\""), "{body}");

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
}
