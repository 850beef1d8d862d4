//! The REST surface: Kubernetes' URL layout for namespaced kinds, mapped onto [`Store`].
//!
//! Core kinds live under `/api/v1`, the others under `/apis/{group}/{version}`; both layouts go
//! to the same handlers, which read group and version from the path (empty and `v1` for core).
//! No discovery endpoints (`/api`, `/apis`): typed `Api<K>` and `Api::all_with` with an
//! `ApiResource` never ask for them.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};

use super::selector::Selector;
use super::store::{
    ApiError, Change, DeleteOptions, PatchType, RESOURCES, ResourceId, Scope, Store, Target,
    WatchStart, resource_id, scoped_event,
};

pub type Shared = Arc<Mutex<Store>>;

/// kube-rs's default watch timeout (`WatchParams::timeout`), used when a watch names none.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(290);

/// The API's table of contents.
pub fn router(store: Shared) -> Router {
    let collection = || get(list_or_watch).post(create);
    let object = || get(get_object).put(replace).patch(patch).delete(delete);
    let status = || get(get_object).put(replace_status).patch(patch_status);
    Router::new()
        .route("/api/{version}/{plural}", get(list_or_watch))
        .route(
            "/api/{version}/namespaces/{namespace}/{plural}",
            collection(),
        )
        .route(
            "/api/{version}/namespaces/{namespace}/{plural}/{name}",
            object(),
        )
        .route(
            "/api/{version}/namespaces/{namespace}/{plural}/{name}/status",
            status(),
        )
        .route("/apis/{group}/{version}/{plural}", get(list_or_watch))
        .route(
            "/apis/{group}/{version}/namespaces/{namespace}/{plural}",
            collection(),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
            object(),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}/status",
            status(),
        )
        .fallback(|| async { ApiError::unknown_resource().into_response() })
        .layer(middleware::from_fn_with_state(
            store.clone(),
            record_request,
        ))
        .with_state(store)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.status())
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn record_request(State(store): State<Shared>, request: Request, next: Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri());
    store.lock().unwrap().requests.push(line);
    next.run(request).await
}

/// The resource and object a request names.
struct Named {
    resource: ResourceId,
    namespace: Option<String>,
    name: String,
}

fn target(path: &HashMap<String, String>) -> Result<Named, ApiError> {
    let part = |key: &str| path.get(key).cloned().unwrap_or_default();
    let resource = resource_id(&part("group"), &part("version"), &part("plural"))
        .ok_or_else(ApiError::unknown_resource)?;
    Ok(Named {
        resource,
        namespace: path.get("namespace").cloned(),
        name: part("name"),
    })
}

type Params = Query<HashMap<String, String>>;
type PathParams = Path<HashMap<String, String>>;

async fn list_or_watch(
    State(store): State<Shared>,
    Path(path): PathParams,
    Query(query): Params,
) -> Result<Response, ApiError> {
    let target = target(&path)?;
    let labels = Selector::labels(query.get("labelSelector").map(String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = Selector::fields(query.get("fieldSelector").map(String::as_str))
        .map_err(ApiError::bad_request)?;
    let scope = Scope {
        resource: target.resource,
        namespace: target.namespace.as_deref(),
        labels: &labels,
        fields: &fields,
    };
    let rt = &RESOURCES[target.resource];
    if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
        return Ok(watch(&store, &scope, &query));
    }
    // `limit` is ignored: one page holds everything, with no `continue` token.
    let (items, resource_version) = store.lock().unwrap().list(&scope);
    let list = json!({
        "apiVersion": rt.api_version(),
        "kind": format!("{}List", rt.kind),
        "metadata": { "resourceVersion": resource_version.to_string() },
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list))
}

/// A watch: JSON lines of `{type, object}` until `timeoutSeconds`, as Kubernetes streams them.
fn watch(store: &Shared, scope: &Scope, query: &HashMap<String, String>) -> Response {
    let initial_events = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let start = match query.get("resourceVersion").map(String::as_str) {
        _ if initial_events => WatchStart::InitialEvents,
        None | Some("" | "0") => WatchStart::Now,
        Some(rv) => match rv.parse() {
            Ok(rv) => WatchStart::After(rv),
            Err(_) => {
                return ApiError::bad_request(format!("resourceVersion {rv:?} is not a number"))
                    .into_response();
            }
        },
    };
    let rt = &RESOURCES[scope.resource];
    let (backlog, receiver, resource_version) = {
        let store = store.lock().unwrap();
        let (backlog, receiver) = store.watch(scope, start);
        (backlog, receiver, store.resource_version())
    };
    let mut lines: VecDeque<String> = backlog
        .into_iter()
        .map(|(t, o)| event_line(t.as_str(), &o))
        .collect();
    if initial_events {
        let bookmark = json!({
            "apiVersion": rt.api_version(),
            "kind": rt.kind,
            "metadata": {
                "resourceVersion": resource_version.to_string(),
                "annotations": { "k8s.io/initial-events-end": "true" },
            },
        });
        lines.push_back(event_line("BOOKMARK", &bookmark));
    }
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let live = LiveWatch {
        lines,
        receiver,
        deadline: tokio::time::Instant::now() + timeout,
        resource: scope.resource,
        namespace: scope.namespace.map(str::to_string),
        labels: scope.labels.clone(),
        fields: scope.fields.clone(),
    };
    let stream = futures::stream::unfold(live, |mut live| async move {
        let line = live.next_line().await?;
        Some((Ok::<_, Infallible>(Bytes::from(line)), live))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a static response builds")
}

fn event_line(event_type: &str, object: &Value) -> String {
    let mut line = json!({ "type": event_type, "object": object }).to_string();
    line.push('\n');
    line
}

/// One watch's state: the events it starts with, then live changes.
struct LiveWatch {
    lines: VecDeque<String>,
    receiver: broadcast::Receiver<Arc<Change>>,
    deadline: tokio::time::Instant,
    resource: ResourceId,
    namespace: Option<String>,
    labels: Selector,
    fields: Selector,
}

impl LiveWatch {
    /// The next line to send; `None` ends the watch (timeout, or too far behind: the client
    /// watches again from its last resourceVersion and the log replays what it missed).
    async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Some(line);
            }
            let change = tokio::select! {
                change = self.receiver.recv() => change,
                () = tokio::time::sleep_until(self.deadline) => return None,
            };
            let change = match change {
                Ok(change) => change,
                Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
            };
            let scope = Scope {
                resource: self.resource,
                namespace: self.namespace.as_deref(),
                labels: &self.labels,
                fields: &self.fields,
            };
            if let Some((change_type, object)) = scoped_event(&scope, &change) {
                return Some(event_line(change_type.as_str(), &object));
            }
        }
    }
}

