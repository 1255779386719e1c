//! Cache behaviours, CloudFront style: per request-path pattern, which origin
//! group answers, whether anything may be cached, which methods are allowed,
//! how long a response lives, and which parts of a request enter the cache
//! key and reach the origin. `[[behavior]]` tables are the configuration;
//! `Behaviors` is their validated, compiled form, asked once per request.
//! Pure: headers and strings in, headers and strings out. It must never
//! touch a socket, a file, the runtime or the clock, and never let two
//! requests that differ in a keyed value share a cache key.
//!
//! Selection is by order: the first behaviour (in the order of the file)
//! whose `path` matches the request path wins, so list specific patterns
//! before general ones; when none matches, an implicit default behaviour
//! (path `*`, every setting at its default) applies. A listed `path = "*"`
//! replaces that default.

use super::forwarded::FILL_DROPS;
use crate::cache::key::{self, CacheKey};
use crate::cache::policy::MAX_DELTA_SECONDS;
use crate::cache::vary;
use crate::config::Dur;
use crate::http::headers::is_tchar;
use crate::http::{Headers, Method, RequestHead};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// The methods a behaviour may allow, in the order `Allow` lists them.
/// CONNECT and TRACE are refused before any behaviour is asked (`route`),
/// and no behaviour allows an extension method.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The content codings an edge serves from cache, sorted: the only ones
/// whose acceptance enters the key when `normalize_accept_encoding` is on.
const SERVED_CODINGS: [&str; 3] = ["br", "gzip", "zstd"];

/// Fields a cacheable request always takes to the origin, whatever the
/// policies name: `host`; the framing fields; `via` and `x-forwarded-for`,
/// which the edge extends (`forwarded`); `accept-encoding` (the canonical
/// value when normalisation is on, so the origin compresses for the key's
/// codings); and the conditional and range fields (`FILL_DROPS`), which
/// the proxy itself keeps or drops later (a fill drops them).
const ORIGIN_BASE_FIELDS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "via",
    "x-forwarded-for",
    "accept-encoding",
];

/// The longest lifetime the cache policy represents (RFC 9111 §1.2.2).
const MAX_LIFETIME: Duration = Duration::from_secs(MAX_DELTA_SECONDS);

/// One `[[behavior]]` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviorConfig {
    /// Glob over the request path (no query): `*` any run of characters,
    /// `/` included; `?` exactly one character; case-sensitive. A pattern
    /// that starts with none of `/`, `*`, `?` is read with a leading `/`.
    pub path: String,
    pub origin_group: String,
    /// Never cached and never sent via the regional tier: every request
    /// goes to the origin as the viewer sent it.
    pub dynamic: bool,
    /// Methods served; others get 405 with an `Allow` field.
    pub methods: Vec<String>,
    pub cache: CachePolicyConfig,
    pub origin_request: OriginRequestConfig,
}

impl Default for BehaviorConfig {
    fn default() -> Self {
        BehaviorConfig {
            path: "*".into(),
            origin_group: "default".into(),
            dynamic: false,
            methods: METHODS.iter().map(|m| m.to_string()).collect(),
            cache: CachePolicyConfig::default(),
            origin_request: OriginRequestConfig::default(),
        }
    }
}

/// `[behavior.cache]`: lifetimes, and what enters the cache key. Whatever
/// enters the key is also sent to the origin.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CachePolicyConfig {
    /// Floor for the origin's explicit freshness lifetime.
    pub min_ttl: Dur,
    /// Lifetime of responses without an explicit one; must lie in
    /// `[min_ttl, max_ttl]`. Unset: `cache.default_ttl`, brought into that
    /// range unless it is zero (zero: such responses are not stored).
    pub default_ttl: Option<Dur>,
    /// Cap on every lifetime; unset: none.
    pub max_ttl: Option<Dur>,
    pub query: QuerySelection,
    /// Request fields whose values enter the key (case-insensitive).
    pub headers: Vec<String>,
    /// Cookies whose values enter the key (case-sensitive).
    pub cookies: Vec<String>,
    /// Key on which of br, gzip, zstd the viewer accepts, not on its
    /// `Accept-Encoding` text.
    pub normalize_accept_encoding: bool,
}

