//! The two Kubernetes API calls a sidecar needs: a container's log (followed) and its state.
//!
//! In-cluster configuration, as client-go does it: the API at
//! `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the service account's token and
//! CA certificate from `/var/run/secrets/kubernetes.io/serviceaccount`, this pod from `POD_NAME`
//! and `POD_NAMESPACE` (the downward API; the namespace falls back to the service account's
//! `namespace` file). `--kube-api` and `--kube-sa-dir` override the address and the directory, so
//! tests can talk plain http to a fake API server.
//!
//! The token is read again for every request: bound service-account tokens are rotated by the
//! kubelet in place, and a sidecar may outlive the first one. The CA is read once: TLS is
//! verified against that certificate only (not the Mozilla roots), which is what the in-cluster
//! API server presents.
//!
//! A plain, blocking `ureq` agent: no kube-rs or async runtime in a binary that ships into every
//! trial pod.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::args::KubeFlags;

/// Where Kubernetes mounts a pod's service account (the documented in-cluster location).
pub(crate) const DEFAULT_SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Environment: this pod's name (downward API `metadata.name`).
pub(crate) const ENV_POD_NAME: &str = "POD_NAME";
/// Environment: this pod's namespace (downward API `metadata.namespace`).
pub(crate) const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
const ENV_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
const ENV_SERVICE_PORT: &str = "KUBERNETES_SERVICE_PORT";

/// Longest wait for a connection to the API server, which is in the cluster.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the pod's status: a small object, answered from the API server's cache.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of an error answer or of a pod object read. A pod object is a few KiB; 4 MiB is
/// the most an etcd object may be.
const MAX_BODY_BYTES: u64 = 4 << 20;

/// What the log endpoint answered.
pub(crate) enum LogOpen {
    /// The log, as a stream that ends when the container ends (or the connection drops).
    Stream(Box<dyn Read + Send>),
    /// The container has not started yet (`400 ... is waiting to start`).
    Waiting(String),
}

/// A container's state in the pod's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContainerState {
    /// Not started, running, or not in the status yet.
    NotTerminated,
    /// Exited with this code.
    Terminated { exit_code: i64 },
}

/// Why a call to the API failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KubeError {
    /// No answer (connection refused, reset, timed out, TLS failure). May succeed later.
    #[error("cannot reach the Kubernetes API at {url}: {source}")]
    Unreachable { url: String, source: ureq::Error },
    /// An answer that may change later: 429 or 5xx.
    #[error("the Kubernetes API answered {status} for {what}: {message}")]
    Unavailable {
        status: u16,
        what: &'static str,
        message: String,
    },
    /// An answer that will not change: no permission, no such pod or container, bad request.
    #[error("the Kubernetes API refused {what} with {status}: {message}{hint}")]
    Refused {
        status: u16,
        what: &'static str,
        message: String,
        hint: &'static str,
    },
    /// The service account's token cannot be read, or an answer made no sense.
    #[error("{0}")]
    Local(String),
}

impl KubeError {
    /// Whether the same call may succeed later.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Unavailable { .. })
    }
}

/// Why the in-cluster configuration cannot be used (exit code 2: the pod is set up wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct KubeSetupError(pub(crate) String);

/// Where the API is and who this pod is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KubeConfig {
    /// Base URL without a trailing slash.
    pub(crate) api: String,
    pub(crate) sa_dir: PathBuf,
    pub(crate) namespace: String,
    pub(crate) pod: String,
}

