//! `Vary` (RFC 9111 §4.1): which request fields a response varies on, how a
//! request's values for them are normalised so that equivalent requests
//! share one stored variant, and the keys variants are stored under. Pure:
//! no I/O, no clock, no logging (the new marker epoch is an argument).
//!
//! A URL whose response carries `Vary` is stored as two kinds of ordinary
//! entries: under the URL's own key a small *marker* (the normalised field
//! names and an epoch, with the response's freshness in the entry header),
//! and each variant under a *variant key*: the URL's key plus the epoch,
//! the names and the request's normalised values for them. A lookup that
//! finds a marker computes the variant key from the request and looks that
//! up. Objects without `Vary` are untouched. The epoch changes whenever a
//! marker is written with another name list, or where none was found, so a
//! removed or replaced marker can never lead a later request back to the
//! variants stored under it.
//!
//! Normalisation, per field (names in `Vary` are case-insensitive, and are
//! lower-cased, de-duplicated and sorted; a field absent from the request is
//! its own value, distinct from an empty one):
//!
//! - Every field: its lines are combined in order with `", "` (RFC 9110
//!   §5.3), each line trimmed of surrounding whitespace (which is never part
//!   of a field value, §5.5), and runs of spaces and tabs outside quoted
//!   strings collapse to one space. Quoted strings are kept byte for byte.
//! - `Accept`, `Accept-Language`, `Accept-Charset`: list members (§5.6.1)
//!   trimmed, empty ones dropped, whitespace around `;` dropped, joined with
//!   `,`. Language ranges, charsets and weights are case-insensitive and are
//!   lower-cased; in `Accept` the media range and parameter names are
//!   lower-cased (§8.3.1) and parameter values kept. Order is kept: it can
//!   carry preference.
//! - `Accept-Encoding`: the set of content codings the request finds
//!   acceptable (RFC 9110 §12.5.3), written canonically — see
//!   [`accept_encoding`]. Two requests with the same canonical form accept
//!   exactly the same codings, so a response chosen for one is acceptable to
//!   the other; only preferences among acceptable codings are forgotten.
//! - Anything that does not parse as its field's grammar falls back to the
//!   form of "every field" (plus lower-casing for `Accept-Encoding`, whose
//!   whole grammar is case-insensitive): equal strings only, never a merge.

use super::key::CacheKey;
use super::policy::NotStored;
use crate::http::Headers;
use crate::http::headers::{is_tchar, list_elements};

/// Longest variant key suffix kept; a request whose values would make a
/// longer one is not stored as a variant (the store keeps keys up to 8 KiB).
pub const MAX_VARIANT_SUFFIX: usize = 4096;

/// What a response's `Vary` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaryField {
    /// No `Vary`, or only empty members: the response does not vary.
    Absent,
    /// The request fields the response varies on.
    Names(VaryNames),
    /// `*`, or a member that is not a field name: no request can be shown to
    /// match it (RFC 9111 §4.1), so it is not stored.
    Unmatchable,
}

impl VaryField {
    /// Reads every `Vary` line of a response.
    pub fn of(response: &Headers) -> VaryField {
        let mut names: Vec<String> = Vec::new();
        for member in response.get_all("vary").flat_map(list_elements) {
            if member == b"*" || !member.iter().all(|&b| is_tchar(b)) {
                return VaryField::Unmatchable;
            }
            // A token is ASCII.
            names.push(String::from_utf8_lossy(member).to_ascii_lowercase());
        }
        if names.is_empty() {
            return VaryField::Absent;
        }
        names.sort_unstable();
        names.dedup();
        VaryField::Names(VaryNames(names))
    }
}

/// Field names a response varies on: lower-case, sorted, without
/// duplicates, never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaryNames(Vec<String>);

impl VaryNames {
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// From names already in normal form (decoded from a marker): None
    /// unless they are.
    fn from_normal(names: Vec<String>) -> Option<VaryNames> {
        let normal = !names.is_empty()
            && names.iter().all(|n| {
                !n.is_empty() && n.bytes().all(|b| is_tchar(b) && !b.is_ascii_uppercase())
            })
            && names.windows(2).all(|w| w[0] < w[1]);
        normal.then_some(VaryNames(names))
    }
}

/// What the URL's key holds when its responses vary: the names they vary
/// on and the epoch their variant keys carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub names: VaryNames,
    pub epoch: u64,
}

/// A marker is stored as an ordinary object whose "head" is this line: no
/// stored response head starts this way (they start with `HTTP/`), and a
/// version of edgeslab that knows no markers fails to parse it as a head
/// and takes it for a miss.
const MARKER_PREFIX: &[u8] = b"EDGESLAB-VARY/1 ";

