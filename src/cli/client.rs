//! A small blocking client for the HTTP API of `sextant serve` (the contract of issue 5).
//!
//! The CLI sends a handful of requests per command, so a blocking client (ureq, built without TLS)
//! is enough; async callers run it off the runtime's threads. Every failure becomes a
//! [`ClientError`] that already reads well for people: the server's own
//! `{"error": {code, message, field}}`, a connection that could not be made, or a 401/403 that
//! says where the admin token comes from. Which 404s mean "no such experiment" is decided by the
//! callers, which know what they asked for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sextant_collector::Observation;

use super::CliError;
use crate::store::{ExperimentRecord, TrialRecord, TrialState};
use crate::view::ExperimentView;

/// Where `submit` and `watch` look for a server when neither `--server` nor `SEXTANT_SERVER` is
/// set: `sextant serve`'s default `--listen` address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:6789";

/// Environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "SEXTANT_ADMIN_TOKEN";

/// File in the data directory where `sextant serve` writes the token it generated.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// A server that does not accept a connection in this long is taken as absent (loopback or LAN:
/// a live server accepts in milliseconds).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one request may take. The slowest ones are a page of full trial records and a
/// trial's whole metric series, both well under a second on a local server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest response body read. ureq's default cap (10 MB) is smaller than the full series of a
/// trial that logged a few hundred thousand points, which `sextant metrics` asks for.
const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// Trials asked for per page when listing them. The server caps pages at 10,000; 1,000 records
/// keep one response to a few MB.
pub const TRIALS_PAGE_SIZE: usize = 1000;

/// The admin token and where it came from, so a refusal can say what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// From `SEXTANT_ADMIN_TOKEN`.
    FromEnv(String),
    /// From a file (`<data-dir>/admin-token`).
    FromFile {
        /// The token.
        token: String,
        /// The file.
        path: PathBuf,
    },
    /// None found; this is where the file was looked for.
    Missing(PathBuf),
}

impl AdminToken {
    /// `SEXTANT_ADMIN_TOKEN` if set, else `<data-dir>/admin-token` if it exists.
    pub fn find(data_dir: &Path) -> Result<AdminToken, CliError> {
        let from_env = std::env::var(ADMIN_TOKEN_ENV).ok();
        Self::from_sources(from_env.as_deref(), data_dir)
    }

    fn from_sources(from_env: Option<&str>, data_dir: &Path) -> Result<AdminToken, CliError> {
        if let Some(token) = from_env.map(str::trim).filter(|t| !t.is_empty()) {
            return Ok(AdminToken::FromEnv(token.to_string()));
        }
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Ok(AdminToken::FromFile {
                token: text.trim().to_string(),
                path,
            }),
            Ok(_) => Ok(AdminToken::Missing(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AdminToken::Missing(path)),
            Err(e) => Err(CliError::input(format!(
                "cannot read the admin token from {}: {e}; set {ADMIN_TOKEN_ENV} instead",
                path.display()
            ))),
        }
    }

    fn value(&self) -> Option<&str> {
        match self {
            AdminToken::FromEnv(token) | AdminToken::FromFile { token, .. } => Some(token),
            AdminToken::Missing(_) => None,
        }
    }

    /// What to do after a 401/403.
    fn hint(&self) -> String {
        match self {
            AdminToken::FromEnv(_) => format!(
                "the token in {ADMIN_TOKEN_ENV} is not this server's admin token; set it to the \
                 contents of {ADMIN_TOKEN_FILE} in the server's data directory"
            ),
            AdminToken::FromFile { path, .. } => format!(
                "the token in {} is not this server's admin token; set {ADMIN_TOKEN_ENV} to the \
                 contents of {ADMIN_TOKEN_FILE} in the server's data directory",
                path.display()
            ),
            AdminToken::Missing(path) => format!(
                "no admin token was sent; set {ADMIN_TOKEN_ENV}, or copy {ADMIN_TOKEN_FILE} from the \
                 server's data directory to {}",
                path.display()
            ),
        }
    }
}

/// The error body every failed API call carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// `not_found`, `invalid_argument`, ...; empty when the body was not the API's error shape
    /// (e.g. an older server without that endpoint).
    #[serde(default)]
    pub code: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
    /// The JSON path of the offending field, when there is one.
    #[serde(default)]
    pub field: Option<String>,
}

impl ApiError {
    /// True for the API's `not_found`.
    pub fn is_not_found(&self) -> bool {
        self.status == 404 && self.code == "not_found"
    }

