//! Test harness shared by the scenarios in `tests/tests/`: paths into the repository, the pinned
//! tools of the project virtualenv (installed by `scripts/test`), and a moto server on a free
//! loopback port. A missing tool is a loud failure naming the command that installs it, never a
//! skipped test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub mod duckdb;

/// Two tests of each named body, one on moto S3 and one on a local directory: each body is an
/// `async fn(Lake<O>)` generic over the object store, and the calling file defines
/// `async fn on_s3()` and `fn on_a_directory()` that make its `Lake`s. One use case, one test,
/// both of the stores it runs on.
#[macro_export]
macro_rules! on_both_stores {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread")]
            async fn on_s3() {
                super::$body(super::on_s3().await).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn on_a_local_directory() {
                super::$body(super::on_a_directory()).await;
            }
        }
    )*};
}
pub mod fake_platform;
pub mod fixtures;
pub mod lambda;
pub mod platform;
pub mod synthetic_lake;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A tool from the project virtualenv, e.g. `cfn-lint`. Fails if `scripts/test` has not set it up.
pub fn venv_tool(name: &str) -> Result<PathBuf> {
    let path = repo_root().join(".venv/bin").join(name);
    if !path.is_file() {
        bail!(
            "`{}` is missing: run `scripts/test`, which installs the pinned tools of tools/requirements.txt",
            path.display()
        );
    }
    Ok(path)
}

/// The names of the files in `dir` that end with `suffix`, without it, sorted.
pub fn stems(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(suffix) {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// A moto server on 127.0.0.1, stopped when dropped.
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

impl MotoServer {
    /// Starts moto (through `tests/moto_launcher.py`, which repairs its outputs after a change
    /// set) on a free port and waits until it answers `GET /moto-api/`.
    pub fn start() -> Result<MotoServer> {
        let python = venv_tool("python")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(python)
            .arg(repo_root().join("tests/moto_launcher.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto_server")?;
        let mut server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = server.child.try_wait()? {
                bail!("moto_server exited before answering: {status}");
            }
            if http_get_status(port, "/moto-api/").is_ok_and(|s| s == 200) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("moto_server did not answer on port {port} within 30 s")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of a plain HTTP/1.0 GET on loopback (enough to probe a server's readiness).
fn http_get_status(port: u16, path: &str) -> Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let line = String::from_utf8_lossy(&head);
    line.get(9..12)
        .and_then(|code| code.parse().ok())
        .context("not an HTTP status line")
}

/// The body of a plain HTTP/1.0 GET of `endpoint` (`http://127.0.0.1:PORT`) + `path`, which must
/// answer 200. Enough for moto's REST APIs, whose clients the tests do not otherwise need.
pub fn http_get(endpoint: &str, path: &str, headers: &[(&str, &str)]) -> Result<String> {
    let address = endpoint
        .strip_prefix("http://")
        .context("only plain http endpoints")?;
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("an HTTP response without a body")?;
    let status = head.get(9..12).unwrap_or_default();
    if status != "200" {
        bail!("GET {path} answered {head}: {body}");
    }
    Ok(body.to_owned())
}
