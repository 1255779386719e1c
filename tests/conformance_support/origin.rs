//! The suite's test server (test-engine/server/handle-test.mjs), as a
//! loopback origin: it reads what the edge sends with the harness's strict
//! rules (`support::wire`, never edgeslab's codec), answers each request by
//! the test's configuration for the request number the client sent
//! (`Req-Num`, else its own count), and records what it saw. Unlike the
//! harness's scripted origin it can send interim (1xx) responses, several
//! lines of one field, and a 204/304 without framing fields, as the
//! suite's server does. Every wait is bounded; it stops on drop.

use super::model::{Req, Type, Val};
use crate::support::wire::{ChunkedDecoder, Inbound, parse_request_head, request_framing, show};
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REQUEST_WITHIN: Duration = Duration::from_secs(30);

/// What the server stashes for one request (the suite's server state).
#[derive(Clone, Debug)]
pub struct Record {
    /// The client's `Req-Num` (None when the request carried none).
    pub request_num: Option<usize>,
    pub method: String,
    pub target: String,
    /// Names lower-cased, repeated fields joined with ", " (as Node does).
    pub request_headers: Vec<(String, Vec<u8>)>,
    /// The response fields the client is to receive unchanged.
    pub response_headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.request_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Header fields: names as written, values as bytes.
type FieldList = Vec<(String, Vec<u8>)>;

/// A test's configuration and the server's state for it.
pub struct TestServer {
    pub uuid: String,
    pub requests: Vec<Req>,
    /// The response fields as sent for each configured request (dates
    /// resolved), for validators the next request is checked against.
    sent: Mutex<Vec<Option<FieldList>>>,
    pub records: Mutex<Vec<Record>>,
    pub violations: Mutex<Vec<String>>,
}

impl TestServer {
    pub fn new(uuid: String, requests: Vec<Req>) -> TestServer {
        let n = requests.len();
        TestServer {
            uuid,
            requests,
            sent: Mutex::new(vec![None; n]),
            records: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().expect("records").clone()
    }
}

/// The origin on loopback.
pub struct ConfOrigin {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl ConfOrigin {
    pub fn start(server: Arc<TestServer>) -> ConfOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let server = server.clone();
                        std::thread::spawn(move || serve(s, &server));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        ConfOrigin { addr, stop }
    }
}

impl Drop for ConfOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A request as read off the wire.
struct Incoming {
    method: String,
    target: String,
    fields: Vec<(String, Vec<u8>)>,
}

fn serve(stream: TcpStream, server: &TestServer) {
    let _ = stream.set_read_timeout(Some(REQUEST_WITHIN));
    let _ = stream.set_nodelay(true);
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut inbound = Inbound::new(reader);
    let mut out = stream;
    loop {
        let deadline = Instant::now() + REQUEST_WITHIN;
        let raw = match inbound.read_head(deadline) {
            Ok(Some(raw)) => raw,
            Ok(None) => return,
            Err(why) => return reject(server, &mut out, &why.0, &inbound.buf),
        };
        let head = match parse_request_head(&raw) {
            Ok(h) => h,
            Err(why) => return reject(server, &mut out, &why.0, &raw),
        };
        if head.minor != 1 || !head.target.starts_with('/') {
            return reject(server, &mut out, "not HTTP/1.1 origin-form", &raw);
        }
        let framing = match request_framing(&head) {
            Ok(f) => f,
            Err(why) => return reject(server, &mut out, &why.0, &raw),
        };
        let mut chunks = ChunkedDecoder::default();
        match inbound.read_body(framing, deadline, &mut chunks, &mut |_| {}) {
            Ok(true) => {}
            Ok(false) => return,
            Err(why) => return reject(server, &mut out, &why.0, &raw),
        }
        let incoming = Incoming {
            method: head.method,
            target: head.target,
            fields: head.fields,
        };
        if !answer(server, &incoming, &mut out) {
            return;
        }
    }
}

fn reject(server: &TestServer, out: &mut TcpStream, why: &str, raw: &[u8]) {
    server
        .violations
        .lock()
        .expect("violations")
        .push(format!("{why}\n  bytes: {}", show(raw, 4096)));
    let _ = out
        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// Node's view of request fields: names lower-cased, repeats joined.
fn node_headers(fields: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for (n, v) in fields {
        let n = n.to_ascii_lowercase();
        match out.iter_mut().find(|(m, _)| *m == n) {
            Some((_, existing)) => {
                existing.extend_from_slice(b", ");
                existing.extend_from_slice(v);
            }
            None => out.push((n, v.clone())),
        }
    }
    out
}

fn first<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Answers one request as handle-test.mjs does; false when the
/// connection is to end.
fn answer(server: &TestServer, incoming: &Incoming, out: &mut TcpStream) -> bool {
    let srv_req_num = server.records.lock().expect("records").len() + 1;
    let cli_req_num = first(&incoming.fields, "req-num")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let req_num = cli_req_num.unwrap_or(srv_req_num);
    let Some(config) = server.requests.get(req_num - 1) else {
        let body = format!("config not found for request {srv_req_num}");
        let head = format!(
            "HTTP/1.1 409 Conflict\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        return out.write_all(head.as_bytes()).is_ok();
    };
    if let Some(pause) = config.response_pause {
        std::thread::sleep(pause);
    }
    let now = SystemTime::now();
    let now_ms = now.duration_since(UNIX_EPOCH).expect("clock").as_millis();

    // The status: a request expected to be validated gets a 304 if it
    // carries the previous response's validator, else the suite's 999.
    let (mut status, mut phrase) = config
        .response_status
        .clone()
        .unwrap_or((200, "OK".to_string()));
    if matches!(
        config.expected_type,
        Some(Type::LmValidated | Type::EtagValidated)
    ) && req_num >= 2
    {
        // The previous request's fields as sent; if the origin never sent
        // them (that request was answered from the cache), its configured
        // literal values, as the suite's server reads them.
        let sent = server.sent.lock().expect("sent");
        let previous = sent[req_num - 2].clone().unwrap_or_else(|| {
            server.requests[req_num - 2]
                .response_headers
                .iter()
                .filter_map(|h| match &h.value {
                    Val::Text(t) => Some((h.name.clone(), latin1(t))),
                    Val::Delta(_) => None,
                })
                .collect()
        });
        let matches = |resp: &str, req: &str| {
            first(&previous, resp).is_some_and(|v| first(&incoming.fields, req) == Some(v))
        };
        if matches("last-modified", "if-modified-since") || matches("etag", "if-none-match") {
            (status, phrase) = (304, "Not Modified".to_string());
        } else {
            (status, phrase) = (999, "304 Not Generated".to_string());
        }
    }

    // The fields: the server's own, then the configured ones, dates
    // resolved from now and locations made absolute paths.
    let base_url = incoming.target.clone();
    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("Server-Base-Url".into(), base_url.clone().into_bytes()),
        (
            "Server-Request-Count".into(),
            srv_req_num.to_string().into_bytes(),
        ),
        (
            "Client-Request-Count".into(),
            cli_req_num
                .map_or("NaN".into(), |n| n.to_string())
                .into_bytes(),
        ),
        ("Server-Now".into(), now_ms.to_string().into_bytes()),
    ];
    let mut saved: Vec<(String, Vec<u8>)> = Vec::new();
    let mut configured: Vec<(String, Vec<u8>)> = Vec::new();
    for h in &config.response_headers {
        let mut value = resolve(&h.name, &h.value, now, &config.rfc850date);
        let lower = h.name.to_ascii_lowercase();
        if config.magic_locations && (lower == "location" || lower == "content-location") {
            value = if value.is_empty() {
                base_url.clone().into_bytes()
            } else {
                [base_url.as_bytes(), b"/", &value].concat()
            };
        }
        configured.push((h.name.clone(), value.clone()));
        if h.check {
            match saved
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(&h.name))
            {
                Some((_, existing)) => {
                    existing.extend_from_slice(b", ");
                    existing.extend_from_slice(&value);
                }
                None => saved.push((h.name.clone(), value)),
            }
        }
    }
    server.sent.lock().expect("sent")[req_num - 1] = Some(configured.clone());
    fields.extend(configured.iter().cloned());
    if first(&fields, "content-type").is_none() {
        fields.push(("Content-Type".into(), b"text/plain".to_vec()));
    }

    let request_numbers = {
        let mut records = server.records.lock().expect("records");
        records.push(Record {
            request_num: cli_req_num,
            method: incoming.method.clone(),
            target: incoming.target.clone(),
            request_headers: node_headers(&incoming.fields),
            response_headers: saved,
        });
        records
            .iter()
            .map(|r| r.request_num.map_or("NaN".into(), |n| n.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    fields.push(("Request-Numbers".into(), request_numbers.into_bytes()));
    if first(&fields, "date").is_none() {
        fields.push(("Date".into(), httpdate::fmt_http_date(now).into_bytes()));
    }

    let mut wire = Vec::new();
    for (code, interim) in &config.interim_responses {
        let reason = if *code == 102 {
            "Processing"
        } else {
            "Early Hints"
        };
        wire.extend_from_slice(format!("HTTP/1.1 {code} {reason}\r\n").as_bytes());
        for (n, v) in interim {
            wire.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
    }
    if config.disconnect {
        let _ = out.write_all(&wire);
        let _ = out.shutdown(Shutdown::Both);
        return false;
    }
    wire.extend_from_slice(format!("HTTP/1.1 {status} {phrase}\r\n").as_bytes());
    let head_only = incoming.method == "HEAD";
    let body: Vec<u8> = match &config.response_body {
        Some(Some(b)) if !b.is_empty() => latin1(b),
        _ => server.uuid.clone().into_bytes(),
    };
    let bodyless = status == 204 || status == 304;
    // A configured Content-Length is the framing (the body is cut or
    // padded to it); a configured Transfer-Encoding makes the body end at
    // close, as Node sends it.
    let declared = first(&configured, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let coded = first(&configured, "transfer-encoding").is_some();
    for (n, v) in &fields {
        wire.extend_from_slice(n.as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(v);
        wire.extend_from_slice(b"\r\n");
    }
    if bodyless {
        wire.extend_from_slice(b"\r\n");
        return out.write_all(&wire).is_ok();
    }
    if coded {
        wire.extend_from_slice(b"Connection: close\r\n\r\n");
        if !head_only {
            wire.extend_from_slice(&body);
        }
        let _ = out.write_all(&wire);
        let _ = out.shutdown(Shutdown::Both);
        return false;
    }
    let body = match declared {
        Some(n) => {
            let mut b = body;
            b.resize(n, b'.');
            b
        }
        None => {
            wire.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            body
        }
    };
    wire.extend_from_slice(b"\r\n");
    if !head_only {
        wire.extend_from_slice(&body);
    }
    out.write_all(&wire).is_ok()
}

/// A configured value as sent: text in Latin-1 (as Node sends a string),
/// or a date this many seconds from `now` (RFC 850 form on request).
pub fn resolve(name: &str, value: &Val, now: SystemTime, rfc850: &[String]) -> Vec<u8> {
    match value {
        Val::Text(t) => latin1(t),
        Val::Delta(d) => {
            let when = if *d >= 0 {
                now + Duration::from_secs(*d as u64)
            } else {
                now - Duration::from_secs(d.unsigned_abs())
            };
            if rfc850.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                rfc850_date(when).into_bytes()
            } else {
                httpdate::fmt_http_date(when).into_bytes()
            }
        }
    }
}

/// A string's bytes as Node and fetch send them (Latin-1).
pub fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("a Latin-1 character"))
        .collect()
}

/// `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850, obsolete).
pub fn rfc850_date(when: SystemTime) -> String {
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = when
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02}-{}-{:02} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year % 100,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
