//! The saved state of the sequence engines: one counter under a named key.
//!
//! Random search saves how many draws it has made, grid and Sobol the next index of their
//! sequence. A counter is all they need to continue exactly where they stopped; it is kept as a
//! JSON object (`{"draws": 12}`) so that a state handed to the wrong engine is recognised.

use serde_json::Value as Json;

use crate::engine::{EngineError, SuggestRequest};

/// Reads `{ key: n }` from the request's state; `start` when there is none (or JSON `null`).
pub(crate) fn read_counter(
    request: &SuggestRequest<'_>,
    key: &str,
    start: u64,
) -> Result<u64, EngineError> {
    match request.state {
        None | Some(Json::Null) => Ok(start),
        Some(state) => state.get(key).and_then(Json::as_u64).ok_or_else(|| {
            EngineError::BadState(format!(
                "expected an object {{\"{key}\": <non-negative integer>}}, got {state}"
            ))
        }),
    }
}

/// The number of trials created so far (finished and running): where a sampling engine that lost
/// its state starts, so that it does not replay the points of its first calls.
pub(crate) fn trials_so_far(request: &SuggestRequest<'_>) -> u64 {
    (request.history.len() as u64).saturating_add(request.pending.len() as u64)
}

/// The state `{ key: n }`.
pub(crate) fn counter_state(key: &str, counter: u64) -> Json {
    let mut map = serde_json::Map::new();
    map.insert(key.to_owned(), Json::from(counter));
    Json::Object(map)
}