impl KubeConfig {
    /// The configuration from the flags and `env` (the process environment, or a map in tests).
    pub(crate) fn resolve(
        flags: &KubeFlags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, KubeSetupError> {
        let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let sa_dir = flags
            .sa_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SA_DIR));
        let api = match &flags.api {
            Some(api) => api.trim().trim_end_matches('/').to_owned(),
            None => {
                let (Some(host), Some(port)) = (env(ENV_SERVICE_HOST), env(ENV_SERVICE_PORT))
                else {
                    return Err(KubeSetupError(format!(
                        "{ENV_SERVICE_HOST} and {ENV_SERVICE_PORT} are not set: this is not a \
                         Kubernetes pod, or the pod hides the API; pass --kube-api URL"
                    )));
                };
                let host = host.trim();
                // An IPv6 address needs brackets in a URL.
                if host.contains(':') {
                    format!("https://[{host}]:{}", port.trim())
                } else {
                    format!("https://{host}:{}", port.trim())
                }
            }
        };
        let lower = api.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(KubeSetupError(format!(
                "--kube-api {api:?} is not an http(s) URL; expected e.g. https://10.96.0.1:443"
            )));
        }
        let pod = env(ENV_POD_NAME).ok_or_else(|| {
            KubeSetupError(format!(
                "{ENV_POD_NAME} is not set: give the sidecar this pod's name with the downward \
                 API (valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}})"
            ))
        })?;
        let namespace = match env(ENV_POD_NAMESPACE) {
            Some(namespace) => namespace,
            None => std::fs::read_to_string(sa_dir.join("namespace"))
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty())
                .ok_or_else(|| {
                    KubeSetupError(format!(
                        "{ENV_POD_NAMESPACE} is not set and {} cannot be read: give the sidecar \
                         this pod's namespace with the downward API (valueFrom: {{fieldRef: \
                         {{fieldPath: metadata.namespace}}}})",
                        sa_dir.join("namespace").display()
                    ))
                })?,
        };
        Ok(Self {
            api,
            sa_dir,
            namespace: namespace.trim().to_owned(),
            pod: pod.trim().to_owned(),
        })
    }
}

/// The TLS configuration for `api`: `None` for plain http; for https, the cluster's CA from
/// `ca.crt` in `sa_dir` as the only trusted root.
pub(crate) fn tls_config(api: &str, sa_dir: &Path) -> Result<Option<TlsConfig>, KubeSetupError> {
    if !api.to_ascii_lowercase().starts_with("https://") {
        return Ok(None);
    }
    let path = sa_dir.join("ca.crt");
    let pem = std::fs::read(&path).map_err(|error| {
        KubeSetupError(format!(
            "the Kubernetes API at {api} uses https, which needs the cluster's CA certificate, \
             but {} cannot be read ({error}); mount the service account (automountServiceAccount\
             Token) or pass --kube-sa-dir DIR",
            path.display()
        ))
    })?;
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => roots.push(certificate),
            Ok(_) => {}
            Err(error) => {
                return Err(KubeSetupError(format!(
                    "{} is not a PEM certificate file: {error}",
                    path.display()
                )));
            }
        }
    }
    if roots.is_empty() {
        return Err(KubeSetupError(format!(
            "{} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(Some(
        TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build(),
    ))
}

/// Calls the API as this pod's service account.
pub(crate) struct KubeClient {
    agent: ureq::Agent,
    config: KubeConfig,
}

impl KubeClient {
    pub(crate) fn new(config: KubeConfig) -> Result<Self, KubeSetupError> {
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("sextant-collector/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = tls_config(&config.api, &config.sa_dir)? {
            builder = builder.tls_config(tls);
        }
        // The token must be readable now; a sidecar without one would only fail later.
        read_token(&config.sa_dir).map_err(|error| KubeSetupError(error.to_string()))?;
        Ok(Self {
            agent: builder.build().new_agent(),
            config,
        })
    }

    fn pod_url(&self) -> String {
        format!(
            "{}/api/v1/namespaces/{}/pods/{}",
            self.config.api, self.config.namespace, self.config.pod
        )
    }

    /// `GET .../log?container=NAME&follow=true&timestamps=true[&sinceTime=T]`.
    pub(crate) fn open_log(
        &self,
        container: &str,
        since: Option<jiff::Timestamp>,
    ) -> Result<LogOpen, KubeError> {
        let mut url = format!(
            "{}/log?container={container}&follow=true&timestamps=true",
            self.pod_url()
        );
        if let Some(since) = since {
            // Whole seconds, which is what the API server passes on to the kubelet anyway; the
            // caller skips the lines it already has (see `kubelog.rs`).
            url.push_str(&format!(
                "&sinceTime={}",
                since.strftime("%Y-%m-%dT%H:%M:%SZ")
            ));
        }
        let mut response = self
            .agent
            .get(&url)
            .header("Authorization", &self.authorization()?)
            .call()
            .map_err(|source| KubeError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if status == 200 {
            let (_, body) = response.into_parts();
            return Ok(LogOpen::Stream(Box::new(body.into_reader())));
        }
        let message = error_message(
            &response
                .body_mut()
                .with_config()
                .limit(MAX_BODY_BYTES)
                .read_to_string()
                .unwrap_or_default(),
        );
        if status == 400 && message.contains("is waiting to start") {
            return Ok(LogOpen::Waiting(message));
        }
        Err(answer_error(status, "the container's log", message))
    }

    /// The state of `container` in this pod's status.
    pub(crate) fn container_state(&self, container: &str) -> Result<ContainerState, KubeError> {
        let url = self.pod_url();
        let mut response = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(STATUS_TIMEOUT))
            .build()
            .header("Authorization", &self.authorization()?)
            .header("Accept", "application/json")
            .call()
            .map_err(|source| KubeError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|source| KubeError::Unreachable {
                url: url.clone(),
                source,
            })?;
        if status != 200 {
            return Err(answer_error(
                status,
                "the pod's status",
                error_message(&body),
            ));
        }
        let pod: serde_json::Value = serde_json::from_str(&body).map_err(|error| {
            KubeError::Local(format!("the pod object from {url} is not JSON: {error}"))
        })?;
        Ok(container_state_of(&pod, container))
    }

    fn authorization(&self) -> Result<String, KubeError> {
        Ok(format!("Bearer {}", read_token(&self.config.sa_dir)?))
    }
}

fn read_token(sa_dir: &Path) -> Result<String, KubeError> {
    let path = sa_dir.join("token");
    let token = std::fs::read_to_string(&path).map_err(|error| {
        KubeError::Local(format!(
            "cannot read the service account token {} ({error}); the sidecar needs a service \
             account allowed to get pods and pods/log in its namespace",
            path.display()
        ))
    })?;
    Ok(token.trim().to_owned())
}

/// A `Status` object's `message`, or the body's start.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|status| status["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().chars().take(300).collect())
}

