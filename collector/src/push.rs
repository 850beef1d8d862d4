//! Delivering observations to a Sextant server: `POST .../trials/{trial}/metrics`.
//!
//! One blocking client per trial, with one `ureq` agent so that batches reuse a keep-alive
//! connection. The endpoint is normally the in-cluster or loopback plain-http address of the
//! server; https is accepted too, verified against the Mozilla root certificates that ship with
//! `ureq`'s rustls (the collector has TLS anyway, for the Kubernetes API).
//!
//! The answer is classified once, here, into what the caller must do with the batch
//! ([`PushError::is_retryable`]), following the server contract: connection errors, 408, 429 and
//! 5xx may succeed later (the server restarts, is overloaded, or timed out a durable write), and a
//! re-sent batch is idempotent because the server overwrites (trial, metric, step). Every other
//! refusal (bad token, unknown trial, malformed batch) would be refused again, so retrying it
//! would only hide the problem.
use std::time::Duration;

use crate::Observation;

/// Environment variable: the server's base URL, e.g. `http://127.0.0.1:6789`.
pub const ENV_ENDPOINT: &str = "SEXTANT_ENDPOINT";
/// Environment variable: the experiment's name (optional: derived from the trial's name).
pub const ENV_EXPERIMENT: &str = "SEXTANT_EXPERIMENT";
/// Environment variable: the trial's name, `{experiment}-{NNNN}`.
pub const ENV_TRIAL: &str = "SEXTANT_TRIAL";
/// Environment variable: the trial's bearer token.
pub const ENV_TOKEN: &str = "SEXTANT_TOKEN";

/// Longest wait for a TCP connection: the server is on the same host or cluster, so a connection
/// that takes longer is as good as refused, and the backoff will try again.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a whole request. The server answers only after an fsync, which on a busy disk
/// can take seconds; 30 s is generous for that and still short of the final flush timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes of an answer's body read for its error message.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;
/// Most characters of a non-JSON error body carried into a message.
const MAX_ERROR_TEXT_CHARS: usize = 200;

/// Where a trial's observations go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// The server's base URL without a trailing slash, `http://host:port`.
    pub endpoint: String,
    /// The experiment's name.
    pub experiment: String,
    /// The trial's name.
    pub trial: String,
    /// The trial's bearer token.
    pub token: String,
}

/// Why the environment does not name a usable [`PushTarget`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A required variable is unset or empty.
    #[error("{variable} is not set: {hint}")]
    Missing {
        /// The variable's name.
        variable: &'static str,
        /// What it should hold and who sets it.
        hint: &'static str,
    },
    /// `SEXTANT_ENDPOINT` is not an http(s) URL.
    #[error(
        "{ENV_ENDPOINT}={value:?} {reason}; expected an http(s) base URL such as http://127.0.0.1:6789"
    )]
    BadEndpoint {
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No `SEXTANT_EXPERIMENT`, and the trial's name is not `{experiment}-{NNNN}`.
    #[error(
        "{ENV_EXPERIMENT} is not set and {ENV_TRIAL}={trial:?} is not of the form {{experiment}}-{{NNNN}}; set {ENV_EXPERIMENT} to the experiment's name"
    )]
    NoExperiment {
        /// The trial's name as given.
        trial: String,
    },
}