impl Default for CachePolicyConfig {
    fn default() -> Self {
        CachePolicyConfig {
            min_ttl: Dur::secs(0),
            default_ttl: None,
            max_ttl: None,
            query: QuerySelection::All,
            headers: Vec::new(),
            cookies: Vec::new(),
            normalize_accept_encoding: true,
        }
    }
}

/// `[behavior.origin_request]`: what the origin sees beyond the key. A
/// name `"*"` in `headers` or `cookies` forwards every viewer field or
/// cookie (CloudFront's "all viewer" policy): only for origins that never
/// vary on a field without saying so in `Vary`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginRequestConfig {
    pub query: QuerySelection,
    /// Default: `Accept` and `Accept-Language`, the negotiation fields an
    /// origin names in `Vary` when it varies on them.
    pub headers: Vec<String>,
    pub cookies: Vec<String>,
}

impl Default for OriginRequestConfig {
    fn default() -> Self {
        OriginRequestConfig {
            query: QuerySelection::None,
            headers: vec!["accept".into(), "accept-language".into()],
            cookies: Vec::new(),
        }
    }
}

/// Which query parameters are kept. Names are compared as written in the
/// request (no percent-decoding), case-sensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuerySelection {
    /// `"all"`: the query byte for byte.
    All,
    /// `"none"`.
    None,
    /// `["v", "lang"]`: these, in the order the request has them.
    Names(Vec<String>),
}

impl QuerySelection {
    fn is_none(&self) -> bool {
        match self {
            QuerySelection::None => true,
            QuerySelection::Names(names) => names.is_empty(),
            QuerySelection::All => false,
        }
    }

    fn keeps(&self, name: &str) -> bool {
        match self {
            QuerySelection::All => true,
            QuerySelection::None => false,
            QuerySelection::Names(names) => names.iter().any(|n| n == name),
        }
    }

    /// What either selection keeps.
    fn union(&self, other: &QuerySelection) -> QuerySelection {
        match (self, other) {
            (QuerySelection::All, _) | (_, QuerySelection::All) => QuerySelection::All,
            _ if self.is_none() && other.is_none() => QuerySelection::None,
            _ => {
                let mut names: Vec<String> = Vec::new();
                for s in [self, other] {
                    if let QuerySelection::Names(list) = s {
                        for n in list {
                            if !names.contains(n) {
                                names.push(n.clone());
                            }
                        }
                    }
                }
                QuerySelection::Names(names)
            }
        }
    }

    /// `target` with only the parameters this selection keeps; no `?` when
    /// none remains. Empty parameters (`a=1&&b=2`) are dropped.
    fn apply(&self, target: &str) -> String {
        let mut out = String::with_capacity(target.len());
        self.push_applied(target, &mut out);
        out
    }

    /// `apply`, appended to `out`.
    fn push_applied(&self, target: &str, out: &mut String) {
        let Some((path, query)) = target.split_once('?') else {
            out.push_str(target);
            return;
        };
        match self {
            QuerySelection::All => out.push_str(target),
            _ if self.is_none() => out.push_str(path),
            _ => {
                out.push_str(path);
                let mut first = true;
                for param in query.split('&').filter(|p| !p.is_empty()) {
                    let name = param.split_once('=').map_or(param, |(n, _)| n);
                    if self.keeps(name) {
                        out.push(if first { '?' } else { '&' });
                        out.push_str(param);
                        first = false;
                    }
                }
            }
        }
    }
}

const QUERY_FORMS: &str =
    "\"all\", \"none\" or a list of query parameter names such as [\"v\", \"lang\"]";

impl<'de> Deserialize<'de> for QuerySelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Forms;
        impl<'de> Visitor<'de> for Forms {
            type Value = QuerySelection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(QUERY_FORMS)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<QuerySelection, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "all" => Ok(QuerySelection::All),
                    "none" => Ok(QuerySelection::None),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<QuerySelection, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(QuerySelection::Names(names))
            }
        }
        d.deserialize_any(Forms)
    }
}

