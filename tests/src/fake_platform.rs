//! A stand-in for the platform's three APIs, for the tests of `sdp verify` and `sdp load`: plain
//! HTTP/1.1 on loopback (keep-alive, one thread per connection), the real validation of
//! `sdp_core::events`, and a naive in-memory join that counts each (`tx_id`, type) once. Faults can
//! be switched on, to make the broken servers those commands must catch: one that loses events it
//! answered 200, one that answers 200 to invalid input, one that is slow.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use sdp_core::events::{validate, EventBody, EventType};

/// What the fake does wrong.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Every n-th valid event is answered 200 and then forgotten.
    pub lose_every: Option<usize>,
    /// Invalid bodies (and wrong content types) are answered 200 (and not stored).
    pub accept_invalid: bool,
    /// Every request takes this long, one at a time: a server with a fixed, low capacity.
    pub serial_delay: Option<Duration>,
}

#[derive(Default)]
struct Transaction {
    campaign: Option<i64>,
    impression: bool,
    click: bool,
    impression_counted: bool,
    click_counted: bool,
}

#[derive(Default)]
struct Store {
    valid_events: usize,
    transactions: HashMap<String, Transaction>,
    /// campaign → (bids, imps, clicks)
    totals: HashMap<i64, (i64, i64, i64)>,
}

struct Shared {
    faults: Faults,
    store: Mutex<Store>,
    serial: Mutex<()>,
    stopping: AtomicBool,
}

/// A running fake; stops when dropped.
pub struct FakePlatform {
    address: SocketAddr,
    shared: Arc<Shared>,
}

impl FakePlatform {
    pub fn start(faults: Faults) -> Result<FakePlatform> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            faults,
            store: Mutex::new(Store::default()),
            serial: Mutex::new(()),
            stopping: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Ok(FakePlatform { address, shared })
    }

    /// The base URL of the ingestion API (`/bid`, `/impression`, `/click` under it).
    pub fn api_url(&self) -> String {
        format!("http://{}/ingest", self.address)
    }

    /// The base URL of the reports API.
    pub fn reports_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The URL of the predictions API.
    pub fn predictions_url(&self) -> String {
        format!("http://{}/predictions", self.address)
    }

    /// The valid events answered 200 so far (lost ones included).
    pub fn valid_events(&self) -> usize {
        self.shared
            .store
            .lock()
            .map(|s| s.valid_events)
            .unwrap_or_default()
    }
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

struct Request {
    method: String,
    path: String,
    content_type: String,
    body: Vec<u8>,
    close: bool,
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader)? {
        let (status, body) = {
            let _one_at_a_time = shared.faults.serial_delay.map(|delay| {
                let guard = shared.serial.lock();
                std::thread::sleep(delay);
                guard
            });
            respond(shared, &request)
        };
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            415 => "Unsupported Media Type",
            _ => "Error",
        };
        let body = body.to_string();
        write!(
            writer,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        writer.flush()?;
        if request.close {
            return Ok(());
        }
    }
    Ok(())
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let (mut length, mut content_type, mut close) = (0, String::new(), false);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "content-type" => content_type = value.to_ascii_lowercase(),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        content_type,
        body,
        close,
    }))
}

fn respond(shared: &Shared, request: &Request) -> (u16, Value) {
    let path = request.path.split('?').next().unwrap_or_default();
    match (request.method.as_str(), path) {
        ("POST", "/ingest/bid") => ingest(shared, EventType::Bid, request),
        ("POST", "/ingest/impression") => ingest(shared, EventType::Impression, request),
        ("POST", "/ingest/click") => ingest(shared, EventType::Click, request),
        ("POST", "/ingest/events") => batch(shared, request),
        ("POST", "/predictions") => predict(shared, request),
        ("GET", p) if p.starts_with("/reports/campaigns/") => {
            let id = p.trim_start_matches("/reports/campaigns/");
            let Ok(campaign) = id.parse::<i64>() else {
                return (
                    400,
                    json!({"error": "not a campaign id", "field": "campaign_item_id"}),
                );
            };
            let (bids, imps, clicks) = shared
                .store
                .lock()
                .ok()
                .and_then(|s| s.totals.get(&campaign).copied())
                .unwrap_or_default();
            (
                200,
                json!({"campaign_item_id": campaign, "bids": bids, "imps": imps, "clicks": clicks}),
            )
        }
        _ => (404, json!({"error": "no such route"})),
    }
}