impl PushTarget {
    /// The target named by the process environment.
    pub fn from_env() -> Result<Self, TargetError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The target named by `lookup` (the environment, or a map in tests). Empty values count as
    /// unset, since an orchestrator that templates an empty variable means "not given".
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TargetError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let endpoint = get(ENV_ENDPOINT).ok_or(TargetError::Missing {
            variable: ENV_ENDPOINT,
            hint: "the Sextant server's base URL, e.g. http://127.0.0.1:6789 (Sextant sets it for \
                   the trials it starts)",
        })?;
        let endpoint = parse_endpoint(endpoint.trim())?;
        let trial = get(ENV_TRIAL).ok_or(TargetError::Missing {
            variable: ENV_TRIAL,
            hint: "the trial's name, e.g. my-experiment-0001 (Sextant sets it for the trials it \
                   starts)",
        })?;
        let token = get(ENV_TOKEN).ok_or(TargetError::Missing {
            variable: ENV_TOKEN,
            hint: "the trial's bearer token, which authorises pushing its metrics (Sextant sets \
                   it for the trials it starts)",
        })?;
        let experiment = match get(ENV_EXPERIMENT) {
            Some(experiment) => experiment,
            None => experiment_of_trial(&trial)
                .ok_or_else(|| TargetError::NoExperiment {
                    trial: trial.clone(),
                })?
                .to_owned(),
        };
        Ok(Self {
            endpoint,
            experiment,
            trial,
            token,
        })
    }

    /// `{endpoint}/v1/experiments/{experiment}/trials/{trial}/metrics`.
    pub fn metrics_url(&self) -> String {
        format!(
            "{}/v1/experiments/{}/trials/{}/metrics",
            self.endpoint,
            encode_path_segment(&self.experiment),
            encode_path_segment(&self.trial)
        )
    }
}

/// The experiment of a trial named `{experiment}-{NNNN}` (the server's naming rule).
pub fn experiment_of_trial(trial: &str) -> Option<&str> {
    let (experiment, index) = trial.rsplit_once('-')?;
    let is_index = !index.is_empty() && index.bytes().all(|byte| byte.is_ascii_digit());
    (is_index && !experiment.is_empty()).then_some(experiment)
}

/// The endpoint without trailing slashes, when it is `http://host…` or `https://host…`.
fn parse_endpoint(value: &str) -> Result<String, TargetError> {
    let bad = |reason| TargetError::BadEndpoint {
        value: value.to_owned(),
        reason,
    };
    let rest = strip_prefix_ignore_case(value, "http://")
        .or_else(|| strip_prefix_ignore_case(value, "https://"))
        .ok_or_else(|| bad("does not start with http:// or https://"))?;
    if rest.trim_end_matches('/').is_empty() {
        return Err(bad("names no host"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn strip_prefix_ignore_case<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// Percent-encodes everything but RFC 3986 unreserved characters. Sextant's names are DNS labels
/// and pass unchanged; this only keeps an odd name from changing the path.
fn encode_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No answer: the connection was refused, reset or timed out. Retryable.
    #[error("could not reach {url}: {source}")]
    Unreachable {
        /// The URL posted to.
        url: String,
        /// What the transport said.
        source: ureq::Error,
    },
    /// The server answered with a status that may succeed later (408, 429, 5xx). Retryable.
    #[error("server answered {status}{}: {message}", code_suffix(code))]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The error body's `error.code`, when it had one.
        code: Option<String>,
        /// The error body's `error.message`, or its first characters.
        message: String,
    },
    /// The server refused the batch for good (400, 401, 403, 404, 409, 413, anything unexpected).
    #[error(
        "server refused the metrics with {status}{}: {message}",
        code_suffix(code)
    )]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The error body's `error.code`, when it had one.
        code: Option<String>,
        /// The error body's `error.message`, or its first characters.
        message: String,
    },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref()
        .map(|code| format!(" ({code})"))
        .unwrap_or_default()
}

impl PushError {
    /// Whether sending the same batch again may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }
}

/// Whether an HTTP status means "try again later" (server contract: 408, 429, 500, 502, 503,
/// 504; any other 5xx is treated the same, since it says the server, not the batch, failed).
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// What an answer with `status` and `body` means for the batch.
pub fn classify_response(status: u16, body: &str) -> Result<(), PushError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let (code, message) = error_details(body);
    if is_retryable_status(status) {
        Err(PushError::Unavailable {
            status,
            code,
            message,
        })
    } else {
        Err(PushError::Rejected {
            status,
            code,
            message,
        })
    }
}

