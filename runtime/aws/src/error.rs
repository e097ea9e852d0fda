//! Turning SDK failures into [`StoreError`]s that name the AWS error and say whether to retry.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sdp_core::ports::{with_causes, StoreError};

/// AWS error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT_CODES: [&str; 13] = [
    "ThrottlingException",
    // S3's: 503 SlowDown, 500 InternalError, 400 RequestTimeout (the upload was too slow).
    "SlowDown",
    "InternalError",
    "RequestTimeout",
    // Firehose's and Kinesis's 503.
    "ServiceUnavailableException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
    "TransactionInProgressException",
];

pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Classifies an SDK failure of `operation` (e.g. `DynamoDB TransactWriteItems`).
pub fn classify<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => service.err().code().is_some_and(is_transient_code),
        _ => false,
    };
    let message = match err.as_service_error() {
        Some(service) => format!(
            "{operation} failed: {}: {}",
            service.code().unwrap_or("UnknownError"),
            service.message().unwrap_or("no message")
        ),
        None => format!("{operation} failed: {}", with_causes(&err)),
    };
    let source: Option<Box<dyn std::error::Error + Send + Sync>> = Some(Box::new(err));
    if transient {
        StoreError::Transient { message, source }
    } else {
        StoreError::Permanent { message, source }
    }
}

/// A transient failure this adapter detected itself (not from an SDK error).
pub fn transient(message: String) -> StoreError {
    StoreError::Transient {
        message,
        source: None,
    }
}

pub fn permanent(message: String) -> StoreError {
    StoreError::Permanent {
        message,
        source: None,
    }
}

/// Exponential backoff with full jitter: attempt 0 waits up to `base`, doubling to `cap`.
pub async fn backoff(attempt: u32, base_ms: u64, cap_ms: u64) {
    let ceiling = base_ms.saturating_mul(1 << attempt.min(16)).min(cap_ms);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let wait = if ceiling == 0 { 0 } else { nanos % ceiling };
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}