fn ingest(shared: &Shared, event_type: EventType, request: &Request) -> (u16, Value) {
    let accept_invalid = shared.faults.accept_invalid;
    if !request.content_type.starts_with("application/json") && !accept_invalid {
        return (
            415,
            json!({"error": "the content type must be application/json"}),
        );
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let event = match validate(event_type, &request.body, now_ms) {
        Ok(event) => event,
        Err(_) if accept_invalid => return (200, json!({"ok": true})),
        Err(err) => return (400, json!({"error": err.message, "field": err.field})),
    };
    let Ok(mut store) = shared.store.lock() else {
        return (500, json!({"error": "poisoned"}));
    };
    store.valid_events += 1;
    if let Some(every) = shared.faults.lose_every {
        if store.valid_events % every == 0 {
            return (200, json!({"ok": true}));
        }
    }
    let store = &mut *store;
    let tx = store.transactions.entry(event.tx_id.clone()).or_default();
    match event.body {
        EventBody::Bid(bid) if tx.campaign.is_none() => {
            tx.campaign = Some(bid.campaign_item_id);
            store.totals.entry(bid.campaign_item_id).or_default().0 += 1;
        }
        EventBody::Impression { .. } => tx.impression = true,
        EventBody::Click => tx.click = true,
        EventBody::Bid(_) => {}
    }
    if let Some(campaign) = tx.campaign {
        let totals = store.totals.entry(campaign).or_default();
        if tx.impression && !tx.impression_counted {
            tx.impression_counted = true;
            totals.1 += 1;
        }
        if tx.impression_counted && tx.click && !tx.click_counted {
            tx.click_counted = true;
            totals.2 += 1;
        }
    }
    (200, json!({"ok": true}))
}

/// A batch, line by line through [`ingest`] (and so with its faults), answered as the platform's
/// batch route answers: 200 when every line was accepted, 207 when some, 400 when none.
fn batch(shared: &Shared, request: &Request) -> (u16, Value) {
    let mut lines = Vec::new();
    for (i, line) in request.body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let tag = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v["type"].as_str().and_then(EventType::from_tag));
        let (status, answer) = match tag {
            Some(event_type) => ingest(
                shared,
                event_type,
                &Request {
                    method: request.method.clone(),
                    path: request.path.clone(),
                    content_type: "application/json".into(),
                    body: line.to_vec(),
                    close: request.close,
                },
            ),
            None if shared.faults.accept_invalid => (200, json!({})),
            None => (400, json!({"error": "no known type", "field": "type"})),
        };
        lines.push(if status == 200 {
            json!({"line": i + 1, "status": "accepted"})
        } else {
            json!({"line": i + 1, "status": "rejected", "error": answer["error"], "field": answer["field"]})
        });
    }
    let accepted = lines.iter().filter(|l| l["status"] == "accepted").count();
    let status = match accepted {
        0 => 400,
        n if n == lines.len() => 200,
        _ => 207,
    };
    (
        status,
        json!({"accepted": accepted, "rejected": lines.len() - accepted, "lines": lines}),
    )
}

fn predict(shared: &Shared, request: &Request) -> (u16, Value) {
    let parsed: Option<Value> = serde_json::from_slice(&request.body).ok();
    let price = parsed
        .as_ref()
        .and_then(|v| v.get("winPrice"))
        .and_then(Value::as_f64);
    if price.is_none() && !shared.faults.accept_invalid {
        return (
            400,
            json!({"error": "`winPrice` is required", "field": "winPrice"}),
        );
    }
    (
        200,
        json!({"predictions": [{"score": 0.5, "predicted_label": 0.0}]}),
    )
}
