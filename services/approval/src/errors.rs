//! How the approval service's domain errors answer over HTTP, so handlers
//! return `Result<_, ApiError>` and use `?`.

use zengate_runtime::error::ApiError;

use crate::decide::DecideError;
use crate::retry::RetryError;
use crate::store::BucketError;

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::NotFound => not_found(),
            DecideError::Conflict(state) => {
                ApiError::conflict("already_decided", format!("the item is already {state}"))
            }
            DecideError::Invalid(m) => ApiError::bad_request("invalid_edit", m),
            DecideError::Store(e) => e.into(),
        }
    }
}

impl From<BucketError> for ApiError {
    fn from(e: BucketError) -> Self {
        tracing::warn!(error = %e, "approvals bucket unavailable");
        ApiError::unavailable("store_unavailable", "the approvals store is unavailable", 2)
    }
}

impl From<RetryError> for ApiError {
    fn from(e: RetryError) -> Self {
        let code = match e {
            RetryError::NotFound => return not_found(),
            RetryError::Store(store) => return store.into(),
            RetryError::NotFailed(_) => "not_failed",
            RetryError::InFlight => "retry_in_flight",
            RetryError::Unsealed => "unsealed",
            RetryError::Changed => "changed",
        };
        ApiError::conflict(code, e.to_string())
    }
}

/// No item with the requested id.
pub fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no approval item with this id")
}
