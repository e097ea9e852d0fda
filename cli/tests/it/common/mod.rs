//! What the end-to-end tests of the real binary share: a running `sdp local`, and a data
//! directory of their own.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a panic is the failure report

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

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
        Local::try_start(data_dir, extra, &[], Stdio::inherit()).unwrap()
    }

    /// Starts it with `env` added to its environment and its stderr to `stderr`; an error if it
    /// exits before printing its URLs (a crash point armed in `env` may stop it that early).
    pub fn try_start(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Result<Local, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sdp"))
            .args(["local", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut urls = BTreeMap::new();
        // The table of outputs: four `Key  value` lines, sorted by key.
        for line in stdout.lines().take(4) {
            let Ok(line) = line else { break };
            let (key, value) = line.split_once(' ').unwrap();
            urls.insert(key.to_owned(), value.trim().to_owned());
        }
        let mut local = Local { child, urls };
        if local.urls.contains_key("UrlForAPI") {
            Ok(local)
        } else {
            let status = local.child.wait().unwrap();
            Err(format!(
                "sdp local stopped before printing its URLs ({status}): {:?}",
                local.urls
            ))
        }
    }

    pub fn api(&self) -> &str {
        &self.urls["UrlForAPI"]
    }

    pub fn reports(&self) -> &str {
        &self.urls["UrlForReports"]
    }

    /// Its three URLs, as `sdp verify` and `sdp load` take them: (api, reports, predictions).
    pub fn target(&self) -> (&str, &str, &str) {
        (self.api(), self.reports(), &self.urls["UrlForPredictions"])
    }

    /// A campaign's lifetime totals (bids, imps, clicks), from its report.
    pub fn totals(&self, campaign: i64) -> (i64, i64, i64) {
        let (status, body) = get(
            &agent(),
            &format!("{}/reports/campaigns/{campaign}", self.reports()),
        );
        assert_eq!(status, 200, "{body}");
        let count = |key: &str| body[key].as_i64().unwrap();
        (count("bids"), count("imps"), count("clicks"))
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

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
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

/// A blocking HTTP client that reports every status (not only 2xx) and gives up after 10 s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// POSTs a JSON body; (status, body). A transport error (the server died) is status 0.
pub fn post(agent: &ureq::Agent, url: &str, body: &str) -> (u16, String) {
    match agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
    {
        Ok(mut response) => (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// GETs a JSON answer; (status, body).
pub fn get(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

/// Runs `sdp query` on `dir`; (exit code, stdout, stderr).
pub fn query(dir: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdp"))
        .args(["query", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rows of a one-statement `sdp query --format json`.
pub fn query_rows(dir: &Path, sql: &str) -> Vec<Value> {
    let (code, stdout, stderr) = query(dir, &["--format", "json", sql], None);
    assert_eq!(code, 0, "{sql}: {stderr}");
    serde_json::from_str::<Vec<Value>>(stdout.trim()).unwrap()
}
