//! The suite's test definitions as data: a [`Case`] is one test of the
//! HTTP caching test suite (cache-tests.fyi), a [`Req`] one of its requests
//! with what the origin answers and what is expected. The fields and their
//! meaning are the suite's own (`request_headers`, `response_headers`,
//! `expected_type`, `setup`, `pause_after`, ...); builders keep the data
//! short. Nothing here runs anything: see `run`.

use std::time::Duration;

/// How the suite classes a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A requirement of the RFCs (the default when a test has no `kind`).
    Required,
    /// What an optimal cache does; not a conformance failure.
    Optimal,
    /// Gathers information; no requirement either way.
    Check,
}

impl Kind {
    pub fn token(self) -> &'static str {
        match self {
            Kind::Required => "required",
            Kind::Optimal => "optimal",
            Kind::Check => "check",
        }
    }
}

/// A header value: literal text, or (the suite's "magic" integers for date
/// fields) a date this many seconds from the server's now.
#[derive(Clone, Debug)]
pub enum Val {
    Text(String),
    Delta(i64),
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(s.to_string())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Text(s)
    }
}

impl From<i64> for Val {
    fn from(d: i64) -> Val {
        Val::Delta(d)
    }
}

/// What a request's response is expected to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Cached,
    NotCached,
    LmValidated,
    EtagValidated,
}

/// `expected_response_headers` members.
#[derive(Clone, Debug)]
pub enum RespExpect {
    /// `'name'`: present.
    Present(String),
    /// `['name', value]`: present with this value (dates are deltas from
    /// the response's `Server-Now`).
    Is(String, Val),
    /// `['name', '>', n]`: an integer greater than n.
    Greater(String, i64),
}

/// `expected_response_headers_missing` members.
#[derive(Clone, Debug)]
pub enum RespMissing {
    /// `'name'`: absent.
    Absent(String),
    /// `['name', value]`: no value containing this.
    NotValue(String, String),
}

/// `expected_request_headers` / `_missing` members (checked at the origin):
/// `['name', value]`.
#[derive(Clone, Debug)]
pub enum ReqExpect {
    Is(String, String),
}

/// A response header the origin sends; `check` is the suite's third
/// element (false: not compared with what the client receives).
#[derive(Clone, Debug)]
pub struct RespHeader {
    pub name: String,
    pub value: Val,
    pub check: bool,
}

/// An interim (1xx) response: status and fields.
pub type Interim = (u16, Vec<(String, String)>);

/// One request of a test, the origin's answer to it and what is expected.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Option<String>,
    pub request_headers: Vec<(String, Val)>,
    pub request_body: Option<String>,
    pub query_arg: Option<String>,
    pub filename: Option<String>,
    pub magic_ims: bool,
    pub rfc850date: Vec<String>,
    pub magic_locations: bool,
    /// The pause after this request: None (the suite's `pause_after` was
    /// dropped, or there was none), or how long this port waits.
    pub pause: Option<Duration>,
    pub disconnect: bool,
    pub response_pause: Option<Duration>,
    pub interim_responses: Vec<Interim>,
    pub response_status: Option<(u16, String)>,
    pub response_headers: Vec<RespHeader>,
    /// `response_body`: None when absent, Some(None) for the suite's null.
    pub response_body: Option<Option<String>>,
    pub check_body: bool,
    pub expected_type: Option<Type>,
    /// `expected_status`: None when absent, Some(None) for null.
    pub expected_status: Option<Option<u16>>,
    pub expected_response_text: Option<Option<String>>,
    pub expected_request_headers: Vec<ReqExpect>,
    pub expected_request_headers_missing: Vec<ReqExpect>,
    pub expected_response_headers: Vec<RespExpect>,
    pub expected_response_headers_missing: Vec<RespMissing>,
    pub expected_method: Option<String>,
    pub expected_interim_responses: Option<Vec<Interim>>,
    pub setup: bool,
    pub setup_tests: Vec<&'static str>,
}

/// A request with nothing set: a plain GET answered 200.
pub fn req() -> Req {
    Req {
        method: None,
        request_headers: Vec::new(),
        request_body: None,
        query_arg: None,
        filename: None,
        magic_ims: false,
        rfc850date: Vec::new(),
        magic_locations: false,
        pause: None,
        disconnect: false,
        response_pause: None,
        interim_responses: Vec::new(),
        response_status: None,
        response_headers: Vec::new(),
        response_body: None,
        check_body: true,
        expected_type: None,
        expected_status: None,
        expected_response_text: None,
        expected_request_headers: Vec::new(),
        expected_request_headers_missing: Vec::new(),
        expected_response_headers: Vec::new(),
        expected_response_headers_missing: Vec::new(),
        expected_method: None,
        expected_interim_responses: None,
        setup: false,
        setup_tests: Vec::new(),
    }
}

