//! The interpreter: runs one [`Case`] against a fresh edgeslab in front of
//! the suite's test server, checking what the suite's client checks
//! (test-engine/client/test.mjs): the response type (from the origin's
//! `Server-Request-Count`), status, fields and body of each response as it
//! comes, then what the origin saw of each request. As in the suite, the
//! first failed check ends the test, and a check marked `setup` fails as a
//! setup error (the test could not be run as meant) rather than an
//! assertion; this port fails the test on either, saying which.

use super::model::{Case, ReqExpect, RespExpect, RespMissing, Type, Val};
use super::origin::{ConfOrigin, Record, TestServer, latin1, resolve};
use crate::support::wire::{Fields, parse_response_head, show};
use crate::support::{Client, Edge, Response, next_id};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a test failed: the suite's `SetupError` or `AssertionError`.
#[derive(Clone, Debug)]
pub enum Failure {
    Setup(String),
    Assertion(String),
}

type Check = Result<(), Failure>;

fn check(is_setup: bool, ok: bool, message: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else if is_setup {
        Err(Failure::Setup(message()))
    } else {
        Err(Failure::Assertion(message()))
    }
}

/// A field's value as `fetch` shows it: every line of it joined with ", ",
/// each byte a Latin-1 character.
fn get(fields: &Fields, name: &str) -> Option<String> {
    let values: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.iter().map(|&b| char::from(b)).collect())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// JavaScript's `parseInt` on a field value: leading digits, or None (NaN).
fn parse_int(v: Option<&str>) -> Option<i64> {
    let v = v?.trim_start();
    let (sign, digits) = match v.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
    n.parse::<i64>().ok().map(|n| sign * n)
}

/// The server's now (ms) as a response carries it in `Server-Now`.
fn server_now(fields: &Fields) -> Option<SystemTime> {
    let ms = parse_int(get(fields, "server-now").as_deref())?;
    Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).ok()?))
}

/// An expected value as the suite's `fixupHeader` makes it: dates from the
/// response's `Server-Now`.
fn expected_value(name: &str, value: &Val, fields: &Fields, rfc850: &[String]) -> String {
    match value {
        Val::Text(t) => t.clone(),
        Val::Delta(_) => match server_now(fields) {
            Some(now) => text(&resolve(name, value, now, rfc850)),
            None => "Invalid Date".to_string(),
        },
    }
}

/// What happened, for the failure message.
#[derive(Default)]
struct Transcript(String);

impl Transcript {
    fn add(&mut self, what: &str, bytes: &[u8]) {
        let _ = writeln!(self.0, "--- {what}\n{}", show(bytes, 2048));
    }
}

/// The suite checks HTTP caching, not a CDN's header policy: its origin
/// counts requests by fields the client sends (`Req-Num`, `Test-ID`) and
/// answers by others, so every viewer field and cookie is forwarded, and
/// Accept-Encoding reaches it as the client sent it.
const ALL_VIEWER: &str = "[[behavior]]\npath = \"*\"\n[behavior.origin_request]\n\
    headers = [\"*\"]\ncookies = [\"*\"]\n[behavior.cache]\nnormalize_accept_encoding = false\n";