impl Serialize for QuerySelection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            QuerySelection::All => s.serialize_str("all"),
            QuerySelection::None => s.serialize_str("none"),
            QuerySelection::Names(names) => names.serialize(s),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GlobToken {
    Literal(char),
    /// `?`
    One,
    /// `*`
    Run,
}

/// A compiled `path` glob. Matching keeps only the most recent `*` to
/// retry from, which is enough because a later `*` can absorb anything an
/// earlier one could: O(path × pattern) steps at worst, never exponential.
#[derive(Clone, Debug)]
pub struct PathPattern {
    text: String,
    tokens: Vec<GlobToken>,
}

impl PathPattern {
    pub fn new(pattern: &str) -> PathPattern {
        let text = match pattern.chars().next() {
            Some('/' | '*' | '?') | None => pattern.to_owned(),
            Some(_) => format!("/{pattern}"),
        };
        let mut tokens = Vec::with_capacity(text.len());
        for c in text.chars() {
            let token = match c {
                '*' => GlobToken::Run,
                '?' => GlobToken::One,
                c => GlobToken::Literal(c),
            };
            // `**` matches what `*` does, with more retries.
            if !(token == GlobToken::Run && tokens.last() == Some(&GlobToken::Run)) {
                tokens.push(token);
            }
        }
        PathPattern { text, tokens }
    }

    /// The pattern as matched (with the implied leading `/`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, path: &str) -> bool {
        self.match_counting_steps(path).0
    }

    /// The match, and how many steps it took (which tests bound).
    fn match_counting_steps(&self, path: &str) -> (bool, usize) {
        let next_char = |at: usize| path[at..].chars().next();
        let (mut t, mut at, mut steps) = (0, 0, 0);
        // The token after the last `*` seen, and where in the path that
        // `*`'s run currently ends.
        let mut retry: Option<(usize, usize)> = None;
        loop {
            steps += 1;
            let advanced = match self.tokens.get(t) {
                Some(GlobToken::Run) => {
                    retry = Some((t + 1, at));
                    t += 1;
                    continue;
                }
                Some(GlobToken::One) => next_char(at).map(char::len_utf8),
                Some(GlobToken::Literal(want)) => {
                    next_char(at).filter(|c| c == want).map(char::len_utf8)
                }
                None if at == path.len() => return (true, steps),
                None => None,
            };
            if let Some(len) = advanced {
                t += 1;
                at += len;
                continue;
            }
            // Mismatch: the last `*` absorbs one more character.
            let Some((after_run, run_end)) = retry else {
                return (false, steps);
            };
            let Some(c) = next_char(run_end) else {
                return (false, steps);
            };
            retry = Some((after_run, run_end + c.len_utf8()));
            (t, at) = (after_run, run_end + c.len_utf8());
        }
    }
}

/// A set of `METHODS`, one bit each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MethodSet(u8);

impl MethodSet {
    fn bit(name: &str) -> Option<u8> {
        METHODS.iter().position(|m| *m == name).map(|i| 1 << i)
    }

    fn contains(self, method: &Method) -> bool {
        Self::bit(method.as_str()).is_some_and(|b| self.0 & b != 0)
    }

    /// The `Allow` value (RFC 9110 §10.2.1): empty when nothing is allowed.
    fn allow_value(self) -> String {
        let names: Vec<&str> = (METHODS.iter().enumerate())
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, m)| *m)
            .collect();
        names.join(", ")
    }
}

/// One compiled behaviour.
#[derive(Clone, Debug)]
pub struct Behavior {
    pattern: PathPattern,
    origin_group: String,
    dynamic: bool,
    methods: MethodSet,
    allow: String,
    min_ttl: Duration,
    /// Zero: responses without an explicit lifetime get none from here.
    default_ttl: Duration,
    max_ttl: Option<Duration>,
    key_query: QuerySelection,
    /// The key's parameters and the origin request policy's.
    origin_query: QuerySelection,
    normalize_accept_encoding: bool,
    /// Lower case, without duplicates.
    key_headers: Vec<String>,
    key_cookies: Vec<String>,
    /// Fields and cookies either policy names (lower-case field names).
    origin_headers: Vec<String>,
    origin_cookies: Vec<String>,
}

