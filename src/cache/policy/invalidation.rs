//! Invalidation after unsafe requests (RFC 9111 §4.4): which URIs a
//! non-error response to an unsafe method invalidates — the target URI,
//! and the `Location` and `Content-Location` URIs when they share its
//! origin. Relative references are resolved against the target URI (RFC
//! 3986 §5.2). It returns URIs; the caller maps them to cache keys. It never
//! names a URI of another origin (§4.4: that would let one site purge
//! another's objects).

use crate::http::{Headers, Method};

/// An absolute `http`/`https` URI, split as cache keys take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUri {
    /// `http` or `https`, lower-case.
    pub scheme: String,
    /// host[:port] as written.
    pub authority: String,
    /// Origin-form: absolute path and optional query.
    pub target: String,
}

impl TargetUri {
    pub fn new(scheme: &str, authority: &str, target: &str) -> TargetUri {
        TargetUri {
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.to_string(),
            target: target.to_string(),
        }
    }

    /// The origin (RFC 9110 §4.3.1): scheme, lower-cased host, port (the
    /// scheme's default when absent). `None` for an authority with userinfo
    /// or a bad port.
    fn origin(&self) -> Option<(String, String, u16)> {
        let authority = self.authority.as_str();
        if authority.contains('@') || authority.is_empty() {
            return None;
        }
        let default = if self.scheme == "https" { 443 } else { 80 };
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => (&authority[..i], &authority[i + 1..]),
            _ => (authority, ""),
        };
        let port = match port {
            "" => default,
            p => p.parse().ok()?,
        };
        Some((self.scheme.clone(), host.to_ascii_lowercase(), port))
    }

    fn same_resource(&self, other: &TargetUri) -> bool {
        self.origin() == other.origin() && self.target == other.target
    }
}

/// Safe methods (RFC 9110 §9.2.1); every other method, including unknown
/// ones, may change state.
pub fn is_safe(method: &Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Options | Method::Trace
    )
}

/// The URIs to invalidate after `method` on `target` got `status` with
/// these response fields (RFC 9111 §4.4). Empty for safe methods and for
/// error statuses (only 2xx and 3xx are "non-error").
pub fn invalidation_targets(
    method: &Method,
    target: &TargetUri,
    status: u16,
    response: &Headers,
) -> Vec<TargetUri> {
    if is_safe(method) || !(200..400).contains(&status) {
        return Vec::new();
    }
    let mut out = vec![target.clone()];
    let Some(own_origin) = target.origin() else {
        return out;
    };
    for name in ["location", "content-location"] {
        let Some(reference) = response.get_str(name) else {
            continue;
        };
        if let Some(uri) = resolve(target, reference)
            && uri.origin().as_ref() == Some(&own_origin)
            && !out.iter().any(|u| u.same_resource(&uri))
        {
            out.push(uri);
        }
    }
    out
}

/// The parts of a URI reference (RFC 3986 §4.1), fragment dropped.
struct Reference<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

fn parse_reference(s: &str) -> Option<Reference<'_>> {
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let s = s.split('#').next().unwrap_or("");
    let (scheme, rest) = match s.find(':') {
        Some(i)
            if s[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && !s[..i].contains(['/', '?']) =>
        {
            (Some(&s[..i]), &s[i + 1..])
        }
        _ => (None, s),
    };
    let (authority, rest) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?']).unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    Some(Reference {
        scheme,
        authority,
        path,
        query,
    })
}