    /// Worth retrying: the server is busy, restarting, or timed out.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 408 | 429 | 500 | 502 | 503 | 504)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) if !field.is_empty() && !self.message.contains(field.as_str()) => {
                write!(f, "{field}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

/// Why a call to the server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// No connection (refused, unknown host, timed out, cut off).
    #[error("cannot reach the sextant server at {server}: {detail}; is `sextant serve` running?")]
    Unreachable {
        /// The server's URL.
        server: String,
        /// What the network said.
        detail: String,
    },
    /// 401 or 403.
    #[error("the sextant server at {server} refused the request ({}): {hint}", .error.message)]
    Unauthorized {
        /// The server's URL.
        server: String,
        /// The server's answer.
        error: Box<ApiError>,
        /// Which token to set.
        hint: String,
    },
    /// Any other error status.
    #[error("the sextant server at {server} answered {}: {error}", .error.status)]
    Api {
        /// The server's URL.
        server: String,
        /// The server's answer.
        error: Box<ApiError>,
    },
    /// A reply that is not what the contract says (not JSON, wrong shape, no paging progress).
    #[error("unexpected reply from the sextant server at {server} to {request}: {detail}")]
    Protocol {
        /// The server's URL.
        server: String,
        /// The request, e.g. `GET /v1/experiments`.
        request: String,
        /// What was wrong.
        detail: String,
    },
}

impl ClientError {
    /// Worth retrying while following an experiment: the server may come back.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api { error, .. } => error.is_transient(),
            _ => false,
        }
    }

    /// The API error of a 404 `not_found`, if this is one.
    pub fn not_found(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { error, .. } if error.is_not_found() => Some(error),
            _ => None,
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let input = match &e {
            ClientError::Unauthorized { .. } => true,
            ClientError::Api { error, .. } => {
                (400..500).contains(&error.status) && !error.is_transient()
            }
            ClientError::Unreachable { .. } | ClientError::Protocol { .. } => false,
        };
        if input {
            CliError::input(e.to_string())
        } else {
            CliError::failed(e.to_string())
        }
    }
}

/// `GET /v1/experiments/{name}` (and the reply to a submit).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExperimentDetail {
    /// The stored experiment.
    pub experiment: ExperimentRecord,
    /// Its status, counts and best trial.
    pub status: ExperimentView,
}

#[derive(Deserialize)]
struct ExperimentList {
    experiments: Vec<ExperimentView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrialPage {
    trials: Vec<TrialRecord>,
    next_offset: Option<usize>,
}

#[derive(Deserialize)]
struct MetricsReply {
    metrics: Vec<MetricSeries>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricSeries {
    metric_name: String,
    #[serde(default)]
    total_points: Option<u64>,
    #[serde(default)]
    downsampled: bool,
    points: Vec<MetricPoint>,
}

#[derive(Deserialize)]
struct MetricPoint {
    step: i64,
    value: f64,
    timestamp: jiff::Timestamp,
}

/// A `sextant serve` server and the admin token to present.
#[derive(Debug, Clone)]
pub struct ServerClient {
    base: String,
    token: AdminToken,
    agent: ureq::Agent,
}

impl ServerClient {
    /// A client for the server at `url` (`http://host:port`; `host:port` means http).
    pub fn new(url: &str, token: AdminToken) -> Result<ServerClient, CliError> {
        let trimmed = url.trim().trim_end_matches('/');
        let base = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let Some(authority) = base.strip_prefix("http://") else {
            return Err(CliError::input(format!(
                "--server {url:?}: only http:// URLs are supported (this build has no TLS); reach an \
                 https server through a tunnel or a proxy that listens on http"
            )));
        };
        if authority.is_empty() || authority.contains('/') {
            return Err(CliError::input(format!(
                "--server {url:?}: expected http://HOST:PORT, e.g. {DEFAULT_SERVER}"
            )));
        }
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let loopback =
            matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.");
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(format!("sextant/{}", env!("CARGO_PKG_VERSION")));
        // A proxy from the environment (HTTP_PROXY) is for the outside world; a server on this
        // machine is reached directly.
        if loopback {
            config = config.proxy(None);
        }
        Ok(ServerClient {
            base,
            token,
            agent: ureq::Agent::new_with_config(config.build()),
        })
    }

    /// The server's URL, as shown in messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path?query` and parse the JSON reply.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (key, value) in query {
            request = request.query(key, value);
        }
        if let Some(token) = self.token.value() {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.reply(&format!("GET {path}"), request.call())
    }

    /// `POST path?query` with `body` (sent as is) and parse the JSON reply.
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &str,
    ) -> Result<T, ClientError> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        for (key, value) in query {
            request = request.query(key, value);
        }
        if let Some(token) = self.token.value() {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.reply(&format!("POST {path}"), request.send(body))
    }

