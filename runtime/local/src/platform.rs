//! Starting and stopping the local platform: the log, the state, the processor and the server,
//! in the order that loses nothing on the way down.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use sdp_core::join::JoinConfig;
use sdp_core::ports::StoreError;

use crate::log::LocalLog;
use crate::server::{self, Apis, INGEST_BASE, PREDICTIONS_BASE};
use crate::state::LocalState;

pub struct Options {
    pub data_dir: PathBuf,
    /// 0 picks a free port.
    pub port: u16,
    pub join: JoinConfig,
    /// How often the model is retrained (when bids arrived since the last time).
    pub train_every: std::time::Duration,
    /// How often closed hours of the raw lake are looked for and compacted.
    pub compact_every: std::time::Duration,
}

/// A file in the data directory while a platform runs on it: found at start, the last one did not
/// stop cleanly (`kill -9`, a crash, a power cut).
pub const RUNNING: &str = "running";

/// The base URLs, named like the stack outputs of a deploy.
#[derive(Debug, Clone)]
pub struct Urls {
    pub api: String,
    pub reports: String,
    pub predictions: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen { port: u16, source: std::io::Error },
}

/// A running platform; [`Running::shutdown`] stops it cleanly.
pub struct Running {
    pub urls: Urls,
    pub address: SocketAddr,
    /// The data directory's [`RUNNING`] file, removed by a clean stop.
    running: PathBuf,
    stop_server: watch::Sender<bool>,
    stop_processor: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    trainer: tokio::task::JoinHandle<()>,
    compactor: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
    processor: std::thread::JoinHandle<()>,
}

pub async fn start(options: Options) -> Result<Running, StartError> {
    std::fs::create_dir_all(&options.data_dir).map_err(|source| StartError::DataDir {
        path: options.data_dir.clone(),
        source,
    })?;
    let (log, writer) = LocalLog::open(&options.data_dir.join("log.redb"))?;
    let state = LocalState::open(&options.data_dir.join("state.redb"))?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, options.port)))
        .await
        .map_err(|source| StartError::Listen {
            port: options.port,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| StartError::Listen {
        port: options.port,
        source,
    })?;

    // One lake directory: the processor's raw rows and dead letters, compaction, retraining.
    // The databases are open, so this process holds the data directory: if the last one did not
    // stop cleanly, what it left is cleared before anything reads the lake. (Only then: the
    // clearing lists, and so reads, every Parquet file, which would delay every start.)
    let lake = crate::scheduled::lake(&options.data_dir);
    let running = options.data_dir.join(RUNNING);
    if running.exists() {
        crate::scheduled::recover_after_crash(&lake).await;
    }
    std::fs::write(&running, b"").map_err(|source| StartError::DataDir {
        path: running.clone(),
        source,
    })?;
    let (stop_processor, processor_stopped) = watch::channel(false);
    let (reader, processor_state, join) = (log.reader(), state.clone(), options.join);
    let processor_lake = Arc::clone(&lake);
    // Its own thread: commits sync to disk, which must not stall the HTTP workers.
    let processor = std::thread::Builder::new()
        .name("sdp-processor".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(crate::processor::run(
                    reader,
                    processor_state,
                    processor_lake,
                    join,
                    processor_stopped,
                )),
                Err(err) => eprintln!("processor: cannot start its runtime: {err}"),
            }
        })
        .map_err(|e| StoreError::Permanent {
            message: format!("cannot start the processor: {e}"),
            source: None,
        })?;

    let (stop_server, server_stopped) = watch::channel(false);
    let model = crate::scheduled::model_cache(&lake);
    let trainer = tokio::spawn(crate::scheduled::retraining(
        Arc::clone(&lake),
        options.train_every,
        server_stopped.clone(),
    ));
    let compactor = tokio::spawn(crate::scheduled::compaction(
        lake,
        options.compact_every,
        server_stopped.clone(),
    ));
    let server = tokio::spawn(server::serve(
        listener,
        Arc::new(Apis { log, state, model }),
        server_stopped,
    ));
    let base = format!("http://{address}");
    Ok(Running {
        urls: Urls {
            api: format!("{base}{INGEST_BASE}"),
            reports: base.clone(),
            predictions: format!("{base}{PREDICTIONS_BASE}"),
        },
        address,
        running,
        stop_server,
        stop_processor,
        server,
        trainer,
        compactor,
        writer,
        processor,
    })
}

impl Running {
    /// Stops accepting requests, answers those in flight, commits every accepted event, processes
    /// the log to its end, and closes the databases.
    pub async fn shutdown(self) {
        let _ = self.stop_server.send(true);
        let _ = self.server.await; // drops the server's log handle: the writer drains and ends
        let _ = self.trainer.await;
        let _ = self.compactor.await;
        let (writer, processor, stop_processor) =
            (self.writer, self.processor, self.stop_processor);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = writer.join();
            let _ = stop_processor.send(true);
            let _ = processor.join();
        })
        .await;
        // Stopped cleanly: nothing for the next start to clear.
        let _ = std::fs::remove_file(&self.running);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::server::{DRAIN_TIMEOUT, HEADER_TIMEOUT};

    async fn platform(dir: &std::path::Path) -> Running {
        start(Options {
            data_dir: dir.to_owned(),
            port: 0,
            join: JoinConfig::from_minutes(10, 5, 5).unwrap(),
            train_every: Duration::from_secs(3600),
            compact_every: Duration::from_secs(3600),
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stalls_in_its_headers_is_let_go_and_does_not_hold_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let running = platform(dir.path()).await;
        let mut stalled = tokio::net::TcpStream::connect(running.address)
            .await
            .unwrap();
        stalled
            .write_all(b"POST /ingest/bid HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();

        // The server closes the connection once the header timeout passes.
        let mut buffer = [0u8; 256];
        let read = tokio::time::timeout(HEADER_TIMEOUT * 3, stalled.read(&mut buffer)).await;
        assert!(
            matches!(read, Ok(Ok(_) | Err(_))),
            "the stalled connection is still open after {:?}",
            HEADER_TIMEOUT * 3
        );

        // A client that stalls in its body does not hold a stop beyond the drain timeout.
        let mut slow = tokio::net::TcpStream::connect(running.address)
            .await
            .unwrap();
        slow.write_all(
            b"POST /ingest/bid HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"tx",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::time::timeout(DRAIN_TIMEOUT * 2, running.shutdown())
            .await
            .expect("the stop waited on a stalled client");
        drop(slow);
    }
}