/// Runs a case; Err carries the failure and a transcript of the exchange.
pub fn run_case(case: &Case) -> Result<(), String> {
    let uuid = format!("{}-{}-{}", case.id, std::process::id(), next_id());
    let server = Arc::new(TestServer::new(uuid.clone(), case.requests.clone()));
    let origin = ConfOrigin::start(server.clone());
    let mut builder = Edge::builder().origin(origin.addr);
    // The case's own keys first: its top-level ones must precede any table.
    if let Some((toml, _)) = case.config {
        builder = builder.toml(toml);
    }
    builder = builder.toml(ALL_VIEWER);
    let edge = builder.start();
    let mut transcript = Transcript::default();
    let outcome = exchange(case, &uuid, &edge, &server, &mut transcript);
    let violations = server.violations.lock().expect("violations").clone();
    let log: Vec<String> = edge
        .stderr()
        .lines()
        .filter(|l| !l.contains(" INFO "))
        .map(str::to_string)
        .collect();
    drop(edge);
    drop(origin);
    let failure = match outcome {
        Err(f) => Some(f),
        Ok(()) if !violations.is_empty() => Some(Failure::Assertion(format!(
            "the edge sent the origin bad HTTP:\n{}",
            violations.join("\n")
        ))),
        Ok(()) => None,
    };
    let Some(failure) = failure else {
        // CONFORMANCE_TRACE=1 shows what a passing case exchanged, too.
        if std::env::var_os("CONFORMANCE_TRACE").is_some() {
            eprintln!("{} passed:\n{}", case.id, transcript.0);
        }
        return Ok(());
    };
    let (class, message) = match failure {
        Failure::Setup(m) => ("setup failure", m),
        Failure::Assertion(m) => ("assertion failure", m),
    };
    let mut seen = String::new();
    for (i, r) in server.records().iter().enumerate() {
        let _ = writeln!(
            seen,
            "  origin request {}: {} {} (Req-Num {:?}) {}",
            i + 1,
            r.method,
            r.target,
            r.request_num,
            r.request_headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", text(v)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    let tail = log[log.len().saturating_sub(10)..].join("\n");
    let config = case
        .config
        .map(|(toml, why)| format!("  edge config {toml:?}: {why}\n"))
        .unwrap_or_default();
    Err(format!(
        "{} ({}, {}): {class}: {message}\n  {}\n{config}{seen}{}--- edge log (not INFO)\n{tail}",
        case.id,
        case.suite,
        case.kind.token(),
        case.name,
        transcript.0
    ))
}

fn exchange(
    case: &Case,
    uuid: &str,
    edge: &Edge,
    server: &TestServer,
    transcript: &mut Transcript,
) -> Check {
    let mut responses: Vec<Response> = Vec::new();
    for (idx, config) in case.requests.iter().enumerate() {
        let raw = client_request(case, config, idx, uuid, responses.last());
        transcript.add(&format!("request {}", idx + 1), &raw);
        let mut client = Client::connect(edge.addr);
        client.send(&raw);
        let Some(response) = client.read_response_to(&raw) else {
            return Err(Failure::Assertion(format!(
                "request {}: the connection closed without a response (a network error)",
                idx + 1
            )));
        };
        transcript.add(&format!("response {}", idx + 1), &response.head);
        check_response(config, idx, uuid, &response)?;
        responses.push(response);
        if let Some(pause) = config.pause {
            std::thread::sleep(pause);
        }
    }
    check_server_requests(case, &responses, &server.records())
}

/// The request the suite's client sends (test-engine/client/fetching.mjs),
/// as HTTP/1.1 on its own connection.
fn client_request(
    case: &Case,
    config: &super::model::Req,
    idx: usize,
    uuid: &str,
    previous: Option<&Response>,
) -> Vec<u8> {
    let method = config.method.as_deref().unwrap_or("GET");
    let mut target = format!("/test/{uuid}");
    if let Some(f) = &config.filename {
        target.push('/');
        target.push_str(f);
    }
    if let Some(q) = &config.query_arg {
        target.push('?');
        target.push_str(q);
    }
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: test.local\r\n").into_bytes();
    let mut field = |name: &str, value: &[u8]| {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    };
    // The suite's client sends these on every request when it does not use
    // a browser cache ("dirty hack for Fetch").
    field("Pragma", b"foo");
    field("Cache-Control", b"nothing-to-see-here");
    for (name, value) in &config.request_headers {
        let bytes = match value {
            Val::Text(t) => latin1(t),
            Val::Delta(_) if config.magic_ims && name.eq_ignore_ascii_case("if-modified-since") => {
                let now = previous
                    .and_then(|p| server_now(&p.headers))
                    .unwrap_or_else(SystemTime::now);
                resolve(name, value, now, &config.rfc850date)
            }
            Val::Delta(d) => d.to_string().into_bytes(),
        };
        field(name, &bytes);
    }
    field("Test-ID", case.id.as_bytes());
    field("Req-Num", (idx + 1).to_string().as_bytes());
    field("Connection", b"close");
    if let Some(body) = &config.request_body {
        field("Content-Length", body.len().to_string().as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    if let Some(body) = &config.request_body {
        raw.extend_from_slice(&latin1(body));
    }
    raw
}

/// test.mjs `checkResponse`.
fn check_response(
    config: &super::model::Req,
    idx: usize,
    uuid: &str,
    response: &Response,
) -> Check {
    let req_num = idx as i64 + 1;
    let fields = &response.headers;
    let res_num = parse_int(get(fields, "server-request-count").as_deref());

    // Retries: a request number the server saw twice.
    if let Some(numbers) = get(fields, "request-numbers") {
        let list: Vec<&str> = numbers.split(' ').collect();
        let mut unique = list.clone();
        unique.sort_unstable();
        unique.dedup();
        check(true, unique.len() == list.len(), || {
            format!("retry: the server saw request numbers {numbers}")
        })?;
    }

    if let Some(t) = config.expected_type {
        let setup = config.is_setup("expected_type");
        match t {
            Type::Cached if response.status == 304 && res_num.is_none() => {}
            Type::Cached => check(setup, res_num.is_some_and(|n| n < req_num), || {
                format!("Response {req_num} does not come from cache")
            })?,
            Type::NotCached => check(setup, res_num == Some(req_num), || {
                format!("Response {req_num} comes from cache")
            })?,
            Type::LmValidated | Type::EtagValidated => {}
        }
    }

    let status = response.status;
    match (&config.expected_status, &config.response_status) {
        (Some(Some(want)), _) => {
            check(config.is_setup("expected_status"), status == *want, || {
                format!("Response {req_num} status is {status}, not {want}")
            })?
        }
        (Some(None), _) => {}
        (None, Some((want, _))) => check(true, status == *want, || {
            format!("Response {req_num} status is {status}, not {want}")
        })?,
        (None, None) if status == 999 => check(config.is_setup("expected_type"), false, || {
            format!("Request {req_num} should have been conditional, but it was not.")
        })?,
        (None, None) => check(true, status == 200, || {
            format!("Response {req_num} status is {status}, not 200")
        })?,
    }

    let present = config.is_setup("expected_response_headers");
    for expect in &config.expected_response_headers {
        match expect {
            RespExpect::Present(name) => check(present, get(fields, name).is_some(), || {
                format!("Response {req_num} {name} header not present.")
            })?,
            RespExpect::Greater(name, n) => {
                let value = get(fields, name);
                check(present, value.is_some(), || {
                    format!("Response {req_num} {name} header not present.")
                })?;
                check(
                    present,
                    parse_int(value.as_deref()).is_some_and(|v| v > *n),
                    || {
                        format!(
                            "Response {req_num} header {name} is {value:?}, should be bigger than {n}"
                        )
                    },
                )?;
            }
            RespExpect::Is(name, value) => {
                let want = expected_value(name, value, fields, &config.rfc850date);
                let got = get(fields, name);
                check(present, got.as_deref() == Some(want.as_str()), || {
                    format!("Response {req_num} header {name} is {got:?}, not {want:?}")
                })?;
            }
        }
    }
    let missing = config.is_setup("expected_response_headers_missing");
    for expect in &config.expected_response_headers_missing {
        match expect {
            RespMissing::Absent(name) => {
                let got = get(fields, name);
                check(missing, got.is_none(), || {
                    format!("Response {req_num} includes unexpected header {name}: {got:?}")
                })?;
            }
            // (The suite's own check of this form never fires: it reads the
            // value as a property of the Headers object. This port checks
            // what it means.)
            RespMissing::NotValue(name, value) => {
                let got = get(fields, name);
                check(
                    missing,
                    !got.as_deref().is_some_and(|g| g.contains(value.as_str())),
                    || format!("Response {req_num} header {name} still has value {got:?}"),
                )?;
            }
        }
    }

    if let Some(expected) = &config.expected_interim_responses {
        let setup = config.is_setup("expected_interim_responses");
        let got: Vec<_> = response
            .interim
            .iter()
            .filter_map(|raw| parse_response_head(raw).ok())
            .collect();
        for (i, (code, fields_wanted)) in expected.iter().enumerate() {
            let Some(head) = got.get(i) else {
                return check(setup, false, || {
                    format!("Interim response {} not received", i + 1)
                });
            };
            check(setup, head.status == *code, || {
                format!(
                    "Interim response {} status is {}, not {code}",
                    i + 1,
                    head.status
                )
            })?;
            for (name, value) in fields_wanted {
                let have = get(&head.fields, name);
                check(setup, have.as_deref() == Some(value.as_str()), || {
                    format!(
                        "Interim response {} header {name} is {have:?}, not {value:?}",
                        i + 1
                    )
                })?;
            }
        }
    }

    // The body.
    let body = text(&response.body);
    if !config.check_body {
        return Ok(());
    }
    match (&config.expected_response_text, &config.response_body) {
        (Some(Some(want)), _) => check(
            config.is_setup("expected_response_text"),
            body == *want,
            || format!("Response body is {body:?}, not {want:?}"),
        ),
        (Some(None), _) => Ok(()),
        (None, Some(Some(want))) => check(true, body == *want, || {
            format!("Response body is {body:?}, not {want:?}")
        }),
        _ if status == 204 || status == 304 || config.method.as_deref() == Some("HEAD") => Ok(()),
        _ => check(true, body == uuid, || {
            format!("Response body is {body:?}, not {uuid:?}")
        }),
    }
}

/// test.mjs `checkServerRequests`: what the origin saw, request by request.
fn check_server_requests(case: &Case, responses: &[Response], records: &[Record]) -> Check {
    let mut test_idx = 0;
    for (i, config) in case.requests.iter().enumerate() {
        let req_num = i + 1;
        let response = &responses[i];
        let server_request = records.get(test_idx);
        let type_setup = config.is_setup("expected_type");
        let mut validating: Vec<&str> = Vec::new();
        match config.expected_type {
            Some(Type::Cached) => continue,
            Some(Type::NotCached) => {
                let Some(seen) = server_request else {
                    return Err(Failure::Assertion(format!(
                        "request {req_num} was expected at the server, which saw only {} requests",
                        records.len()
                    )));
                };
                check(type_setup, seen.request_num == Some(req_num), || {
                    format!(
                        "Response {req_num} comes from cache ({:?} on server)",
                        seen.request_num
                    )
                })?;
            }
            Some(Type::EtagValidated) => validating.push("if-none-match"),
            Some(Type::LmValidated) => validating.push("if-modified-since"),
            None => {}
        }
        test_idx += 1;
        for name in validating {
            check(type_setup, server_request.is_some(), || {
                format!("request {req_num} wasn't sent to server")
            })?;
            check(
                type_setup,
                server_request.is_some_and(|s| s.header(name).is_some()),
                || format!("request {req_num} doesn't have {name} header"),
            )?;
        }
        let needs_seen = !config.expected_request_headers.is_empty()
            || !config.expected_request_headers_missing.is_empty()
            || config.expected_method.is_some();
        if needs_seen && server_request.is_none() {
            return Err(Failure::Assertion(format!(
                "request {req_num} never reached the server, whose request headers are checked"
            )));
        }
        if let Some(seen) = server_request {
            let setup = config.is_setup("expected_request_headers");
            for expect in &config.expected_request_headers {
                match expect {
                    ReqExpect::Is(name, value) => {
                        let got = seen.header(name).map(text);
                        check(setup, got.as_deref() == Some(value.as_str()), || {
                            format!("Request {req_num} header {name} is {got:?}, not {value:?}")
                        })?;
                    }
                }
            }
            let setup = config.is_setup("expected_request_headers_missing");
            for expect in &config.expected_request_headers_missing {
                match expect {
                    ReqExpect::Is(name, value) => {
                        let got = seen.header(name).map(text);
                        check(setup, got.as_deref() != Some(value.as_str()), || {
                            format!("Request {req_num} header {name} is {got:?}")
                        })?;
                    }
                }
            }
            // Every field the origin sent (but Date) reaches the client
            // unchanged.
            for (name, value) in &seen.response_headers {
                if name.eq_ignore_ascii_case("date") {
                    continue;
                }
                let got = get(&response.headers, name);
                let want = text(value);
                check(true, got.as_deref() == Some(want.as_str()), || {
                    format!("Response {req_num} header {name} is {got:?}, not {want:?}")
                })?;
            }
            if let Some(method) = &config.expected_method {
                check(
                    config.is_setup("expected_method"),
                    seen.method == *method,
                    || format!("Request {req_num} had method {}, not {method}", seen.method),
                )?;
            }
        }
    }
    Ok(())
}