impl Req {
    pub fn method(mut self, m: &str) -> Req {
        self.method = Some(m.to_string());
        self
    }
    /// A request header.
    pub fn qh(mut self, name: &str, value: impl Into<Val>) -> Req {
        self.request_headers.push((name.to_string(), value.into()));
        self
    }
    pub fn request_body(mut self, b: &str) -> Req {
        self.request_body = Some(b.to_string());
        self
    }
    pub fn query_arg(mut self, q: &str) -> Req {
        self.query_arg = Some(q.to_string());
        self
    }
    pub fn filename(mut self, f: &str) -> Req {
        self.filename = Some(f.to_string());
        self
    }
    pub fn magic_ims(mut self) -> Req {
        self.magic_ims = true;
        self
    }
    pub fn rfc850date(mut self, name: &str) -> Req {
        self.rfc850date.push(name.to_string());
        self
    }
    pub fn magic_locations(mut self) -> Req {
        self.magic_locations = true;
        self
    }
    /// The suite's `pause_after` (3 s), kept as long where the time that
    /// passes is itself what the test looks at.
    pub fn pause_after(self) -> Req {
        self.pause_secs(3.0)
    }
    /// The suite's `pause_after`, shortened: long enough for what the test
    /// needs (a response with this lifetime to be stale, say).
    pub fn pause_secs(mut self, secs: f64) -> Req {
        self.pause = Some(Duration::from_secs_f64(secs));
        self
    }
    /// The suite's `pause_after` where the only point is that a response of
    /// `lifetime` seconds (counted from its `Date`) has gone stale: it is,
    /// 50 ms after that lifetime has passed since it arrived.
    pub fn pause_until_stale(self, lifetime: u64) -> Req {
        self.pause_secs(lifetime as f64 + 0.05)
    }
    pub fn disconnect(mut self) -> Req {
        self.disconnect = true;
        self
    }
    pub fn response_pause_secs(mut self, secs: f64) -> Req {
        self.response_pause = Some(Duration::from_secs_f64(secs));
        self
    }
    pub fn interim(mut self, status: u16, fields: &[(&str, &str)]) -> Req {
        self.interim_responses.push((status, owned(fields)));
        self
    }
    pub fn expect_interim(mut self, status: u16, fields: &[(&str, &str)]) -> Req {
        self.expected_interim_responses
            .get_or_insert_with(Vec::new)
            .push((status, owned(fields)));
        self
    }
    pub fn expect_no_interim(mut self) -> Req {
        self.expected_interim_responses = Some(Vec::new());
        self
    }
    pub fn status(mut self, code: u16, phrase: &str) -> Req {
        self.response_status = Some((code, phrase.to_string()));
        self
    }
    /// A response header, compared with what the client gets.
    pub fn rh(mut self, name: &str, value: impl Into<Val>) -> Req {
        self.response_headers.push(RespHeader {
            name: name.to_string(),
            value: value.into(),
            check: true,
        });
        self
    }
    /// A response header with the suite's third element `false`: not
    /// compared with what the client gets.
    pub fn rh_unchecked(mut self, name: &str, value: impl Into<Val>) -> Req {
        self.response_headers.push(RespHeader {
            name: name.to_string(),
            value: value.into(),
            check: false,
        });
        self
    }
    pub fn body(mut self, b: &str) -> Req {
        self.response_body = Some(Some(b.to_string()));
        self
    }
    pub fn null_body(mut self) -> Req {
        self.response_body = Some(None);
        self
    }
    pub fn no_body_check(mut self) -> Req {
        self.check_body = false;
        self
    }
    pub fn expect(mut self, t: Type) -> Req {
        self.expected_type = Some(t);
        self
    }
    pub fn cached(self) -> Req {
        self.expect(Type::Cached)
    }
    pub fn not_cached(self) -> Req {
        self.expect(Type::NotCached)
    }
    pub fn expect_status(mut self, s: u16) -> Req {
        self.expected_status = Some(Some(s));
        self
    }
    pub fn any_status(mut self) -> Req {
        self.expected_status = Some(None);
        self
    }
    pub fn expect_text(mut self, t: &str) -> Req {
        self.expected_response_text = Some(Some(t.to_string()));
        self
    }
    pub fn any_text(mut self) -> Req {
        self.expected_response_text = Some(None);
        self
    }
    pub fn expect_req_header(mut self, name: &str, value: &str) -> Req {
        self.expected_request_headers
            .push(ReqExpect::Is(name.to_string(), value.to_string()));
        self
    }
    pub fn expect_req_header_not(mut self, name: &str, value: &str) -> Req {
        self.expected_request_headers_missing
            .push(ReqExpect::Is(name.to_string(), value.to_string()));
        self
    }
    pub fn expect_header(mut self, name: &str, value: impl Into<Val>) -> Req {
        self.expected_response_headers
            .push(RespExpect::Is(name.to_string(), value.into()));
        self
    }
    pub fn expect_header_present(mut self, name: &str) -> Req {
        self.expected_response_headers
            .push(RespExpect::Present(name.to_string()));
        self
    }
    pub fn expect_header_gt(mut self, name: &str, n: i64) -> Req {
        self.expected_response_headers
            .push(RespExpect::Greater(name.to_string(), n));
        self
    }
    pub fn expect_missing(mut self, name: &str) -> Req {
        self.expected_response_headers_missing
            .push(RespMissing::Absent(name.to_string()));
        self
    }
    pub fn expect_missing_value(mut self, name: &str, value: &str) -> Req {
        self.expected_response_headers_missing
            .push(RespMissing::NotValue(name.to_string(), value.to_string()));
        self
    }
    pub fn expect_method(mut self, m: &str) -> Req {
        self.expected_method = Some(m.to_string());
        self
    }
    pub fn setup(mut self) -> Req {
        self.setup = true;
        self
    }
    pub fn setup_tests(mut self, members: &[&'static str]) -> Req {
        self.setup_tests.extend_from_slice(members);
        self
    }

    /// The suite's `setupCheck`: whether a failure of this member is a
    /// setup failure rather than an assertion.
    pub fn is_setup(&self, member: &str) -> bool {
        self.setup || self.setup_tests.contains(&member)
    }
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// One test of the suite.
#[derive(Clone, Debug)]
pub struct Case {
    /// The suite's file (`cc-response`, ...).
    pub suite: &'static str,
    pub id: String,
    pub name: String,
    pub kind: Kind,
    /// The suite runs it only against browser caches: not ported.
    pub browser_only: bool,
    /// TOML for the edge's config, when the case runs with a non-default
    /// setting, and why.
    pub config: Option<(&'static str, &'static str)>,
    pub requests: Vec<Req>,
}

pub fn case(suite: &'static str, id: &str, kind: Kind, name: &str, requests: Vec<Req>) -> Case {
    Case {
        suite,
        id: id.to_string(),
        name: name.to_string(),
        kind,
        browser_only: false,
        config: None,
        requests,
    }
}

impl Case {
    pub fn browser_only(mut self) -> Case {
        self.browser_only = true;
        self
    }

    /// Runs the case on an edge with this config TOML (a documented,
    /// non-default setting), for the reason given.
    pub fn with_config(mut self, toml: &'static str, why: &'static str) -> Case {
        self.config = Some((toml, why));
        self
    }

    /// The Rust test function's name for this case: the suite file and the
    /// id, lower-cased, with every other character an underscore.
    pub fn fn_name(&self) -> String {
        fn_name(self.suite, &self.id)
    }
}

pub fn fn_name(suite: &str, id: &str) -> String {
    format!("{suite}_{id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The suite's `utils.httpContent`: a deterministic 15-letter string.
pub fn http_content(key: &str) -> String {
    let seed: u64 = key.chars().map(|c| c as u64).sum();
    (0..15u64)
        .map(|i| char::from(b'a' + ((i * seed) % 26) as u8))
        .collect()
}

// The suite's templates (tests/lib/templates.mjs). A template's header
// lists come first; a test's own headers are appended after them (the
// suite's `makeTemplate` merges them so: `varySetup({request_headers:
// [['Other', '2']]})` is a request carrying both `Foo` and `Other`).

/// `templates.fresh`: explicitly fresh for 100000 s, from a setup request.
/// (The suite's pause after it is left to the cases whose outcome depends
/// on the time passing.)
pub fn fresh() -> Req {
    req()
        .rh("Expires", 100000)
        .rh("Cache-Control", "max-age=100000")
        .rh("Last-Modified", 0)
        .rh("Date", 0)
        .setup()
}

/// `templates.stale`: a past `Expires`.
pub fn stale() -> Req {
    req()
        .rh("Expires", -5000)
        .rh("Last-Modified", -100000)
        .rh("Date", 0)
}

/// `templates.becomeStale`: `max-age=2`, then the suite's pause (here just
/// past the 2 s) makes it stale.
pub fn become_stale() -> Req {
    req()
        .rh("Cache-Control", "max-age=2")
        .rh("Template-A", "1")
        .setup()
        .pause_until_stale(2)
}