    /// `DELETE path` and parse the JSON reply.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let mut request = self.agent.delete(format!("{}{path}", self.base));
        if let Some(token) = self.token.value() {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.reply(&format!("DELETE {path}"), request.call())
    }

    fn reply<T: DeserializeOwned>(
        &self,
        request: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut response = result.map_err(|e| self.transport_error(request, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| self.transport_error(request, e))?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| ClientError::Protocol {
                server: self.base.clone(),
                request: request.to_string(),
                detail: format!("{e} in {}", snippet(&text)),
            });
        }
        let error = parse_api_error(status, &text);
        if matches!(status, 401 | 403) {
            return Err(ClientError::Unauthorized {
                server: self.base.clone(),
                error: Box::new(error),
                hint: self.token.hint(),
            });
        }
        Err(ClientError::Api {
            server: self.base.clone(),
            error: Box::new(error),
        })
    }

    fn transport_error(&self, request: &str, e: ureq::Error) -> ClientError {
        let detail = match e {
            ureq::Error::Io(io) => io.to_string(),
            ureq::Error::Timeout(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
                e.to_string()
            }
            other => {
                return ClientError::Protocol {
                    server: self.base.clone(),
                    request: request.to_string(),
                    detail: other.to_string(),
                };
            }
        };
        ClientError::Unreachable {
            server: self.base.clone(),
            detail,
        }
    }

    // --- the API, typed ---

    /// `GET /v1/experiments`.
    pub fn experiments(&self) -> Result<Vec<ExperimentView>, ClientError> {
        Ok(self
            .get_json::<ExperimentList>("/v1/experiments", &[])?
            .experiments)
    }

    /// `GET /v1/experiments/{name}`.
    pub fn experiment(&self, name: &str) -> Result<ExperimentDetail, ClientError> {
        self.get_json(&format!("/v1/experiments/{}", segment(name)), &[])
    }

    /// Every trial of an experiment (in `state` only, when given), page by page until
    /// `nextOffset` is null.
    pub fn trials(
        &self,
        experiment: &str,
        state: Option<TrialState>,
    ) -> Result<Vec<TrialRecord>, ClientError> {
        let path = format!("/v1/experiments/{}/trials", segment(experiment));
        let mut trials = Vec::new();
        let mut offset = 0;
        loop {
            let mut query = vec![
                ("limit", TRIALS_PAGE_SIZE.to_string()),
                ("offset", offset.to_string()),
            ];
            if let Some(state) = state {
                query.push(("state", state.as_str().to_string()));
            }
            let page: TrialPage = self.get_json(&path, &query)?;
            trials.extend(page.trials);
            match page.next_offset {
                None => return Ok(trials),
                Some(next) if next > offset => offset = next,
                Some(next) => {
                    return Err(ClientError::Protocol {
                        server: self.base.clone(),
                        request: format!("GET {path}"),
                        detail: format!("nextOffset {next} does not move past offset {offset}"),
                    });
                }
            }
        }
    }

    /// `GET /v1/experiments/{experiment}/trials/{trial}`.
    pub fn trial(&self, experiment: &str, trial: &str) -> Result<TrialRecord, ClientError> {
        self.get_json(
            &format!(
                "/v1/experiments/{}/trials/{}",
                segment(experiment),
                segment(trial)
            ),
            &[],
        )
    }

    /// A trial's observations, every point (no `maxPoints`), flattened back into one list ordered
    /// as the server grouped them: by metric, then by step.
    pub fn observations(
        &self,
        experiment: &str,
        trial: &str,
        metric: Option<&str>,
    ) -> Result<Vec<Observation>, ClientError> {
        let query: Vec<(&str, String)> = metric
            .map(|m| vec![("metric", m.to_string())])
            .unwrap_or_default();
        let reply: MetricsReply = self.get_json(
            &format!(
                "/v1/experiments/{}/trials/{}/metrics",
                segment(experiment),
                segment(trial)
            ),
            &query,
        )?;
        let mut points = Vec::new();
        for series in reply.metrics {
            if series.downsampled {
                eprintln!(
                    "warning: the server sent {} of {} points of {} (downsampled)",
                    series.points.len(),
                    series
                        .total_points
                        .map_or_else(|| "?".to_string(), |n| n.to_string()),
                    series.metric_name
                );
            }
            points.extend(series.points.into_iter().map(|p| Observation {
                metric_name: series.metric_name.clone(),
                value: p.value,
                step: p.step,
                timestamp: p.timestamp,
            }));
        }
        Ok(points)
    }

    /// `DELETE /v1/experiments/{name}` (admin): the experiment with its trials.
    pub fn delete_experiment(&self, name: &str) -> Result<(), ClientError> {
        self.delete::<serde_json::Value>(&format!("/v1/experiments/{}", segment(name)))
            .map(|_| ())
    }

    /// `POST /v1/experiments?workDir=...` with an Experiment document (YAML or JSON).
    pub fn submit(&self, document: &str, work_dir: &Path) -> Result<ExperimentDetail, ClientError> {
        self.post(
            "/v1/experiments",
            &[("workDir", work_dir.display().to_string())],
            document,
        )
    }
}

