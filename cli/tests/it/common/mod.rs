//! What the end-to-end tests of the real binary share: a running `sdp local`, and a data
//! directory of their own.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a panic is the failure report

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `sdp local` and the URLs it printed.
pub struct Local {
    pub child: Child,
    pub urls: BTreeMap<String, String>,
}

impl Local {
    pub fn start(data_dir: &Path) -> Local {
        Local::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Local {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sdp"))
            .args(["local", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut urls = BTreeMap::new();
        // The table of outputs: four `Key  value` lines, sorted by key.
        for line in stdout.lines().take(4) {
            let line = line.unwrap();
            let (key, value) = line.split_once(' ').unwrap();
            urls.insert(key.to_owned(), value.trim().to_owned());
        }
        assert!(urls.contains_key("UrlForAPI"), "{urls:?}");
        Local { child, urls }
    }

    pub fn api(&self) -> &str {
        &self.urls["UrlForAPI"]
    }

    pub fn reports(&self) -> &str {
        &self.urls["UrlForReports"]
    }

    /// Stops it as a user or a service manager would (SIGTERM), and waits.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    pub fn kill_9(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no chance to flush anything
        self.child.wait().unwrap();
    }
}

/// A test that fails halfway must not leave its server running: it would hold the test run's
/// output pipe open (and the data directory's lock) long after the test binary exited.
impl Drop for Local {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fresh directory for one test, named after it and this process.
pub fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sdp-local-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