impl Marker {
    /// The bytes stored in place of a response head.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MARKER_PREFIX.to_vec();
        out.extend_from_slice(format!("{:016x} ", self.epoch).as_bytes());
        out.extend_from_slice(self.names.0.join(",").as_bytes());
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The marker a stored head encodes, if it is one.
    pub fn decode(head: &[u8]) -> Option<Marker> {
        let rest = head.strip_prefix(MARKER_PREFIX)?;
        let rest = std::str::from_utf8(rest.strip_suffix(b"\r\n")?).ok()?;
        let (epoch, names) = rest.split_once(' ')?;
        if epoch.len() != 16 {
            return None;
        }
        let epoch = u64::from_str_radix(epoch, 16).ok()?;
        let names = VaryNames::from_normal(names.split(',').map(str::to_string).collect())?;
        Some(Marker { names, epoch })
    }
}

/// A request's normalised values for a marker's names, in the names'
/// order; `None` where the request has no such field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection(Vec<Option<Vec<u8>>>);

impl Selection {
    pub fn of(names: &VaryNames, request: &Headers) -> Selection {
        Selection(names.0.iter().map(|n| normalise(n, request)).collect())
    }

    pub fn values(&self) -> &[Option<Vec<u8>>] {
        &self.0
    }
}

/// One variant of a URL: the marker it is stored under and the normalised
/// values of the request that selects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub marker: Marker,
    pub selection: Selection,
}

impl Variant {
    /// The variant `request` selects under `marker`.
    pub fn of(marker: Marker, request: &Headers) -> Variant {
        let selection = Selection::of(&marker.names, request);
        Variant { marker, selection }
    }

    /// Whether `request` selects this variant (RFC 9111 §4.1: its fields
    /// named by `Vary` match those of the request this variant answered).
    pub fn selected_by(&self, request: &Headers) -> bool {
        Selection::of(&self.marker.names, request) == self.selection
    }

    /// The variant's key under `url`'s key; None when the values are too
    /// long to keep. The suffix starts with a space, which no request
    /// target contains, and spells the epoch, each name and, after `=`, its
    /// value (absent: no `=`), with `%`, `;` and bytes outside visible
    /// ASCII percent-encoded: different variants never share a key text.
    pub fn key(&self, url: &CacheKey) -> Option<CacheKey> {
        let mut s = format!(" vary;e={:016x}", self.marker.epoch);
        for (name, value) in self.marker.names.0.iter().zip(&self.selection.0) {
            s.push(';');
            s.push_str(name);
            if let Some(v) = value {
                s.push('=');
                for &b in v {
                    if (0x21..0x7f).contains(&b) && b != b'%' && b != b';' {
                        s.push(b as char);
                    } else {
                        s.push_str(&format!("%{b:02X}"));
                    }
                }
            }
            if s.len() > MAX_VARIANT_SUFFIX {
                return None;
            }
        }
        Some(url.variant(&s))
    }
}

/// Where a request learnt its URL's marker, which decides whether a fill
/// must write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerSource {
    /// Read from the store, still fresh: no need to write it again.
    StoredFresh,
    /// Read from the store, no longer fresh: written again (same epoch) so
    /// that its freshness follows the latest response.
    StoredStale,
    /// From another request's fill that may not be stored yet.
    Leader,
}

/// A marker a request knows of, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownMarker {
    pub marker: Marker,
    pub source: MarkerSource,
}

/// How a response is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FillKey {
    /// Under the URL's key: the response does not vary.
    Url,
    /// As a variant.
    Variant(VariantFill),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantFill {
    pub variant: Variant,
    pub key: CacheKey,
    /// Whether the URL's key must get this variant's marker.
    pub write_marker: bool,
}

/// Decides how a response to `request` for `url` is stored, given the
/// marker the request knew of. A response that varies on the names the
/// known marker lists keeps its epoch; one that varies on others, or with
/// no marker known, gets `new_epoch` (so variants stored under any earlier
/// marker stay unreachable). `Vary: *` and over-long values are not stored.
pub fn plan_fill(
    url: &CacheKey,
    known: Option<&KnownMarker>,
    response: &Headers,
    request: &Headers,
    new_epoch: u64,
) -> Result<FillKey, NotStored> {
    let names = match VaryField::of(response) {
        VaryField::Absent => return Ok(FillKey::Url),
        VaryField::Unmatchable => return Err(NotStored::Vary),
        VaryField::Names(names) => names,
    };
    let (marker, write_marker) = match known {
        Some(k) if k.marker.names == names => {
            (k.marker.clone(), k.source != MarkerSource::StoredFresh)
        }
        _ => {
            let epoch = new_epoch;
            (Marker { names, epoch }, true)
        }
    };
    let variant = Variant::of(marker, request);
    let key = variant.key(url).ok_or(NotStored::Vary)?;
    Ok(FillKey::Variant(VariantFill {
        variant,
        key,
        write_marker,
    }))
}

