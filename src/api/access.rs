//! Who may do what: the admin token for administrative writes (and reads, when locked down), a
//! trial's own token for pushing that trial's metrics.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::{ApiError, AppState};
use crate::auth::tokens_match;
use crate::store::TrialRecord;

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthenticated(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

/// Administrative writes (create, stop, delete) need the admin token.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = bearer(headers)? else {
        return Err(ApiError::unauthenticated(
            "this needs the server's admin token: send `Authorization: Bearer <token>` (the CLI reads SEXTANT_ADMIN_TOKEN, \
             or the admin-token file `sextant serve` printed at start)",
        ));
    };
    if tokens_match(token, &state.access().admin_token) {
        return Ok(());
    }
    if state.store().token_owner(token)?.is_some() {
        return Err(ApiError::forbidden(
            "a trial's token may push that trial's metrics only; this needs the admin token",
        ));
    }
    Err(ApiError::unauthenticated(
        "the token is not valid on this server; use its admin token (SEXTANT_ADMIN_TOKEN, or the admin-token file)",
    ))
}

/// Reads are open unless the server was started with `--auth-reads`.
pub fn require_read(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.access().auth_reads {
        require_admin(state, headers)
    } else {
        Ok(())
    }
}

/// A push for `trial` needs that trial's token (or the admin token).
pub fn require_trial(
    state: &AppState,
    headers: &HeaderMap,
    trial: &TrialRecord,
) -> Result<(), ApiError> {
    let Some(token) = bearer(headers)? else {
        return Err(ApiError::unauthenticated(format!(
            "pushing metrics for trial {} needs its token: send `Authorization: Bearer $SEXTANT_TOKEN` \
             (the trial's process has it in its environment)",
            trial.name
        )));
    };
    if tokens_match(token, &state.access().admin_token) {
        return Ok(());
    }
    if let Some(expected) = state.store().trial_token(&trial.name)?
        && tokens_match(token, &expected)
    {
        return Ok(());
    }
    match state.store().token_owner(token)? {
        Some(owner) => Err(ApiError::forbidden(format!(
            "this token belongs to trial {owner}; a trial may push only its own metrics, not trial {}'s",
            trial.name
        ))),
        None => Err(ApiError::unauthenticated(format!(
            "the token is not trial {}'s (nor any trial's on this server)",
            trial.name
        ))),
    }
}
