//! Lambda `processor`: on the Kinesis stream, joins and counts each event exactly once, and lands
//! the joined rows and aggregate snapshots in the lake through Firehose; a record that can never
//! be processed is kept in the lake bucket's `dead-letter/` prefix.

use aws_lambda_events::kinesis::KinesisEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use sdp_aws::{DynamoStore, FirehoseLake};
use sdp_functions::{handlers, settings, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = settings::aws().await;
    let join = settings::join_config()?;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        settings::required("STATE_TABLE")?,
        settings::required("AGGREGATES_TABLE")?,
    );
    let lake = FirehoseLake::new(
        aws_sdk_firehose::Client::new(&config),
        settings::delivery_streams()?,
    );
    // Records that can never be processed are kept in the lake bucket (`dead-letter/`).
    let dead_letters = settings::bucket(&config)?;
    let namespace = settings::required("METRICS_NAMESPACE")?;
    let (store, join, lake, dead_letters, namespace) =
        (&store, &join, &lake, &dead_letters, namespace.as_str());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            handlers::processor(store, join, lake, dead_letters, namespace, event.payload)
                .await
                .map_err(|e| lambda_runtime::Error::from(sdp_core::ports::with_causes(&e)))
        },
    ))
    .await
}