/// A request's normalised value for the lower-case field `name`, or None
/// when it has no such field.
pub fn normalise(name: &str, request: &Headers) -> Option<Vec<u8>> {
    let lines: Vec<&[u8]> = request.get_all(name).collect();
    if lines.is_empty() {
        return None;
    }
    Some(match name {
        "accept-encoding" => accept_encoding(&lines).unwrap_or_else(|| list(&lines, lower_case)),
        "accept" => list(&lines, media_range),
        "accept-language" | "accept-charset" => list(&lines, weighted),
        _ => combined(&lines),
    })
}

/// Any field: lines trimmed and combined with ", ", whitespace outside
/// quoted strings collapsed.
fn combined(lines: &[&[u8]]) -> Vec<u8> {
    let mut joined = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(trim(line));
    }
    collapse_whitespace(&joined)
}

/// A list field: members of every line, each trimmed, collapsed and shaped
/// by `member`, empty ones dropped, joined with ",".
fn list(lines: &[&[u8]], member: fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for m in lines.iter().flat_map(|l| list_elements(l)) {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(&member(&collapse_whitespace(m)));
    }
    out
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Calls `f(byte, quoted)` for each byte, `quoted` when it lies inside a
/// quoted string (its quotes included).
fn each_quoted(s: &[u8], mut f: impl FnMut(u8, bool)) {
    let (mut quoted, mut escaped) = (false, false);
    for &b in s {
        let inside = quoted;
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        }
        f(b, inside || b == b'"');
    }
}

/// Trims, and collapses runs of spaces and tabs outside quoted strings to
/// one space.
fn collapse_whitespace(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut pending_space = false;
    each_quoted(trim(s), |b, quoted| {
        if !quoted && is_ws(b) {
            pending_space = true;
            return;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        out.push(b);
    });
    out
}

/// Lower-cases outside quoted strings.
fn lower_case(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    each_quoted(s, |b, quoted| {
        out.push(if quoted { b } else { b.to_ascii_lowercase() })
    });
    out
}

/// `Accept-Language` or `Accept-Charset` member: a language range or
/// charset with an optional weight, all case-insensitive (RFC 9110 §12.5.4,
/// §12.5.2, §12.4.2), whitespace around `;` dropped.
fn weighted(member: &[u8]) -> Vec<u8> {
    lower_case(&parameters(member).join(&b";"[..]))
}

/// Splits at `;` outside quoted strings, trimming each part.
fn parameters(s: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    each_quoted(s, |b, quoted| {
        if b == b';' && !quoted {
            parts.push(trim(&s[start..i]));
            start = i + 1;
        }
        i += 1;
    });
    parts.push(trim(&s[start..]));
    parts
}

/// `Accept` member: the media range and parameter names lower-cased
/// (case-insensitive, RFC 9110 §8.3.1), parameter values as sent,
/// whitespace around `;` dropped.
fn media_range(member: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(member.len());
    for (i, part) in parameters(member).into_iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        match part.iter().position(|&b| b == b'=') {
            Some(eq) if i > 0 => {
                out.extend(part[..eq].iter().map(u8::to_ascii_lowercase));
                out.extend_from_slice(&part[eq..]);
            }
            _ => out.extend(part.iter().map(u8::to_ascii_lowercase)),
        }
    }
    out
}

/// Whether a `qvalue` (RFC 9110 §12.4.2) is zero; None when it is not one.
fn qvalue_is_zero(v: &[u8]) -> Option<bool> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match int {
        b"0" => Some(frac.iter().all(|&b| b == b'0')),
        b"1" if frac.iter().all(|&b| b == b'0') => Some(false),
        _ => None,
    }
}

/// Whether each of `codings` (lower case) is acceptable to a request with
/// these `Accept-Encoding` lines: the function `accept_encoding` writes
/// out, read without allocating for the codings a server can send (never
/// `identity` or `*`). None when a member does not parse, as there.
pub fn codings_accepted<'a, const N: usize>(
    lines: impl Iterator<Item = &'a [u8]>,
    codings: [&str; N],
) -> Option<[bool; N]> {
    let mut listed: [Option<bool>; N] = [None; N];
    let mut star = None;
    for member in lines.flat_map(list_elements) {
        let (coding, acceptable) = coding_member(member)?;
        let coding = match coding {
            c if c.eq_ignore_ascii_case(b"x-gzip") => &b"gzip"[..],
            c if c.eq_ignore_ascii_case(b"x-compress") => &b"compress"[..],
            c => c,
        };
        if coding == b"*" {
            star = star.or(Some(acceptable));
        }
        for (name, verdict) in codings.iter().zip(listed.iter_mut()) {
            if coding.eq_ignore_ascii_case(name.as_bytes()) {
                *verdict = verdict.or(Some(acceptable));
            }
        }
    }
    // Under an acceptable `*` only an explicit q=0 excludes; otherwise
    // only a listing with a weight above zero admits.
    Some(listed.map(|verdict| match star {
        Some(true) => verdict != Some(false),
        _ => verdict == Some(true),
    }))
}