impl Behavior {
    /// The path pattern, as matched (for the access log).
    pub fn path(&self) -> &str {
        self.pattern.as_str()
    }

    pub fn dynamic(&self) -> bool {
        self.dynamic
    }

    pub fn origin_group(&self) -> &str {
        &self.origin_group
    }

    pub fn allows(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }

    /// The `Allow` field value a 405 from this behaviour carries.
    pub fn allow_header(&self) -> &str {
        &self.allow
    }

    /// The freshness lifetime to store a response with. `origin_lifetime`:
    /// the origin's explicit one (`s-maxage`, `max-age`, `Expires`), which
    /// is clamped into `[min_ttl, max_ttl]`; without one, the behaviour's
    /// default lifetime, if not zero. Whether the response may be stored
    /// at all (`no-store`, `private`, `dynamic`) is decided elsewhere.
    pub fn clamp_ttl(&self, origin_lifetime: Option<Duration>) -> Option<Duration> {
        let lifetime = match origin_lifetime {
            Some(l) => l.max(self.min_ttl),
            None if self.default_ttl.is_zero() => return None,
            None => self.default_ttl,
        };
        Some(self.max_ttl.map_or(lifetime, |max| lifetime.min(max)))
    }

    /// The key of `req` under this behaviour: the URL's key (`CacheKey::new`
    /// over `key_target`) followed by `key_extras`. `KeyPolicy` is left at
    /// its default: `cache.query` has already chosen the query.
    pub fn cache_key(&self, scheme: &str, authority: &str, req: &RequestHead) -> CacheKey {
        // One allocation: room for the usual extras (`ae=` and a field or
        // two) besides the URL.
        let mut text =
            crate::spare::take_string(scheme.len() + authority.len() + req.target.len() + 64);
        key::push_origin(&mut text, scheme, authority);
        self.key_query.push_applied(&req.target, &mut text);
        self.push_key_extras(req, &mut text);
        CacheKey::from_text(text)
    }

    /// What, beyond scheme, host, port and `key_target`, tells requests
    /// apart in the key; empty when nothing does. Otherwise it is ` k:`
    /// and `;`-separated entries: `ae=` and the codings served (when
    /// normalisation is on, always, so `gzip, deflate` and `gzip` share
    /// `ae=gzip`); `h:name=value` per keyed field (lines trimmed, joined
    /// with `", "`; no `=` when absent); `c:name=value` per occurrence of a
    /// keyed cookie (no `=` when absent, so no cookie differs from an empty
    /// one). Values have `%`, `;` and bytes outside visible ASCII
    /// percent-encoded, so no value can spell another entry or a space: the
    /// text starts with a space no target contains, and never contains a
    /// second one, such as the ` vary;` suffix of a variant key (`vary`).
    pub fn key_extras(&self, req: &RequestHead) -> String {
        let mut out = String::new();
        self.push_key_extras(req, &mut out);
        out
    }

    /// `key_extras`, appended to `out`.
    fn push_key_extras(&self, req: &RequestHead, out: &mut String) {
        let headers = &req.headers;
        let start = out.len();
        let start_entry = |out: &mut String| {
            out.push_str(if out.len() == start { " k:" } else { ";" });
        };
        if self.normalize_accept_encoding {
            start_entry(out);
            out.push_str("ae=");
            push_served_codings(headers, out);
        }
        for name in &self.key_headers {
            start_entry(out);
            out.push_str("h:");
            out.push_str(name);
            for (i, line) in headers.get_all(name).enumerate() {
                if i == 0 {
                    out.push('=');
                } else {
                    push_escaped(out, b", ");
                }
                push_escaped(out, trim(line));
            }
        }
        for name in &self.key_cookies {
            let mut found = false;
            for (_, value) in cookie_pairs(headers).filter(|(n, _)| *n == name.as_bytes()) {
                start_entry(out);
                out.push_str("c:");
                out.push_str(name);
                out.push('=');
                push_escaped(out, value);
                found = true;
            }
            if !found {
                start_entry(out);
                out.push_str("c:");
                out.push_str(name);
            }
        }
    }

