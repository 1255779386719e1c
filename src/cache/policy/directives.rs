//! Cache directives (RFC 9111 §5.2): the `Cache-Control` grammar, read
//! leniently, into the typed response and request directive sets the rest
//! of the policy decides from. Targeted fields (RFC 9213) reach the same
//! `ResponseDirectives` through `targeted`. This file only parses: it never
//! decides what a directive implies for storing or reuse, and it never
//! fails — what it cannot read it reports as `Invalid` or ignores, as the
//! RFC says for each directive.

use crate::http::Headers;
use crate::http::headers::is_tchar;
use std::borrow::Cow;

/// The largest delta-seconds value kept (RFC 9111 §1.2.2: a recipient that
/// receives a larger one uses 2^31).
pub const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// A delta-seconds argument of a response directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaSeconds {
    /// Whole seconds, capped at `MAX_DELTA_SECONDS`.
    Valid(u64),
    /// Not a non-negative integer, missing, or repeated with another value.
    /// For `max-age` and `s-maxage` this makes the response stale (RFC 9111
    /// §4.2.1); for the stale windows it grants nothing.
    Invalid,
}

impl DeltaSeconds {
    pub fn valid(self) -> Option<u64> {
        match self {
            DeltaSeconds::Valid(s) => Some(s),
            DeltaSeconds::Invalid => None,
        }
    }
}

/// Lower-cased field names named by a qualified `no-cache` or `private`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldNames(Vec<String>);

impl FieldNames {
    pub fn new() -> FieldNames {
        FieldNames::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Removes every field named here from `headers`.
    pub fn strip_from(&self, headers: &mut Headers) {
        for name in &self.0 {
            headers.remove(name);
        }
    }

    pub(crate) fn add(&mut self, name: &str) {
        if !self.contains(name) {
            self.0.push(name.to_ascii_lowercase());
        }
    }

    fn union(&mut self, other: &FieldNames) {
        for n in other.iter() {
            self.add(n);
        }
    }

    /// A `#field-name` list; `None` when a member is not a token, so the
    /// caller can fall back to the whole response (the safe reading).
    fn parse_list(list: &str) -> Option<FieldNames> {
        let mut names = FieldNames::new();
        for name in list.split(',').map(|n| n.trim_matches([' ', '\t'])) {
            if name.is_empty() {
                continue;
            }
            if !name.bytes().all(is_tchar) {
                return None;
            }
            names.add(name);
        }
        Some(names)
    }
}

/// What a qualified directive (`no-cache`, `private`) applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Unqualified: the whole response.
    Response,
    /// Qualified with field names: only those fields.
    Fields(FieldNames),
}

impl Coverage {
    /// Two occurrences: the unqualified form wins, field lists add up
    /// (RFC 9111 §4.2.1: the most restrictive directive is honoured).
    fn merge(slot: &mut Option<Coverage>, new: Coverage) {
        *slot = match (slot.take(), new) {
            (None, c) => Some(c),
            (Some(Coverage::Response), _) | (_, Coverage::Response) => Some(Coverage::Response),
            (Some(Coverage::Fields(mut a)), Coverage::Fields(b)) => {
                a.union(&b);
                Some(Coverage::Fields(a))
            }
        };
    }
}

/// A directive's argument as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Arg<'a> {
    None,
    Token(Cow<'a, str>),
    Quoted(Cow<'a, str>),
    /// Present but of a type the directive cannot have (a structured-field
    /// decimal, byte sequence or inner list, or an unterminated quote).
    Unusable,
}

/// The response directives this cache acts on (RFC 9111 §5.2.2, RFC 5861,
/// RFC 8246). Unknown directives are ignored (RFC 9111 §5.2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    pub no_store: bool,
    pub no_cache: Option<Coverage>,
    pub private: Option<Coverage>,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub immutable: bool,
    pub max_age: Option<DeltaSeconds>,
    pub s_maxage: Option<DeltaSeconds>,
    pub stale_while_revalidate: Option<DeltaSeconds>,
    pub stale_if_error: Option<DeltaSeconds>,
}

impl ResponseDirectives {
    /// All `Cache-Control` lines of a response, read as one list.
    pub fn from_cache_control(headers: &Headers) -> ResponseDirectives {
        let mut d = ResponseDirectives::default();
        each_cache_control_member(headers, |name, arg| d.apply(name, arg, Quoting::Lenient));
        d
    }

