//! Validation (RFC 9111 §4.3): the conditional fields a revalidation sends
//! (§4.3.1), what a 304 is good for (§4.3.3), whether it applies to the
//! stored response, and the freshened stored head and freshness it yields
//! (§4.3.4 with the field update rules of §3.2). Pure: heads in, heads and
//! decisions out. It never lets a 304 change how the stored body is framed
//! or decoded, and never applies one whose validators name another
//! representation.

use super::PolicyConfig;
use super::freshness::http_date;
use super::storage::{Exchange, NotStored, Storable, assess};
use crate::http::{Headers, ResponseHead, is_hop_by_hop};

/// An entity-tag (RFC 9110 §8.8.3): `[W/]"opaque"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    /// The opaque-tag, quotes included.
    pub opaque: &'a str,
}

impl EntityTag<'_> {
    /// `None` unless the value is exactly one well-formed entity-tag.
    pub fn parse(value: &str) -> Option<EntityTag<'_>> {
        let value = value.trim_matches([' ', '\t']);
        let (weak, opaque) = match value.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
        // etagc = %x21 / %x23-7E / obs-text
        let ok = inner
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80);
        ok.then_some(EntityTag { weak, opaque })
    }

    /// Strong comparison (RFC 9110 §8.8.3.2): both strong, same opaque-tag.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: same opaque-tag, either may be weak.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

fn etag(headers: &Headers) -> Option<EntityTag<'_>> {
    headers.get_str("etag").and_then(EntityTag::parse)
}

/// The precondition fields of a revalidation request (RFC 9111 §4.3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditional {
    /// The stored ETag, weak or strong: If-None-Match compares weakly
    /// (RFC 9110 §13.1.2), so either kind may be sent.
    pub if_none_match: Option<String>,
    /// The stored Last-Modified, as the origin wrote it.
    pub if_modified_since: Option<String>,
}

impl Conditional {
    /// No validator stored: the "revalidation" is a plain fetch.
    pub fn is_empty(&self) -> bool {
        self.if_none_match.is_none() && self.if_modified_since.is_none()
    }

    /// Sets the fields on the upstream request, replacing any present.
    pub fn apply(&self, headers: &mut Headers) {
        if let Some(v) = &self.if_none_match {
            headers.set("If-None-Match", v.as_str());
        }
        if let Some(v) = &self.if_modified_since {
            headers.set("If-Modified-Since", v.as_str());
        }
    }
}

/// The conditional fields to validate `stored` with: the ETag it carries
/// (RFC 9111 §4.3.1: MUST send it) and its Last-Modified (SHOULD, for a
/// whole-response revalidation of a single stored response). Malformed
/// validators are not sent.
pub fn conditional_request(stored: &ResponseHead) -> Conditional {
    let h = &stored.headers;
    Conditional {
        if_none_match: etag(h).map(|t| {
            let mut s = String::from(if t.weak { "W/" } else { "" });
            s.push_str(t.opaque);
            s
        }),
        if_modified_since: http_date(h, "last-modified")
            .and(h.get_str("last-modified"))
            .map(str::to_string),
    }
}

/// The If-Range value for completing a stored partial response, if one is
/// allowed (RFC 9110 §13.1.5): a strong ETag; a weak one forbids If-Range;
/// without an ETag, a Last-Modified that is strong by §8.8.2.2 (the stored
/// Date at least one second later).
pub fn if_range_validator(stored: &ResponseHead) -> Option<String> {
    let h = &stored.headers;
    if let Some(t) = etag(h) {
        return (!t.weak).then(|| t.opaque.to_string());
    }
    if h.contains("etag") {
        return None;
    }
    let modified = http_date(h, "last-modified")?;
    let date = http_date(h, "date")?;
    let strong = date
        .duration_since(modified)
        .is_ok_and(|d| d.as_secs() >= 1);
    strong.then(|| h.get_str("last-modified").map(str::to_string))?
}

/// What a 304 from upstream is for (RFC 9111 §4.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotModifiedUse {
    /// It answers this cache's revalidation: `freshen` the stored response
    /// and serve the result (answering the viewer's own conditionals
    /// against it).
    Freshen,
    /// It answers the viewer's conditional, forwarded as sent with nothing
    /// stored: relay it; store nothing.
    Relay,
    /// It answers a request that carried no precondition: nobody can use
    /// it. Never stored and never served; treat it as a bad response from
    /// the origin (502).
    Unsolicited,
}

impl NotModifiedUse {
    pub fn token(self) -> &'static str {
        match self {
            NotModifiedUse::Freshen => "freshen",
            NotModifiedUse::Relay => "relay",
            NotModifiedUse::Unsolicited => "unsolicited-304",
        }
    }
}

/// Classifies a 304 by what was sent upstream (`sent`) and whether a stored
/// response was being revalidated.
pub fn not_modified_use(sent: &Headers, stored: Option<&ResponseHead>) -> NotModifiedUse {
    let conditional = sent.contains("if-none-match") || sent.contains("if-modified-since");
    match (conditional, stored) {
        (false, _) => NotModifiedUse::Unsolicited,
        (true, Some(_)) => NotModifiedUse::Freshen,
        (true, None) => NotModifiedUse::Relay,
    }
}