/// RFC 3986 §5.2.2: the target URI of `reference` against `base`. Only
/// `http`/`https` results with an authority are returned.
fn resolve(base: &TargetUri, reference: &str) -> Option<TargetUri> {
    let r = parse_reference(reference)?;
    let (base_path, base_query) = match base.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base.target.as_str(), None),
    };
    let (scheme, authority, path, query) = if let Some(scheme) = r.scheme {
        (
            scheme.to_ascii_lowercase(),
            r.authority?.to_string(),
            remove_dot_segments(r.path),
            r.query,
        )
    } else if let Some(authority) = r.authority {
        (
            base.scheme.clone(),
            authority.to_string(),
            remove_dot_segments(r.path),
            r.query,
        )
    } else if r.path.is_empty() {
        let query = r.query.or(base_query);
        (
            base.scheme.clone(),
            base.authority.clone(),
            base_path.to_string(),
            query,
        )
    } else if r.path.starts_with('/') {
        (
            base.scheme.clone(),
            base.authority.clone(),
            remove_dot_segments(r.path),
            r.query,
        )
    } else {
        // §5.2.3: merge with the base path's directory.
        let dir = match base_path.rfind('/') {
            Some(i) => &base_path[..=i],
            None => "/",
        };
        let merged = format!("{dir}{}", r.path);
        (
            base.scheme.clone(),
            base.authority.clone(),
            remove_dot_segments(&merged),
            r.query,
        )
    };
    if !matches!(scheme.as_str(), "http" | "https") || authority.is_empty() {
        return None;
    }
    let mut target = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    Some(TargetUri::new(&scheme, &authority, &target))
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output: Vec<&str> = Vec::new();
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/" } else { &input[3..] };
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    output.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(target: &str) -> TargetUri {
        TargetUri::new("http", "example.com", target)
    }

    fn targets(method: Method, status: u16, fields: &[(&str, &str)]) -> Vec<String> {
        let mut h = Headers::new();
        for (n, v) in fields {
            h.push(n, *v);
        }
        invalidation_targets(&method, &uri("/a/b?x=1"), status, &h)
            .into_iter()
            .map(|u| format!("{}://{}{}", u.scheme, u.authority, u.target))
            .collect()
    }

    // RFC 9111 §4.4: an unsafe method with a non-error status invalidates
    // the target URI; safe methods and error statuses do not.
    #[test]
    fn target_uri_after_unsafe_success() {
        assert_eq!(
            targets(Method::Post, 200, &[]),
            ["http://example.com/a/b?x=1"]
        );
        assert_eq!(targets(Method::Delete, 302, &[]).len(), 1);
        // "including methods whose safety is unknown"
        assert_eq!(targets(Method::Other("PURGEX".into()), 204, &[]).len(), 1);
        for safe in [Method::Get, Method::Head, Method::Options, Method::Trace] {
            assert!(targets(safe, 200, &[]).is_empty());
        }
        assert!(targets(Method::Put, 404, &[]).is_empty());
        assert!(targets(Method::Put, 500, &[]).is_empty());
        assert!(targets(Method::Put, 101, &[]).is_empty());
    }

    // RFC 9111 §4.4: Location and Content-Location, resolved, only when
    // they share the target's origin.
    #[test]
    fn location_and_content_location_same_origin_only() {
        let got = targets(
            Method::Post,
            201,
            &[("Location", "/items/7"), ("Content-Location", "c?y=2")],
        );
        assert_eq!(
            got,
            [
                "http://example.com/a/b?x=1",
                "http://example.com/items/7",
                "http://example.com/a/c?y=2",
            ]
        );
        let got = targets(
            Method::Put,
            200,
            &[
                ("Location", "http://other.example/x"),
                ("Content-Location", "https://example.com/x"),
            ],
        );
        assert_eq!(got, ["http://example.com/a/b?x=1"]);
        // Same origin written differently (case, default port) counts.
        let got = targets(
            Method::Put,
            200,
            &[("Location", "HTTP://EXAMPLE.com:80/z#frag")],
        );
        assert_eq!(got[1], "http://EXAMPLE.com:80/z");
        // The target itself is not listed twice; junk is skipped.
        let got = targets(
            Method::Put,
            200,
            &[("Location", "/a/b?x=1"), ("Content-Location", "not a uri")],
        );
        assert_eq!(got.len(), 1);
        let got = targets(Method::Put, 200, &[("Location", "mailto:a@example.com")]);
        assert_eq!(got.len(), 1);
        let got = targets(Method::Put, 200, &[("Location", "//user@example.com/x")]);
        assert_eq!(got.len(), 1);
    }

    // RFC 3986 §5.4.1: normal reference resolution examples (base
    // http://a/b/c/d;p?q).
    #[test]
    fn reference_resolution() {
        let base = TargetUri::new("http", "a", "/b/c/d;p?q");
        let cases = [
            ("g", "/b/c/g"),
            ("./g", "/b/c/g"),
            ("g/", "/b/c/g/"),
            ("/g", "/g"),
            ("?y", "/b/c/d;p?y"),
            ("g?y", "/b/c/g?y"),
            ("", "/b/c/d;p?q"),
            (".", "/b/c/"),
            ("./", "/b/c/"),
            ("..", "/b/"),
            ("../g", "/b/g"),
            ("../..", "/"),
            ("../../g", "/g"),
            ("../../../g", "/g"),
            ("/./g", "/g"),
            ("g.", "/b/c/g."),
            ("./../g", "/b/g"),
            ("g;x=1/../y", "/b/c/y"),
        ];
        for (reference, want) in cases {
            let got = resolve(&base, reference).map(|u| u.target);
            assert_eq!(got.as_deref(), Some(want), "{reference:?}");
        }
        let other = resolve(&base, "//g/x").expect("network-path reference");
        assert_eq!(
            (other.authority.as_str(), other.target.as_str()),
            ("g", "/x")
        );
    }
}
