//! API errors: `{"error": {"code", "message", "field"}}` with the matching HTTP status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::controller::supervisor::SuperviseError;
use crate::store::StoreError;

/// An error reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// What went wrong and how to fix it.
    pub message: String,
    /// The request field at fault (a JSON path, a query parameter, a header).
    pub field: Option<String>,
    /// Every problem, when there are several.
    pub details: Vec<crate::spec::error::FieldError>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            details: Vec::new(),
        }
    }

    /// 400 for a refused Experiment: the first field, every problem in `details`.
    pub fn spec(error: crate::spec::SpecError) -> Self {
        match error {
            crate::spec::SpecError::Syntax(message) => ApiError::invalid("body", message),
            crate::spec::SpecError::Invalid(problems) => {
                let message = problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                ApiError {
                    field: problems.first().map(|p| p.path.clone()),
                    details: if problems.len() > 1 {
                        problems
                    } else {
                        Vec::new()
                    },
                    ..Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
                }
            }
        }
    }

    /// 400: something in the request is wrong; `field` says where.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
        }
    }

    /// 401: no credentials, or ones that name nobody.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError {
            field: Some("Authorization".into()),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
        }
    }

    /// 403: credentials of someone who may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            field: Some("Authorization".into()),
            ..Self::new(StatusCode::FORBIDDEN, "permission_denied", message)
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the name is taken.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "already_exists", message)
    }

    /// 409: not in a state where this can be done.
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "failed_precondition", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The code for a status that a layer (not a handler) produced.
    pub fn code_for(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 => "invalid_argument",
            401 => "unauthenticated",
            403 => "permission_denied",
            404 => "not_found",
            405 => "method_not_allowed",
            408 => "timeout",
            409 => "failed_precondition",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            429 => "resource_exhausted",
            503 => "unavailable",
            s if s >= 500 => "internal",
            _ => "invalid_argument",
        }
    }

    /// An error for a status a layer produced, with the message it gave (if any).
    pub fn from_status(status: StatusCode, message: &str) -> Self {
        let message = match status.as_u16() {
            408 => "the request took too long and was cancelled; nothing it would have written was acknowledged"
                .to_string(),
            413 => format!(
                "the request body is too large ({}); send smaller batches",
                message.trim()
            ),
            404 => "no such endpoint; see GET /openapi.json for the API".to_string(),
            405 => "this endpoint does not take that method; see GET /openapi.json".to_string(),
            _ if message.trim().is_empty() => status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string(),
            _ => message.trim().to_string(),
        };
        Self::new(status, Self::code_for(status), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({
            "code": self.code, "message": self.message, "field": self.field
        });
        if !self.details.is_empty() {
            error["details"] = self
                .details
                .iter()
                .map(|p| serde_json::json!({"field": p.path, "value": p.value, "message": p.message}))
                .collect();
        }
        let body = serde_json::json!({ "error": error });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(error.to_string())
    }
}

impl From<SuperviseError> for ApiError {
    fn from(error: SuperviseError) -> Self {
        match error {
            SuperviseError::Store(e) => e.into(),
            SuperviseError::Refused(message) => ApiError {
                field: Some("body".into()),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
            },
            SuperviseError::NotStoppable(message) => ApiError::failed_precondition(message),
        }
    }
}
