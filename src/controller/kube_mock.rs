//! A mock apiserver for the reconcilers' unit tests (`tower-test`): every request the
//! `kube::Client` sends is recorded as `METHOD path?query` with its JSON body, and answered by the
//! test's responder. Tests then compare the recorded calls with the exact calls a reconcile branch
//! must make.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `METHOD path?query`.
    pub line: String,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
}

/// What the responder answers: a status code and body, or `None` to never answer (a watch that
/// stays open).
pub type Answer = Option<(u16, Value)>;

/// The mock: a client, and the calls it made.
pub struct MockApi {
    /// A client whose requests go to the responder.
    pub client: kube::Client,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl MockApi {
    /// A mock answering with `respond(method, path, body)`.
    pub fn new(respond: impl Fn(&str, &str, &Value) -> Answer + Send + 'static) -> MockApi {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let content_type = request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let answer = respond(&method, &path, &body);
                recorded.lock().unwrap().push(Call {
                    line: format!("{method} {path}"),
                    content_type,
                    body,
                });
                match answer {
                    Some((code, value)) => send.send_response(
                        Response::builder()
                            .status(code)
                            .body(Body::from(serde_json::to_vec(&value).unwrap()))
                            .unwrap(),
                    ),
                    None => held.push(send),
                }
            }
        });
        MockApi {
            client: kube::Client::new(service, "default"),
            calls,
        }
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls so far, as `METHOD path?query` lines.
    pub fn lines(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.line).collect()
    }
}

/// A Kubernetes `Status` error body.
pub fn status_error(code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": reason, "reason": reason, "code": code,
    })
}