    /// Whether the response explicitly allows a shared cache to reuse a
    /// response to a request with Authorization (RFC 9111 §3.5).
    pub fn allows_authorized(&self) -> bool {
        self.public || self.must_revalidate || self.s_maxage.is_some()
    }

    /// Whether a stale copy may be served without validation at all: not
    /// after `no-cache`, `must-revalidate` or `proxy-revalidate` (RFC 9111
    /// §4.2.4, §5.2.2.2, §5.2.2.8). `s-maxage` also forbids it (§5.2.2.10)
    /// except where the origin grants an explicit stale window alongside it
    /// (see `reuse`).
    pub fn forbids_stale(&self) -> bool {
        self.no_cache == Some(Coverage::Response) || self.must_revalidate || self.proxy_revalidate
    }

    /// Records one directive. `quoting` says whether a quoted number counts
    /// (Cache-Control: yes, RFC 9111 §5.2; targeted fields: no, RFC 9213 §2.1).
    pub(super) fn apply(&mut self, name: &str, arg: Arg<'_>, quoting: Quoting) {
        let delta = |arg: &Arg| delta_seconds(arg, quoting);
        // Restrictive flags count whatever argument they carry; permissive
        // ones only in their defined, argument-less form.
        let bare = arg == Arg::None;
        match name {
            "no-store" => self.no_store = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "public" => self.public |= bare,
            "must-understand" => self.must_understand |= bare,
            "immutable" => self.immutable |= bare,
            "no-cache" => Coverage::merge(&mut self.no_cache, coverage(&arg)),
            "private" => Coverage::merge(&mut self.private, coverage(&arg)),
            "max-age" => merge_delta(&mut self.max_age, delta(&arg)),
            "s-maxage" => merge_delta(&mut self.s_maxage, delta(&arg)),
            "stale-while-revalidate" => merge_delta(&mut self.stale_while_revalidate, delta(&arg)),
            "stale-if-error" => merge_delta(&mut self.stale_if_error, delta(&arg)),
            _ => {}
        }
    }
}

/// Whether a quoted-string argument may carry a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Quoting {
    Lenient,
    Strict,
}

/// `max-stale` with or without its argument (RFC 9111 §5.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxStale {
    /// Any staleness is acceptable.
    Any,
    /// At most this many seconds past expiry.
    Limit(u64),
}

/// The request directives this cache acts on (RFC 9111 §5.2.1, RFC 5861
/// §4). They are advisory; `reuse` decides which it honours. An invalid
/// argument drops the directive; a repeated one keeps its most restrictive
/// value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    pub no_cache: bool,
    pub no_store: bool,
    pub only_if_cached: bool,
    pub max_age: Option<u64>,
    pub max_stale: Option<MaxStale>,
    pub min_fresh: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl RequestDirectives {
    /// `Pragma: no-cache` is not read: RFC 9111 §5.4 deprecates it.
    pub fn parse(headers: &Headers) -> RequestDirectives {
        let mut d = RequestDirectives::default();
        each_cache_control_member(headers, |name, arg| {
            let secs = delta_seconds(&arg, Quoting::Lenient).valid();
            match name {
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                "only-if-cached" => d.only_if_cached = true,
                "max-age" => d.max_age = min_some(d.max_age, secs),
                "min-fresh" => d.min_fresh = max_some(d.min_fresh, secs),
                "stale-if-error" => d.stale_if_error = min_some(d.stale_if_error, secs),
                "max-stale" => {
                    let new = match arg {
                        Arg::None => Some(MaxStale::Any),
                        _ => secs.map(MaxStale::Limit),
                    };
                    d.max_stale = match (d.max_stale, new) {
                        (old, None) => old,
                        (None, n) => n,
                        (Some(MaxStale::Limit(a)), Some(MaxStale::Limit(b))) => {
                            Some(MaxStale::Limit(a.min(b)))
                        }
                        (Some(MaxStale::Limit(a)), _) | (_, Some(MaxStale::Limit(a))) => {
                            Some(MaxStale::Limit(a))
                        }
                        (Some(MaxStale::Any), Some(MaxStale::Any)) => Some(MaxStale::Any),
                    };
                }
                _ => {}
            }
        });
        d
    }
}