/// Why a 304 cannot freshen the stored response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotApplicable {
    /// The response is not a 304.
    NotA304,
    /// Its validators name another representation, or it has none while
    /// the stored response has some (RFC 9111 §4.3.4). The stored response
    /// is then not updated; fetch it again without preconditions.
    ValidatorMismatch,
}

impl NotApplicable {
    pub fn token(self) -> &'static str {
        match self {
            NotApplicable::NotA304 => "not-a-304",
            NotApplicable::ValidatorMismatch => "validator-mismatch",
        }
    }
}

/// A stored response updated by a 304.
#[derive(Clone, Debug)]
pub struct Freshened {
    /// The updated head, the stored status kept, without `Age`: serve it
    /// (through `reuse`'s `Serve::apply` or with the new age), and store
    /// it after `Storable::strip_unstorable_fields`.
    pub head: ResponseHead,
    /// Whether the updated response may stay stored, and its new
    /// freshness. An `Err` (e.g. the 304 said `no-store`) means: serve it
    /// this once, then drop the stored copy.
    pub storage: Result<Storable, NotStored>,
}

/// Fields a 304 never updates (RFC 9111 §3.2): Content-Length; fields the
/// stored body depends on (Content-Encoding: the stored bytes are encoded
/// as first received); fields processed per message (Content-Range, Age —
/// the 304's Age feeds the new freshness instead); the proxy's own fields
/// (§3.1). Hop-by-hop and Connection-nominated fields are excluded too.
const NOT_UPDATED: [&str; 7] = [
    "content-length",
    "content-encoding",
    "content-range",
    "age",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
];

/// Applies a 304 to a stored response (RFC 9111 §4.3.4): checks that its
/// validators select the stored response, updates the stored fields (§3.2)
/// and computes the new freshness from the exchange that brought the 304.
pub fn freshen(
    exchange: &Exchange<'_>,
    stored: &ResponseHead,
    not_modified: &ResponseHead,
    cfg: &PolicyConfig,
) -> Result<Freshened, NotApplicable> {
    if not_modified.status != 304 {
        return Err(NotApplicable::NotA304);
    }
    if !selects(&stored.headers, &not_modified.headers) {
        return Err(NotApplicable::ValidatorMismatch);
    }
    let mut head = stored.clone();
    update_stored_fields(&mut head.headers, &not_modified.headers);
    head.headers.remove("age");
    // Validation resets the age (RFC 9111 §4.2: "generated by, or
    // successfully validated with, the origin server"); a 304 without a
    // Date is dated by its arrival, not by the old response's Date.
    if !not_modified.headers.contains("date") {
        head.headers
            .set("Date", httpdate::fmt_http_date(exchange.response_time));
    }
    let mut assessed = head.clone();
    if let Some(age) = not_modified.headers.get("age") {
        assessed.headers.set("Age", age);
    }
    let storage = assess(exchange, &assessed, cfg);
    Ok(Freshened { head, storage })
}

/// RFC 9111 §4.3.4, for the one stored response a key holds: a strong
/// ETag in the 304 must equal the stored one strongly; a weak one must
/// match weakly; without an ETag a Last-Modified must equal the stored
/// one. A 304 with no validator at all answers the conditional request
/// this cache sent for that very response (§4.3.3: the stored response
/// "can be updated and reused"), so it selects it; origins that leave the
/// validators out of a 304 (RFC 9110 §15.4.5 says they should not) still
/// save the transfer.
fn selects(stored: &Headers, not_modified: &Headers) -> bool {
    let stored_tag = etag(stored);
    if let Some(new) = etag(not_modified) {
        return match stored_tag {
            Some(old) if new.weak => new.weak_eq(&old),
            Some(old) => new.strong_eq(&old),
            None => false,
        };
    }
    if let Some(new) = http_date(not_modified, "last-modified") {
        return http_date(stored, "last-modified") == Some(new);
    }
    true
}

/// RFC 9111 §3.2: each field of the 304 replaces the stored values of that
/// name, except the fields listed in `NOT_UPDATED`, hop-by-hop fields and
/// those the 304's Connection nominates.
fn update_stored_fields(stored: &mut Headers, from: &Headers) {
    let mut nominated: Vec<String> = Vec::new();
    for value in from.get_all("connection") {
        let value = String::from_utf8_lossy(value);
        nominated.extend(value.split(',').map(|t| t.trim().to_ascii_lowercase()));
    }
    let mut done: Vec<String> = Vec::new();
    for (name, _) in from.iter() {
        let lower = name.to_ascii_lowercase();
        if done.contains(&lower)
            || is_hop_by_hop(&lower)
            || NOT_UPDATED.contains(&lower.as_str())
            || nominated.contains(&lower)
        {
            continue;
        }
        let mut values = from.get_all(name);
        if let Some(first) = values.next() {
            stored.set(name, first);
        }
        for more in values {
            stored.push(name, more);
        }
        done.push(lower);
    }
}

#[cfg(test)]
#[path = "revalidation_tests.rs"]
mod tests;