    /// The path and query that enter the key, per `cache.query`.
    pub fn key_target(&self, target: &str) -> String {
        self.key_query.apply(target)
    }

    /// The target a cacheable request is sent upstream with: the path and
    /// the parameters either the key or the origin request policy keeps.
    pub fn origin_target(&self, target: &str) -> String {
        self.origin_query.apply(target)
    }

    /// The fields of a cacheable request the origin may see, in their
    /// order: `ORIGIN_BASE_FIELDS` and those either policy names, with
    /// `Accept-Encoding` set to the served codings when normalisation is on
    /// and `Cookie` rebuilt as one field of the named cookies (none: no
    /// field). Anything else (`Authorization`, `X-Forwarded-Host`,
    /// `Cache-Control`, `User-Agent`, …) is dropped, so it can neither
    /// change an answer the key does not tell apart nor reach an origin
    /// that was not meant to see it. Dynamic behaviours and unsafe methods
    /// forward the viewer's fields unfiltered; read the viewer's directives
    /// from the original headers, not from these.
    pub fn filter_for_origin(&self, headers: &Headers) -> Headers {
        let mut out = Headers::new();
        let mut cookie_done = false;
        let all = self.origin_headers.iter().any(|h| h == "*");
        for (name, value) in headers.iter() {
            if name.eq_ignore_ascii_case("cookie") {
                if !cookie_done {
                    cookie_done = true;
                    self.push_origin_cookie(headers, &mut out);
                }
            } else if all
                || ORIGIN_BASE_FIELDS
                    .iter()
                    .chain(FILL_DROPS)
                    .any(|f| f.eq_ignore_ascii_case(name))
                || self
                    .origin_headers
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(name))
            {
                out.push(name, value);
            }
        }
        if self.normalize_accept_encoding {
            out.set("Accept-Encoding", served_codings(headers));
        }
        out
    }

    fn push_origin_cookie(&self, headers: &Headers, out: &mut Headers) {
        let mut cookie = Vec::new();
        let all = self.origin_cookies.iter().any(|c| c == "*");
        for (name, value) in cookie_pairs(headers) {
            if all || self.origin_cookies.iter().any(|c| c.as_bytes() == name) {
                if !cookie.is_empty() {
                    cookie.extend_from_slice(b"; ");
                }
                cookie.extend_from_slice(name);
                cookie.push(b'=');
                cookie.extend_from_slice(value);
            }
        }
        if !cookie.is_empty() {
            out.push("Cookie", cookie);
        }
    }

    /// Compiles one table; problems go to `problems` under `at` (e.g.
    /// "behavior[2]"), and the result is then meaningless.
    fn compile(
        config: &BehaviorConfig,
        fallback_default_ttl: Duration,
        at: &str,
        problems: &mut Vec<(String, String)>,
    ) -> Behavior {
        let mut problem =
            |field: &str, message: String| problems.push((format!("{at}.{field}"), message));
        if config.path.is_empty() {
            problem(
                "path",
                "must not be empty (\"*\" matches every path)".into(),
            );
        }
        if config.origin_group.is_empty() {
            problem("origin_group", "must name an origin group".into());
        }
        let mut methods = MethodSet(0);
        for name in &config.methods {
            match MethodSet::bit(name) {
                Some(bit) => methods.0 |= bit,
                None => problem("methods", method_problem(name)),
            }
        }
        let cache = &config.cache;
        let (min_ttl, max_ttl) = (cache.min_ttl.get(), cache.max_ttl.map(Dur::get));
        for (field, d) in [
            ("cache.min_ttl", Some(min_ttl)),
            ("cache.default_ttl", cache.default_ttl.map(Dur::get)),
            ("cache.max_ttl", max_ttl),
        ] {
            if d.is_some_and(|d| d > MAX_LIFETIME) {
                problem(
                    field,
                    "must be at most 2^31 seconds (about 68 years)".into(),
                );
            }
        }
        if let Some(max) = cache.max_ttl.filter(|max| *max < cache.min_ttl) {
            problem(
                "cache.max_ttl",
                format!("{max} is below min_ttl ({})", cache.min_ttl),
            );
        }
        let default_ttl = match cache.default_ttl {
            Some(d) => {
                if d < cache.min_ttl {
                    problem(
                        "cache.default_ttl",
                        format!("{d} is below min_ttl ({})", cache.min_ttl),
                    );
                } else if let Some(max) = cache.max_ttl.filter(|max| d > *max) {
                    problem("cache.default_ttl", format!("{d} is above max_ttl ({max})"));
                }
                d.get()
            }
            // Zero keeps its meaning, "not stored without a lifetime".
            None if fallback_default_ttl.is_zero() => Duration::ZERO,
            None => {
                let raised = fallback_default_ttl.max(min_ttl);
                max_ttl.map_or(raised, |max| raised.min(max))
            }
        };
        for (field, names) in [
            ("cache.headers", &cache.headers),
            ("origin_request.headers", &config.origin_request.headers),
        ] {
            for name in names {
                if let Some(message) = header_name_problem(
                    name,
                    field == "cache.headers" && cache.normalize_accept_encoding,
                ) {
                    problem(field, message);
                }
            }
        }
        for (field, names) in [
            ("cache.cookies", &cache.cookies),
            ("origin_request.cookies", &config.origin_request.cookies),
        ] {
            for name in names
                .iter()
                .filter(|n| n.is_empty() || !n.bytes().all(is_tchar))
            {
                problem(
                    field,
                    format!("{name:?} is not a cookie name (a token, RFC 6265 §4.1.1)"),
                );
            }
        }
        for (field, selection) in [
            ("cache.query", &cache.query),
            ("origin_request.query", &config.origin_request.query),
        ] {
            if let QuerySelection::Names(names) = selection {
                for name in names
                    .iter()
                    .filter(|n| n.is_empty() || n.contains(['&', '=', '#', '?', ' ']))
                {
                    problem(
                        field,
                        format!(
                            "{name:?} is not a query parameter name (empty, or has one of & = # ? or a space)"
                        ),
                    );
                }
            }
        }
        let key_headers = lower_case_unique([&cache.headers]);
        let origin_headers = lower_case_unique([&cache.headers, &config.origin_request.headers]);
        Behavior {
            pattern: PathPattern::new(&config.path),
            origin_group: config.origin_group.clone(),
            dynamic: config.dynamic,
            methods,
            allow: methods.allow_value(),
            min_ttl,
            default_ttl,
            max_ttl,
            key_query: if cache.query.is_none() {
                QuerySelection::None
            } else {
                cache.query.clone()
            },
            origin_query: cache.query.union(&config.origin_request.query),
            normalize_accept_encoding: cache.normalize_accept_encoding,
            key_headers,
            key_cookies: unique([&cache.cookies]),
            origin_headers,
            origin_cookies: unique([&cache.cookies, &config.origin_request.cookies]),
        }
    }
}