fn min_some(old: Option<u64>, new: Option<u64>) -> Option<u64> {
    match (old, new) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_some(old: Option<u64>, new: Option<u64>) -> Option<u64> {
    match (old, new) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Repeated with the same value is harmless; with different values the
/// freshness information is invalid (RFC 9111 §4.2.1: "either the first
/// occurrence should be used or the response should be considered stale" —
/// we take the safe reading).
fn merge_delta(slot: &mut Option<DeltaSeconds>, new: DeltaSeconds) {
    *slot = match *slot {
        None => Some(new),
        Some(old) if old == new => Some(old),
        Some(_) => Some(DeltaSeconds::Invalid),
    };
}

fn coverage(arg: &Arg<'_>) -> Coverage {
    let list = match arg {
        Arg::Quoted(s) | Arg::Token(s) => s,
        Arg::None | Arg::Unusable => return Coverage::Response,
    };
    match FieldNames::parse_list(list) {
        Some(names) if !names.is_empty() => Coverage::Fields(names),
        // An empty or unreadable list: the whole response is the safe reading.
        _ => Coverage::Response,
    }
}

/// delta-seconds = 1*DIGIT (RFC 9111 §1.2.2), capped at 2^31.
fn delta_seconds(arg: &Arg<'_>, quoting: Quoting) -> DeltaSeconds {
    let digits = match (arg, quoting) {
        (Arg::Token(s), _) | (Arg::Quoted(s), Quoting::Lenient) => s.as_ref(),
        _ => return DeltaSeconds::Invalid,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return DeltaSeconds::Invalid;
    }
    let value = digits.parse::<u64>().unwrap_or(u64::MAX);
    DeltaSeconds::Valid(value.min(MAX_DELTA_SECONDS))
}

/// Every `name[=arg]` member of every `Cache-Control` line, names
/// lower-cased (RFC 9111 §5.2: compared case-insensitively). Bytes that are
/// not UTF-8 are replaced, so an odd byte elsewhere cannot hide a
/// `no-store` on the same line.
fn each_cache_control_member(headers: &Headers, mut f: impl FnMut(&str, Arg<'_>)) {
    for value in headers.get_all("cache-control") {
        let value = String::from_utf8_lossy(value);
        for member in list_members(&value) {
            let (name, arg) = match member.split_once('=') {
                // RFC 9111 §5.2: no whitespace around "=" — such an
                // argument is invalid (an invalid max-age is stale).
                Some((n, a)) if n.ends_with([' ', '\t']) || a.starts_with([' ', '\t']) => {
                    (n, Arg::Unusable)
                }
                Some((n, a)) => (n, parse_arg(a.trim_end_matches([' ', '\t']))),
                None => (member, Arg::None),
            };
            let name = name.trim_matches([' ', '\t']);
            if name.is_empty() {
                continue;
            }
            match name.bytes().any(|b| b.is_ascii_uppercase()) {
                true => f(&name.to_ascii_lowercase(), arg),
                false => f(name, arg),
            }
        }
    }
}

/// token / quoted-string (RFC 9110 §5.6.2, §5.6.4).
fn parse_arg(raw: &str) -> Arg<'_> {
    let Some(inner) = raw.strip_prefix('"') else {
        return Arg::Token(Cow::Borrowed(raw));
    };
    let Some(close) = closing_quote(inner) else {
        return Arg::Unusable;
    };
    if !inner[close + 1..].trim_matches([' ', '\t']).is_empty() {
        return Arg::Unusable;
    }
    let quoted = &inner[..close];
    if !quoted.contains('\\') {
        return Arg::Quoted(Cow::Borrowed(quoted));
    }
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    Arg::Quoted(Cow::Owned(out))
}

/// Where the quoted-string that `inner` continues ends: the byte offset of
/// its closing quote, None when it is unterminated (or ends mid-escape).
fn closing_quote(inner: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in inner.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Splits a `#rule` list on commas outside quoted strings (RFC 9110 §5.6.1),
/// skipping empty members.
fn list_members(value: &str) -> impl Iterator<Item = &str> {
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    let mut cuts = value.bytes().enumerate().filter_map(move |(i, b)| {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == b',' && !quoted {
            return Some(i);
        }
        None
    });
    std::iter::from_fn(move || {
        let from = start;
        let to = cuts
            .next()
            .or((start <= value.len()).then_some(value.len()))?;
        start = to + 1;
        Some(&value[from..to])
    })
    .map(|m| m.trim_matches([' ', '\t']))
    .filter(|m| !m.is_empty())
}

#[cfg(test)]
#[path = "directives_tests.rs"]
mod tests;
