//! Structured JSON logs on stdout (CloudWatch takes them as they are), filtered by `RUST_LOG`.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time() // CloudWatch stamps every line
        .with_target(false)
        .init();
}