fn method_problem(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if MethodSet::bit(&upper).is_some() {
        format!("{name:?}: method names are case-sensitive, write {upper:?}")
    } else if upper == "CONNECT" || upper == "TRACE" {
        format!("{name:?} is always refused and cannot be allowed")
    } else {
        format!(
            "unknown method {name:?} (expected some of {})",
            METHODS.join(", ")
        )
    }
}

fn header_name_problem(name: &str, keys_accept_encoding: bool) -> Option<String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        Some(format!(
            "{name:?} is not a header field name (a token, RFC 9110 §5.1)"
        ))
    } else if name.eq_ignore_ascii_case("cookie") {
        Some("list cookies by name in `cookies`, not the Cookie field".into())
    } else if keys_accept_encoding && name.eq_ignore_ascii_case("accept-encoding") {
        Some("accept-encoding is already in the key, normalised; set normalize_accept_encoding = false to key on the field as sent".into())
    } else {
        None
    }
}

fn unique<const N: usize>(lists: [&Vec<String>; N]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in lists.into_iter().flatten() {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

fn lower_case_unique<const N: usize>(lists: [&Vec<String>; N]) -> Vec<String> {
    let lowered: Vec<String> = lists
        .into_iter()
        .flatten()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    unique([&lowered])
}

/// All behaviours of a node, compiled, in the order of the configuration.
#[derive(Clone, Debug)]
pub struct Behaviors {
    listed: Vec<Behavior>,
    implicit: Behavior,
}

impl Behaviors {
    /// Validates and compiles `configs`. `fallback_default_ttl` is
    /// `cache.default_ttl`, for behaviours that set no `default_ttl` and
    /// for the implicit default. Every problem is reported, each with its
    /// key (e.g. "behavior[2].methods") and a message.
    pub fn new(
        configs: &[BehaviorConfig],
        fallback_default_ttl: Duration,
    ) -> Result<Behaviors, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut listed: Vec<Behavior> = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let at = format!("behavior[{i}]");
            let behavior = Behavior::compile(config, fallback_default_ttl, &at, &mut problems);
            if let Some(first) = listed.iter().position(|b| b.path() == behavior.path()) {
                problems.push((
                    format!("{at}.path"),
                    format!("{:?} is also the path of behavior[{first}], which comes first, so this one would never be selected", behavior.path()),
                ));
            }
            listed.push(behavior);
        }
        let implicit = Behavior::compile(
            &BehaviorConfig::default(),
            fallback_default_ttl,
            "behavior[default]",
            &mut problems,
        );
        if problems.is_empty() {
            Ok(Behaviors { listed, implicit })
        } else {
            Err(problems)
        }
    }

    /// The implicit default alone, as `new` would compile it (whatever
    /// problems it found are already reported by validation).
    pub fn only_default(fallback_default_ttl: Duration) -> Behaviors {
        let mut ignored = Vec::new();
        Behaviors {
            listed: Vec::new(),
            implicit: Behavior::compile(
                &BehaviorConfig::default(),
                fallback_default_ttl,
                "behavior[default]",
                &mut ignored,
            ),
        }
    }

    /// The first listed behaviour whose pattern matches `path` (the request
    /// path without its query), else the implicit default.
    pub fn select(&self, path: &str) -> &Behavior {
        self.listed
            .iter()
            .find(|b| b.pattern.matches(path))
            .unwrap_or(&self.implicit)
    }

    pub fn listed(&self) -> &[Behavior] {
        &self.listed
    }
}