fn answer_error(status: u16, what: &'static str, message: String) -> KubeError {
    if status == 429 || (500..=599).contains(&status) {
        return KubeError::Unavailable {
            status,
            what,
            message,
        };
    }
    let hint = match status {
        401 => " (the service account token was not accepted)",
        403 => {
            " (the service account needs a Role allowing get on pods and pods/log; Sextant \
             creates sextant-collector for the pods it renders)"
        }
        _ => "",
    };
    KubeError::Refused {
        status,
        what,
        message,
        hint,
    }
}

/// `status.containerStatuses[name=container].state` of a pod object (init containers too, so a
/// sidecar can wait for another sidecar).
pub(crate) fn container_state_of(pod: &serde_json::Value, container: &str) -> ContainerState {
    let statuses = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|list| pod["status"][list].as_array())
        .flatten();
    for status in statuses {
        if status["name"].as_str() != Some(container) {
            continue;
        }
        if let Some(terminated) = status["state"]["terminated"].as_object() {
            let exit_code = terminated
                .get("exitCode")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            return ContainerState::Terminated { exit_code };
        }
    }
    ContainerState::NotTerminated
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate (`openssl req -x509 -newkey ec -subj /CN=kubernetes`), as a
    /// cluster CA.
    const CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----
MIIBfTCCASWgAwIBAgIUd+wjMDKSHEjjNWgq1StlFvr4MCkwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAeFw0yNjExMjIxNzMwMDRaFw0zNjExMTkx
NzMwMDRaMBUxEzARBgNVBAMMCmt1YmVybmV0ZXMwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARjjy6gToqWMGvnJoaI918I1/TB+QpmmHflQpRh6DI+JbAUtWocw1BE
fJtNCDVgVIXLd4JoiXsOIZgtjjoBWkDBo1MwUTAdBgNVHQ4EFgQUzSPd27lTUoyt
2gJVBmqz2nv4bBkwHwYDVR0jBBgwFoAUzSPd27lTUoyt2gJVBmqz2nv4bBkwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNGADBDAiBP8c0UX3G8MsCmN2BMKsMB
TWcTH8lJPQHCRCVMrF7SQAIfePWlG3VSHuzUBUJQxmXwIKGXPUyzKZoe1JcFmwIf
xw==
-----END CERTIFICATE-----
";

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn in_cluster_configuration_from_the_environment() {
        let config = KubeConfig::resolve(
            &KubeFlags::default(),
            env(&[
                (ENV_SERVICE_HOST, "10.96.0.1"),
                (ENV_SERVICE_PORT, "443"),
                (ENV_POD_NAME, "mnist-0001-abcde"),
                (ENV_POD_NAMESPACE, "team-a"),
            ]),
        )
        .unwrap();
        assert_eq!(config.api, "https://10.96.0.1:443");
        assert_eq!(config.sa_dir, PathBuf::from(DEFAULT_SA_DIR));
        assert_eq!(config.pod, "mnist-0001-abcde");
        assert_eq!(config.namespace, "team-a");
        let config = KubeConfig::resolve(
            &KubeFlags::default(),
            env(&[
                (ENV_SERVICE_HOST, "fd00::1"),
                (ENV_SERVICE_PORT, "6443"),
                (ENV_POD_NAME, "p"),
                (ENV_POD_NAMESPACE, "n"),
            ]),
        )
        .unwrap();
        assert_eq!(config.api, "https://[fd00::1]:6443");
    }

    #[test]
    fn the_namespace_falls_back_to_the_service_account_and_gaps_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("namespace"), "team-b\n").unwrap();
        let flags = KubeFlags {
            api: Some("http://127.0.0.1:1/".into()),
            sa_dir: Some(dir.path().to_owned()),
        };
        let config = KubeConfig::resolve(&flags, env(&[(ENV_POD_NAME, "p")])).unwrap();
        assert_eq!(config.namespace, "team-b");
        assert_eq!(config.api, "http://127.0.0.1:1");
        let err = KubeConfig::resolve(&flags, env(&[])).unwrap_err();
        assert!(err.0.contains("POD_NAME is not set"), "{err}");
        let err =
            KubeConfig::resolve(&KubeFlags::default(), env(&[(ENV_POD_NAME, "p")])).unwrap_err();
        assert!(err.0.contains("KUBERNETES_SERVICE_HOST"), "{err}");
        let flags = KubeFlags {
            api: Some("ftp://x".into()),
            sa_dir: None,
        };
        let err = KubeConfig::resolve(&flags, env(&[(ENV_POD_NAME, "p")])).unwrap_err();
        assert!(err.0.contains("not an http(s) URL"), "{err}");
    }

    #[test]
    fn the_cluster_ca_is_the_only_trusted_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), CA_PEM).unwrap();
        let tls = tls_config("https://10.96.0.1:443", dir.path())
            .unwrap()
            .expect("https needs TLS");
        match tls.root_certs() {
            RootCerts::Specific(roots) => {
                assert_eq!(roots.len(), 1);
                let expected = ureq::tls::Certificate::from_pem(CA_PEM.as_bytes()).unwrap();
                assert_eq!(roots[0].der(), expected.der());
            }
            _ => panic!("expected the CA as a specific root"),
        }
        // Plain http (tests, a local proxy) needs none.
        assert!(
            tls_config("http://127.0.0.1:8001", dir.path())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn https_without_a_ca_fails_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let err = tls_config("https://10.96.0.1:443", dir.path()).unwrap_err();
        assert!(
            err.0.contains("needs the cluster's CA certificate"),
            "{err}"
        );
        assert!(err.0.contains("ca.crt"), "{err}");
        std::fs::write(dir.path().join("ca.crt"), "not a certificate\n").unwrap();
        let err = tls_config("https://10.96.0.1:443", dir.path()).unwrap_err();
        assert!(err.0.contains("holds no certificate"), "{err}");
    }

    #[test]
    fn container_states_from_a_pod_object() {
        let pod = serde_json::json!({"status": {
            "initContainerStatuses": [
                {"name": "sextant-collector", "state": {"running": {}}}
            ],
            "containerStatuses": [
                {"name": "waiting", "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "running", "state": {"running": {"startedAt": "2030-01-01T00:00:00Z"}}},
                {"name": "done", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
            ]
        }});
        assert_eq!(
            container_state_of(&pod, "waiting"),
            ContainerState::NotTerminated
        );
        assert_eq!(
            container_state_of(&pod, "running"),
            ContainerState::NotTerminated
        );
        assert_eq!(
            container_state_of(&pod, "done"),
            ContainerState::Terminated { exit_code: 3 }
        );
        assert_eq!(
            container_state_of(&pod, "missing"),
            ContainerState::NotTerminated
        );
        assert_eq!(
            container_state_of(&pod, "sextant-collector"),
            ContainerState::NotTerminated
        );
        assert_eq!(
            container_state_of(&serde_json::json!({}), "done"),
            ContainerState::NotTerminated
        );
    }

    #[test]
    fn answers_are_classified() {
        assert!(answer_error(503, "x", "m".into()).is_retryable());
        assert!(answer_error(429, "x", "m".into()).is_retryable());
        let forbidden = answer_error(403, "the container's log", "pods \"p\" is forbidden".into());
        assert!(!forbidden.is_retryable());
        assert!(forbidden.to_string().contains("pods/log"), "{forbidden}");
        assert_eq!(
            error_message(
                r#"{"kind":"Status","message":"container \"m\" in pod \"p\" is waiting to start: ContainerCreating"}"#
            ),
            "container \"m\" in pod \"p\" is waiting to start: ContainerCreating"
        );
    }
}
