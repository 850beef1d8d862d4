//! Who may do what: the admin token for administrative writes (and reads, when locked down), a
//! trial's own token for pushing that trial's metrics.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::{ApiError, AppState};
use crate::auth::tokens_match;

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
/// Checked before the trial is looked up, so a request without the right token learns nothing
/// about which experiments and trials exist.
pub fn require_trial(state: &AppState, headers: &HeaderMap, trial: &str) -> Result<(), ApiError> {
    let Some(token) = bearer(headers)? else {
        // Nothing about the trial (not even whether it exists) goes back without a token.
        return Err(ApiError::unauthenticated(
            "pushing a trial's metrics needs its token: send `Authorization: Bearer $SEXTANT_TOKEN` \
             (the trial's process has it in its environment)",
        ));
    };
    if tokens_match(token, &state.access().admin_token) {
        return Ok(());
    }
    if let Some(expected) = state.store().trial_token(trial)?
        && tokens_match(token, &expected)
    {
        return Ok(());
    }
    match state.store().token_owner(token)? {
        Some(owner) => Err(ApiError::forbidden(format!(
            "this token belongs to trial {owner}; a trial may push only its own metrics, not trial {trial}'s"
        ))),
        None => Err(ApiError::unauthenticated(
            "the token is not this trial's, nor any trial's on this server; use the SEXTANT_TOKEN the trial was given",
        )),
    }
}