/// Which of `SERVED_CODINGS` the request accepts (RFC 9110 §12.5.3, read
/// by `vary::accept_encoding`), joined with `,`; `identity` when none, and
/// when there is no `Accept-Encoding` (a viewer that sends none is taken to
/// decode none, as CDNs do) or it does not parse.
fn served_codings(headers: &Headers) -> String {
    let mut out = String::new();
    push_served_codings(headers, &mut out);
    out
}

/// `served_codings`, appended to `out` without allocating.
fn push_served_codings(headers: &Headers, out: &mut String) {
    let accepted = match headers.contains("accept-encoding") {
        true => vary::codings_accepted(headers.get_all("accept-encoding"), SERVED_CODINGS),
        false => None,
    };
    let start = out.len();
    let served = SERVED_CODINGS.iter().zip(accepted.unwrap_or_default());
    for (coding, _) in served.filter(|(_, ok)| *ok) {
        if out.len() > start {
            out.push(',');
        }
        out.push_str(coding);
    }
    if out.len() == start {
        out.push_str("identity");
    }
}

/// `(name, value)` of every cookie in every `Cookie` field (RFC 6265 §5.4),
/// trimmed; pairs without `=` are ignored.
fn cookie_pairs(headers: &Headers) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all("cookie")
        .flat_map(|line| line.split(|&b| b == b';'))
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let name = trim(&pair[..eq]);
            (!name.is_empty()).then(|| (name, trim(&pair[eq + 1..])))
        })
}

fn trim(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

fn push_escaped(out: &mut String, value: &[u8]) {
    for &b in value {
        if (0x21..0x7f).contains(&b) && b != b'%' && b != b';' {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

#[cfg(test)]
#[path = "behavior_tests.rs"]
mod tests;