async fn create(
    State(store): State<Shared>,
    Path(path): PathParams,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = target(&path)?;
    let body = parse_body(&body)?;
    let namespace = target.namespace.unwrap_or_default();
    let created = store
        .lock()
        .unwrap()
        .create(target.resource, &namespace, body)?;
    Ok(json_response(StatusCode::CREATED, &created))
}

async fn get_object(
    State(store): State<Shared>,
    Path(path): PathParams,
) -> Result<Response, ApiError> {
    let target = target(&path)?;
    let namespace = target.namespace.unwrap_or_default();
    let object = store
        .lock()
        .unwrap()
        .get(target.resource, &namespace, &target.name)?;
    Ok(json_response(StatusCode::OK, &object))
}

async fn replace(
    state: State<Shared>,
    path: PathParams,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_replace(state, path, body, Target::Object)
}

async fn replace_status(
    state: State<Shared>,
    path: PathParams,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_replace(state, path, body, Target::Status)
}

fn write_replace(
    State(store): State<Shared>,
    Path(path): PathParams,
    body: Bytes,
    write: Target,
) -> Result<Response, ApiError> {
    let target = target(&path)?;
    let body = parse_body(&body)?;
    let namespace = target.namespace.unwrap_or_default();
    let replaced =
        store
            .lock()
            .unwrap()
            .replace(target.resource, &namespace, &target.name, body, write)?;
    Ok(json_response(StatusCode::OK, &replaced))
}

async fn patch(
    state: State<Shared>,
    path: PathParams,
    query: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_patch(state, path, query, headers, body, Target::Object)
}

async fn patch_status(
    state: State<Shared>,
    path: PathParams,
    query: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write_patch(state, path, query, headers, body, Target::Status)
}

fn write_patch(
    State(store): State<Shared>,
    Path(path): PathParams,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
    write: Target,
) -> Result<Response, ApiError> {
    let target = target(&path)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let patch_type = PatchType::from_content_type(content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
    if patch_type == PatchType::Apply && query.get("fieldManager").is_none_or(String::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let namespace = target.namespace.unwrap_or_default();
    let mut store = store.lock().unwrap();
    let existed = store.get(target.resource, &namespace, &target.name).is_ok();
    let patched = store.patch(
        target.resource,
        &namespace,
        &target.name,
        patch_type,
        &body,
        write,
    )?;
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_response(code, &patched))
}

async fn delete(
    State(store): State<Shared>,
    Path(path): PathParams,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = target(&path)?;
    let options = DeleteOptions::from_body(&body)?;
    let namespace = target.namespace.unwrap_or_default();
    let deleted =
        store
            .lock()
            .unwrap()
            .delete(target.resource, &namespace, &target.name, &options)?;
    Ok(json_response(StatusCode::OK, &deleted))
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}