/// One `Accept-Encoding` member: its coding (a token, or `*`) and whether
/// its weight is above zero. None unless it is a coding with at most a `q`
/// parameter.
fn coding_member(member: &[u8]) -> Option<(&[u8], bool)> {
    let mut cuts = [member.len(); 2];
    let mut found = 0;
    let mut i = 0;
    each_quoted(member, |b, quoted| {
        if b == b';' && !quoted {
            if found < cuts.len() {
                cuts[found] = i;
            }
            found += 1;
        }
        i += 1;
    });
    let coding = trim(&member[..cuts[0]]);
    if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    match found {
        0 => Some((coding, true)),
        1 => {
            let weight = trim(&member[cuts[0] + 1..]);
            let q = weight
                .strip_prefix(b"q=")
                .or_else(|| weight.strip_prefix(b"Q="))?;
            Some((coding, !qvalue_is_zero(q)?))
        }
        _ => None,
    }
}

/// The canonical form of `Accept-Encoding` (RFC 9110 §12.5.3), or None if
/// a member does not parse (`coding` or `*`, with at most a `q` weight).
///
/// Codings are lower-cased and `x-gzip`/`x-compress` read as `gzip`/
/// `compress` (§8.4.1). A coding listed twice counts as first listed. The
/// field says, for every coding, whether it is acceptable: a listed coding
/// by its weight (q=0: not acceptable), an unlisted one by `*` if listed,
/// else not — except `identity`, acceptable unless excluded by
/// `identity;q=0`, or by `*;q=0` without an entry of its own. The form
/// written is that function, as a sorted, comma-joined set:
///
/// - with an acceptable `*`: `*` and `c;q=0` for each excluded coding;
/// - otherwise: each acceptable coding (weights dropped), and
///   `identity;q=0` when identity is excluded.
///
/// So `gzip, br` = `BR;q=0.5, gzip` = `br,gzip`; `gzip, deflate;q=0` =
/// `gzip` (an unlisted coding is not acceptable either); the empty value =
/// `identity` = `` (identity only). A q=0 member is kept where dropping it
/// would change the answer: `identity;q=0`, and exclusions under `*`. Two
/// values with one form accept exactly the same codings, so whatever the
/// origin chose for one is acceptable to the other: only the order of
/// preference among acceptable codings is not kept, which the origin may
/// anyway weigh against its own.
pub fn accept_encoding(lines: &[&[u8]]) -> Option<Vec<u8>> {
    let mut listed: Vec<(Vec<u8>, bool)> = Vec::new();
    for member in lines.iter().flat_map(|l| list_elements(l)) {
        let parts = parameters(member);
        let coding = parts[0].to_ascii_lowercase();
        if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        let acceptable = match &parts[1..] {
            [] => true,
            [weight] => {
                let q = weight
                    .strip_prefix(b"q=")
                    .or_else(|| weight.strip_prefix(b"Q="))?;
                !qvalue_is_zero(q)?
            }
            _ => return None,
        };
        let coding = match coding.as_slice() {
            b"x-gzip" => b"gzip".to_vec(),
            b"x-compress" => b"compress".to_vec(),
            _ => coding,
        };
        if !listed.iter().any(|(c, _)| *c == coding) {
            listed.push((coding, acceptable));
        }
    }
    let of = |name: &[u8]| listed.iter().find(|(c, _)| c == name).map(|(_, ok)| *ok);
    let star = of(b"*");
    let mut set: Vec<Vec<u8>> = Vec::new();
    if star == Some(true) {
        set.push(b"*".to_vec());
        for (c, ok) in &listed {
            if !ok {
                set.push([c.as_slice(), b";q=0"].concat());
            }
        }
    } else {
        for (c, ok) in &listed {
            if *ok && c != b"*" && c != b"identity" {
                set.push(c.clone());
            }
        }
        let identity = of(b"identity").unwrap_or(star.is_none());
        if !identity {
            set.push(b"identity;q=0".to_vec());
        }
    }
    set.sort_unstable();
    Some(set.join(&b","[..]))
}

#[cfg(test)]
#[path = "vary_tests.rs"]
mod tests;
