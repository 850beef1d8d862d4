//! The server's HTTP API (axum): experiments, trials, metrics (read and push), the suggestion API,
//! health, Prometheus metrics and the OpenAPI document. `docs/api.md` describes every endpoint.
//!
//! Writes are authenticated: administrative ones with the server's admin token, metric pushes with
//! the pushing trial's own token. A push is acknowledged only once its points are on disk.

pub mod access;
pub mod downsample;
pub mod durability;
pub mod error;
pub mod experiments;
pub mod series;
pub mod telemetry;
pub mod trials;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;

use crate::controller::supervisor::Supervisor;
use crate::store::Store;
use durability::GroupCommit;
use telemetry::Telemetry;

/// Largest body of the experiment, trial and metrics endpoints: an Experiment document, or a push of
/// up to [`series::MAX_POINTS_PER_PUSH`] points.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How long a request may take unless the server is told otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The OpenAPI document the server serves at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// How the API guards access.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// The admin token.
    pub admin_token: String,
    /// Reads need the admin token too.
    pub auth_reads: bool,
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Store,
    supervisor: Supervisor,
    access: AccessConfig,
    commit: GroupCommit,
    telemetry: Telemetry,
    ready: AtomicBool,
}

impl AppState {
    /// State over a store and the supervisor running its experiments. Starts the group-commit
    /// task, so it must be called inside the tokio runtime.
    pub fn new(store: Store, supervisor: Supervisor, access: AccessConfig) -> AppState {
        AppState {
            inner: Arc::new(Shared {
                commit: GroupCommit::start(store.clone()),
                store,
                supervisor,
                access,
                telemetry: Telemetry::new(),
                ready: AtomicBool::new(false),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    /// Access settings.
    pub fn access(&self) -> &AccessConfig {
        &self.inner.access
    }

    /// Group commit.
    pub fn commit(&self) -> &GroupCommit {
        &self.inner.commit
    }

    /// Telemetry.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// Marks the server ready (`/readyz` answers 200 from now on).
    pub fn set_ready(&self) {
        self.inner.ready.store(true, Ordering::Release);
    }
}

/// Every route of the server, with the methods each takes; the OpenAPI document and docs/api.md
/// are checked against this list.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/experiments", &["get", "post"]),
    ("/v1/experiments/{name}", &["get", "delete"]),
    ("/v1/experiments/{name}/stop", &["post"]),
    ("/v1/experiments/{name}/trials", &["get"]),
    ("/v1/experiments/{name}/trials/{trial}", &["get"]),
    ("/v1/experiments/{name}/trials/{trial}/stop", &["post"]),
    (
        "/v1/experiments/{name}/trials/{trial}/metrics",
        &["get", "post"],
    ),
    ("/v1/suggestions", &["post"]),
    ("/v1/suggestions/validate", &["post"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
];

/// The whole API.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let api = Router::new()
        .route(
            "/v1/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route(
            "/v1/experiments/{name}",
            get(experiments::get).delete(experiments::delete),
        )
        .route("/v1/experiments/{name}/stop", post(experiments::stop))
        .route("/v1/experiments/{name}/trials", get(trials::list))
        .route("/v1/experiments/{name}/trials/{trial}", get(trials::get))
        .route(
            "/v1/experiments/{name}/trials/{trial}/stop",
            post(trials::stop),
        )
        .route(
            "/v1/experiments/{name}/trials/{trial}/metrics",
            get(series::read).post(series::push),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone());
    api.merge(sextant_suggestion::api::router())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(middleware::from_fn_with_state(state, observe))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.inner.ready.load(Ordering::Acquire) {
        "ready\n".into_response()
    } else {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "the server is still resuming experiments".into(),
            field: None,
            details: Vec::new(),
        }
        .into_response()
    }
}

async fn prometheus(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store().clone();
    let telemetry = state.telemetry().clone();
    let text = tokio::task::spawn_blocking(move || telemetry.render(&store))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Times suggestion calls, counts errors, and gives every error the JSON shape, including the
/// ones layers produce (body too large, timeout, no such route) as plain text.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let suggestion = request.uri().path().starts_with("/v1/suggestions");
    let started = Instant::now();
    let response = next.run(request).await;
    if suggestion && response.status().is_success() {
        state.telemetry().observe_suggestion(started.elapsed());
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    state.telemetry().rejected(ApiError::code_for(status));
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let mut error = ApiError::from_status(status, &String::from_utf8_lossy(&body));
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        error.field = Some("body".into());
    }
    error.into_response()
}

/// Serves `router` on `listener` until `shutdown` resolves, with `TCP_NODELAY` on every accepted
/// connection: small JSON replies must not wait for Nagle's algorithm and delayed ACKs (about
/// 40 ms a call otherwise).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A body as a string, or an error naming it.
pub(crate) fn body_text(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|e| ApiError::invalid("body", format!("not UTF-8: {e}")))
}