/// `error.code` and `error.message` of a `{"error": {...}}` body; otherwise the body's start.
fn error_details(body: &str) -> (Option<String>, String) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Details,
    }
    #[derive(serde::Deserialize)]
    struct Details {
        code: Option<String>,
        message: Option<String>,
        field: Option<String>,
    }
    if let Ok(Envelope { error }) = serde_json::from_str::<Envelope>(body) {
        let mut message = error.message.unwrap_or_default();
        if let Some(field) = error.field.filter(|field| !field.is_empty()) {
            message = format!("{message} (field {field})");
        }
        return (error.code, message);
    }
    let text: String = body.trim().chars().take(MAX_ERROR_TEXT_CHARS).collect();
    let message = if text.is_empty() {
        "(no error message in the answer)".to_owned()
    } else {
        text
    };
    (None, message)
}

/// The body of a metrics push.
#[derive(serde::Serialize)]
struct PushBody<'a> {
    observations: &'a [Observation],
}

/// Pushes batches of one trial's observations.
#[derive(Debug, Clone)]
pub struct PushClient {
    agent: ureq::Agent,
    url: String,
    authorization: String,
}

impl PushClient {
    /// A client for `target`, with one keep-alive agent for all its requests.
    pub fn new(target: &PushTarget) -> Self {
        let agent = ureq::Agent::config_builder()
            // Statuses are classified here, with their bodies.
            .http_status_as_error(false)
            // A redirect of a POST loses its body; the server never redirects.
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("sextant-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            agent,
            url: target.metrics_url(),
            authorization: format!("Bearer {}", target.token),
        }
    }

    /// The URL batches are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Posts one batch, giving up after `timeout` (at most [`REQUEST_TIMEOUT`]).
    pub fn push(&self, observations: &[Observation], timeout: Duration) -> Result<(), PushError> {
        // Serialising plain structs with finite numbers cannot fail; an empty body would be
        // refused by the server and reported as such.
        let body = serde_json::to_vec(&PushBody { observations }).unwrap_or_default();
        let timeout = timeout.min(REQUEST_TIMEOUT);
        let unreachable = |source| PushError::Unreachable {
            url: self.url.clone(),
            source,
        };
        let mut response = self
            .agent
            .post(&self.url)
            .config()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
            .build()
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        // A body that cannot be read still leaves the status to classify by.
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BODY_BYTES)
            .read_to_string()
            .unwrap_or_default();
        classify_response(status, &text)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const FULL: [(&str, &str); 4] = [
        (ENV_ENDPOINT, "http://127.0.0.1:6789/"),
        (ENV_EXPERIMENT, "mnist"),
        (ENV_TRIAL, "mnist-0003"),
        (ENV_TOKEN, "t0k"),
    ];

    #[test]
    fn target_from_the_environment() {
        let target = PushTarget::from_lookup(lookup(&FULL)).unwrap();
        assert_eq!(target.endpoint, "http://127.0.0.1:6789");
        assert_eq!(
            target.metrics_url(),
            "http://127.0.0.1:6789/v1/experiments/mnist/trials/mnist-0003/metrics"
        );
        assert_eq!(target.token, "t0k");
    }

