//! The one place errors meet HTTP: every failure becomes a status and a JSON body
//! `{"error": {"code", "message"}}`. Internal faults are logged and never leaked.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ingest::IngestError;
use crate::plugin::LimitsError;
use crate::store::StoreError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("this key may not access that tenant")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A per-tenant quota is full: 409 naming it.
    #[error("{message}")]
    Quota { quota: &'static str, message: String },
    #[error(transparent)]
    Limits(#[from] LimitsError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub(super) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Quota { .. } => (StatusCode::CONFLICT, "quota_exceeded"),
            ApiError::Limits(LimitsError::Invalid(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Limits(LimitsError::AboveCeiling { .. }) => (StatusCode::UNPROCESSABLE_ENTITY, "above_ceiling"),
            ApiError::Limits(LimitsError::NotGranted { .. }) => (StatusCode::FORBIDDEN, "capability_not_granted"),
            ApiError::Ingest(e) => match e {
                IngestError::UnknownTenant(_) => (StatusCode::NOT_FOUND, "unknown_tenant"),
                IngestError::NotConfigured(_) => (StatusCode::NOT_FOUND, "provider_not_configured"),
                IngestError::Unauthorized(crate::ingest::VerifyError::Stale { .. }) => {
                    (StatusCode::UNAUTHORIZED, "stale_timestamp")
                }
                IngestError::Unauthorized(crate::ingest::VerifyError::BadToken) => {
                    (StatusCode::UNAUTHORIZED, "invalid_token")
                }
                IngestError::Unauthorized(crate::ingest::VerifyError::BadCredentials) => {
                    (StatusCode::UNAUTHORIZED, "invalid_credentials")
                }
                IngestError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
                IngestError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
                IngestError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                IngestError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_rejected"),
            },
            ApiError::Store(_) | ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<crate::ingest::ReplayError> for ApiError {
    fn from(e: crate::ingest::ReplayError) -> Self {
        use crate::ingest::ReplayError;
        match e {
            ReplayError::Unknown(_) => ApiError::NotFound(e.to_string()),
            ReplayError::Rejected(_) => ApiError::Conflict(e.to_string()),
            ReplayError::NoLongerNormalizes(_) => ApiError::Unprocessable(e.to_string()),
            ReplayError::Store(e) => ApiError::Store(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "internal error");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let mut error = json!({ "code": code, "message": message });
        // What the client must change: the limit or the quota, by name.
        match &self {
            ApiError::Limits(LimitsError::AboveCeiling { field, .. } | LimitsError::NotGranted { field, .. }) => {
                error["field"] = json!(field)
            }
            ApiError::Quota { quota, .. } => error["quota"] = json!(quota),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let ApiError::Ingest(IngestError::Throttled { retry_after_s }) = &self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, (*retry_after_s).into());
        }
        response
    }
}