/// The API error in a non-2xx body, or a stand-in naming the status when the body is something
/// else (an older server's bare 404, a proxy's HTML page).
fn parse_api_error(status: u16, body: &str) -> ApiError {
    #[derive(Deserialize)]
    struct Envelope {
        error: ApiError,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(Envelope { error }) => ApiError { status, ..error },
        Err(_) => ApiError {
            status,
            code: String::new(),
            message: if body.trim().is_empty() {
                format!(
                    "HTTP {status} with no error body (is it a `sextant serve` with the experiments API?)"
                )
            } else {
                format!("HTTP {status}: {}", snippet(body))
            },
            field: None,
        },
    }
}

/// The start of a body, for messages.
fn snippet(text: &str) -> String {
    const SHOWN: usize = 200;
    let text = text.trim();
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// A path segment, percent-encoded (names are DNS labels, but users type anything).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Runs a blocking call (a request) on a thread of its own and waits for it without blocking the
/// runtime. Not `spawn_blocking`: the runtime waits for those when it shuts down, so a request
/// hanging on a dead server would hold up Ctrl-C for as long as its timeout; a plain thread
/// simply ends with the process.
pub async fn off_thread<T: Send + 'static>(
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CliError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sextant-http".into())
        .spawn(move || {
            let _ = sender.send(call());
        })
        .map_err(|e| CliError::failed(format!("cannot start a thread: {e}")))?;
    receiver
        .await
        .map_err(|_| CliError::failed("the request thread panicked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::{EXIT_BAD_INPUT, EXIT_FAILED};

    #[test]
    fn connection_refused_says_to_start_the_server() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = ServerClient::new(&url, AdminToken::Missing("/none".into())).unwrap();
        let e = client.experiments().unwrap_err();
        assert!(e.is_transient());
        let e = CliError::from(e);
        assert_eq!(e.code, EXIT_FAILED);
        assert!(
            e.message
                .starts_with(&format!("cannot reach the sextant server at {url}: "))
                && e.message.ends_with("; is `sextant serve` running?"),
            "{}",
            e.message
        );
    }

    #[test]
    fn server_urls_are_http_only() {
        let token = || AdminToken::Missing("/none".into());
        let client = ServerClient::new("127.0.0.1:6789/", token()).unwrap();
        assert_eq!(client.base(), DEFAULT_SERVER);
        let e = ServerClient::new("https://example.org", token()).unwrap_err();
        assert_eq!(e.code, EXIT_BAD_INPUT);
        assert!(e.message.contains("only http://"), "{}", e.message);
        assert_eq!(
            DEFAULT_SERVER,
            format!("http://{}", crate::cli::serve::DEFAULT_LISTEN)
        );
    }

    #[test]
    fn the_admin_token_comes_from_the_environment_then_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(ADMIN_TOKEN_FILE);
        assert_eq!(
            AdminToken::from_sources(None, dir.path()).unwrap(),
            AdminToken::Missing(file.clone())
        );
        std::fs::write(&file, "from-file\n").unwrap();
        assert_eq!(
            AdminToken::from_sources(Some(""), dir.path()).unwrap(),
            AdminToken::FromFile {
                token: "from-file".into(),
                path: file
            }
        );
        assert_eq!(
            AdminToken::from_sources(Some("from-env"), dir.path()).unwrap(),
            AdminToken::FromEnv("from-env".into())
        );
    }

    #[test]
    fn error_bodies_keep_their_field() {
        let body = r#"{"error":{"code":"invalid_argument","message":"must be positive","field":"spec.maxTrialCount"}}"#;
        let error = parse_api_error(400, body);
        assert_eq!(error.to_string(), "spec.maxTrialCount: must be positive");
        let bare = parse_api_error(404, "");
        assert!(!bare.is_not_found());
        assert!(bare.message.contains("HTTP 404"), "{}", bare.message);
    }
}
