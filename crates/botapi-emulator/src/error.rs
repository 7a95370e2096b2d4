//! `ApiError`: a failed Bot API call in Telegram's shape, `{"ok":false,"error_code":N,"description":"..."}`
//! with the matching HTTP status.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// A Bot API error answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {description}")]
pub struct ApiError {
    /// `error_code`, also the HTTP status.
    pub code: u16,
    /// `description`, e.g. `Bad Request: chat not found`.
    pub description: String,
    /// `parameters.retry_after`, for 429.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with this code and full description.
    pub fn new(code: u16, description: impl Into<String>) -> ApiError {
        ApiError { code, description: description.into(), retry_after: None }
    }

    /// 400 `Bad Request: <detail>`.
    pub fn bad_request(detail: impl AsRef<str>) -> ApiError {
        ApiError::new(400, format!("Bad Request: {}", detail.as_ref()))
    }

    /// 403 `Forbidden: <detail>`.
    pub fn forbidden(detail: impl AsRef<str>) -> ApiError {
        ApiError::new(403, format!("Forbidden: {}", detail.as_ref()))
    }

    /// 409 `Conflict: <detail>`.
    pub fn conflict(detail: impl AsRef<str>) -> ApiError {
        ApiError::new(409, format!("Conflict: {}", detail.as_ref()))
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized")
    }

    /// 404 `Not Found: method not found`.
    pub fn method_not_found() -> ApiError {
        ApiError::new(404, "Not Found: method not found")
    }

    /// 413 `Request Entity Too Large`.
    pub fn too_large() -> ApiError {
        ApiError::new(413, "Request Entity Too Large")
    }

    /// 429 `Too Many Requests: retry after N` with `parameters.retry_after`.
    pub fn too_many_requests(retry_after: u32) -> ApiError {
        let mut e = ApiError::new(429, format!("Too Many Requests: retry after {retry_after}"));
        e.retry_after = Some(retry_after);
        e
    }

    /// The JSON body Telegram sends for this error.
    pub fn body(&self) -> Value {
        let mut body = json!({"ok": false, "error_code": self.code, "description": self.description});
        if let Some(retry_after) = self.retry_after {
            body["parameters"] = json!({ "retry_after": retry_after });
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        (status, axum::Json(self.body())).into_response()
    }
}