    #[test]
    fn experiment_is_derived_from_the_trial_name() {
        let target = PushTarget::from_lookup(lookup(&[
            (ENV_ENDPOINT, "http://h:1"),
            (ENV_TRIAL, "my-big-exp-0012"),
            (ENV_TOKEN, "x"),
        ]))
        .unwrap();
        assert_eq!(target.experiment, "my-big-exp");
        assert_eq!(experiment_of_trial("a-00001"), Some("a"));
        for refused in ["nodash", "exp-", "-0001", "exp-12a"] {
            assert_eq!(experiment_of_trial(refused), None, "{refused}");
        }
        let err = PushTarget::from_lookup(lookup(&[
            (ENV_ENDPOINT, "http://h:1"),
            (ENV_TRIAL, "weird"),
            (ENV_TOKEN, "x"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("set SEXTANT_EXPERIMENT"), "{err}");
    }

    #[test]
    fn missing_and_empty_variables_are_named() {
        for missing in [ENV_ENDPOINT, ENV_TRIAL, ENV_TOKEN] {
            let pairs: Vec<_> = FULL
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = PushTarget::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(
                matches!(err, TargetError::Missing { variable, .. } if variable == missing),
                "{err}"
            );
            assert!(err.to_string().starts_with(missing), "{err}");
            let mut blank = FULL.to_vec();
            blank.retain(|(k, _)| *k != missing);
            blank.push((missing, " "));
            assert!(PushTarget::from_lookup(lookup(&blank)).is_err());
        }
    }

    #[test]
    fn endpoints_must_be_plain_http() {
        let with_endpoint = |endpoint| {
            let mut pairs = FULL.to_vec();
            pairs[0] = (ENV_ENDPOINT, endpoint);
            PushTarget::from_lookup(lookup(&pairs))
        };
        assert_eq!(
            with_endpoint("HTTP://server:80").unwrap().endpoint,
            "HTTP://server:80"
        );
        assert_eq!(
            with_endpoint("https://sextant.example.com/")
                .unwrap()
                .endpoint,
            "https://sextant.example.com"
        );
        for (bad, why) in [
            ("server:6789", "does not start with http://"),
            ("https://", "names no host"),
            ("http://", "names no host"),
            ("http:///", "names no host"),
        ] {
            let err = with_endpoint(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("http://127.0.0.1:6789"), "{err}");
        }
    }

    #[test]
    fn odd_names_are_percent_encoded() {
        assert_eq!(encode_path_segment("a-0001"), "a-0001");
        assert_eq!(encode_path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn responses_are_classified_as_the_contract_says() {
        assert!(classify_response(200, "{\"accepted\":3}").is_ok());
        for status in [408, 429, 500, 502, 503, 504, 599] {
            let err = classify_response(status, "").unwrap_err();
            assert!(err.is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413, 302, 418] {
            let err = classify_response(status, "").unwrap_err();
            assert!(!err.is_retryable(), "{status}");
        }
    }

    #[test]
    fn the_servers_message_is_carried() {
        let body =
            r#"{"error":{"code":"unauthenticated","message":"bad trial token","field":null}}"#;
        let err = classify_response(401, body).unwrap_err();
        assert!(
            matches!(&err, PushError::Rejected { status: 401, code: Some(code), message }
                if code == "unauthenticated" && message == "bad trial token"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "server refused the metrics with 401 (unauthenticated): bad trial token"
        );
        let body = r#"{"error":{"code":"invalid_argument","message":"not finite","field":"observations[2].value"}}"#;
        assert!(
            classify_response(400, body)
                .unwrap_err()
                .to_string()
                .ends_with("not finite (field observations[2].value)")
        );
        // Not our error format (a proxy's page): its start, trimmed.
        let err = classify_response(502, &format!("  <html>{}", "x".repeat(500))).unwrap_err();
        let PushError::Unavailable { message, code, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(code, &None);
        assert_eq!(message.chars().count(), MAX_ERROR_TEXT_CHARS);
        assert!(message.starts_with("<html>"));
        assert!(
            classify_response(503, "")
                .unwrap_err()
                .to_string()
                .contains("no error message")
        );
    }

    #[test]
    fn push_body_is_the_contract_shape() {
        let observation = Observation {
            metric_name: "loss".into(),
            value: 0.5,
            step: 3,
            timestamp: "2030-01-01T00:00:00Z".parse().unwrap(),
        };
        let body = serde_json::to_value(PushBody {
            observations: &[observation],
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"observations": [
                {"metricName": "loss", "value": 0.5, "step": 3, "timestamp": "2030-01-01T00:00:00Z"}
            ]})
        );
    }

    #[test]
    fn an_unreachable_server_is_retryable() {
        // A port that was just free: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let target = PushTarget {
            endpoint: format!("http://127.0.0.1:{port}"),
            experiment: "e".into(),
            trial: "e-0001".into(),
            token: "t".into(),
        };
        let err = PushClient::new(&target)
            .push(&[], Duration::from_secs(2))
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains("could not reach"), "{err}");
    }
}
