//! A Lambda Runtime API emulator (the 2018-06-01 API that `provided.al2023` bootstraps poll), so
//! the real release binaries can run here: `next` hands out queued invocations, `response` and
//! `error` complete them. One emulator serves one function; any number of its processes may poll.
//! It also records when each process first asked for work (its init time).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const PREFIX: &str = "/2018-06-01/runtime";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Response(String),
    Error(String),
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<(String, String)>>,
    ready: Condvar,
    waiting: Mutex<HashMap<String, Sender<Outcome>>>,
    next_calls: Mutex<Vec<Instant>>,
    init_errors: Mutex<Vec<String>>,
    sequence: Mutex<u64>,
}

/// The Runtime API of one function, on a free loopback port.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    function_name: String,
}

impl RuntimeApi {
    pub fn start(function_name: &str) -> Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&accept);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Ok(RuntimeApi {
            address,
            shared,
            function_name: function_name.to_owned(),
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for processes of this function.
    pub fn endpoint(&self) -> String {
        self.address.to_string()
    }

    /// Queues `payload` and waits for its outcome.
    pub fn invoke(&self, payload: &str, timeout: Duration) -> Result<Outcome> {
        let id = {
            let mut sequence = self
                .shared
                .sequence
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            *sequence += 1;
            format!("{}-{:08}", self.function_name, *sequence)
        };
        let (sender, receiver) = channel();
        self.shared
            .waiting
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(id.clone(), sender);
        self.shared
            .queue
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push_back((id.clone(), payload.to_owned()));
        self.shared.ready.notify_one();
        receiver.recv_timeout(timeout).with_context(|| {
            format!(
                "invocation `{id}` got no outcome within {timeout:?}; init errors: {:?}",
                self.init_errors()
            )
        })
    }

    /// When processes asked for their next invocation, in order.
    pub fn next_calls(&self) -> Vec<Instant> {
        self.shared
            .next_calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub fn init_errors(&self) -> Vec<String> {
        self.shared
            .init_errors
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Starts a process of `binary` against this API, with the variables a Lambda environment
    /// sets plus `env`. Waits until it first asks for work and returns how long that took.
    pub fn spawn(
        &self,
        binary: &Path,
        env: &[(String, String)],
        log: &Path,
    ) -> Result<(FunctionProcess, Duration)> {
        let calls_before = self.next_calls().len();
        let log_file = std::fs::File::create(log)?;
        let started = Instant::now();
        let child = Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", self.endpoint())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/sdp/test/{}", self.function_name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut process = FunctionProcess { child };
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(call) = self.next_calls().get(calls_before) {
                return Ok((process, call.duration_since(started)));
            }
            if let Some(status) = process.child.try_wait()? {
                bail!(
                    "{} exited during init ({status}): {}",
                    binary.display(),
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!("{} never asked for work", binary.display());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A running function process, killed when dropped.
pub struct FunctionProcess {
    child: Child,
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves the requests of one connection (the runtime client keeps connections alive).
fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        let reply = route(shared, &method, &path, body);
        let (status, headers, body) = match reply {
            Some(reply) => reply,
            None => (
                404,
                Vec::new(),
                String::from("{\"errorMessage\":\"unknown route\"}"),
            ),
        };
        let mut head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(body.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

type Reply = (u16, Vec<(&'static str, String)>, String);

fn route(shared: &Shared, method: &str, path: &str, body: String) -> Option<Reply> {
    let rest = path.strip_prefix(PREFIX)?;
    match (method, rest) {
        ("GET", "/invocation/next") => {
            if let Ok(mut calls) = shared.next_calls.lock() {
                calls.push(Instant::now());
            }
            let mut queue = shared.queue.lock().ok()?;
            let (id, payload) = loop {
                if let Some(next) = queue.pop_front() {
                    break next;
                }
                queue = shared.ready.wait(queue).ok()?;
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() + 900_000);
            Some((
                200,
                vec![
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-west-2:123456789012:function:test".to_owned()),
                    ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0".to_owned()),
                ],
                payload,
            ))
        }
        ("POST", "/init/error") => {
            shared.init_errors.lock().ok()?.push(body);
            Some((202, Vec::new(), "{}".to_owned()))
        }
        ("POST", rest) => {
            let rest = rest.strip_prefix("/invocation/")?;
            let (id, kind) = rest.rsplit_once('/')?;
            let outcome = match kind {
                "response" => Outcome::Response(body),
                "error" => Outcome::Error(body),
                _ => return None,
            };
            if let Some(sender) = shared.waiting.lock().ok()?.remove(id) {
                let _ = sender.send(outcome);
            }
            Some((202, Vec::new(), "{}".to_owned()))
        }
        _ => None,
    }
}

/// Reads one HTTP/1.1 request: method, path and body (by content-length).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, String::from_utf8_lossy(&body).into_owned()))
}
