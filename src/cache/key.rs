//! Cache keys: which request maps to which stored object, and which shard owns
//! it. A key is scheme, host, port and normalised path plus whatever else the
//! key policy names; its 64-bit hash picks the owner shard (top bits) and the
//! index bucket and tag (low bits), so the two choices stay independent.

use xxhash_rust::xxh3::xxh3_64;

/// What, beyond scheme/host/port/path, goes into a key. Behaviours (a later
/// issue) will carry one of these each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    pub include_query: bool,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            include_query: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    text: String,
    hash: u64,
}

impl CacheKey {
    /// `authority` is the request's host[:port] (already lower-cased by the
    /// codec); `target` is the origin-form target.
    pub fn new(scheme: &str, authority: &str, target: &str, policy: &KeyPolicy) -> CacheKey {
        let (host, port) = split_authority(authority, scheme);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let mut text = String::with_capacity(scheme.len() + authority.len() + target.len() + 8);
        text.push_str(scheme);
        text.push_str("://");
        text.push_str(&host.to_ascii_lowercase());
        text.push(':');
        text.push_str(&port.to_string());
        text.push_str(&normalise_path(path));
        if policy.include_query
            && let Some(q) = query
        {
            text.push('?');
            text.push_str(q);
        }
        CacheKey::from_text(text)
    }

    pub fn from_text(text: String) -> CacheKey {
        let hash = xxh3_64(text.as_bytes());
        CacheKey { text, hash }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The shard that owns this key among `shards`.
    pub fn owner(&self, shards: usize) -> usize {
        owner_of(self.hash, shards)
    }
}

/// Multiply-shift range reduction on the top 32 bits: uniform, and leaves the
/// low bits (index bucket) uncorrelated with the shard.
pub fn owner_of(hash: u64, shards: usize) -> usize {
    (((hash >> 32) * shards as u64) >> 32) as usize
}

fn split_authority<'a>(authority: &'a str, scheme: &str) -> (&'a str, u16) {
    let default = if scheme == "https" { 443 } else { 80 };
    // "[v6]:port", "host:port", "host"
    if let Some(rest) = authority.strip_prefix('[')
        && let Some((h, p)) = rest.split_once(']')
    {
        let port = p
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default);
        return (h, port);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().unwrap_or(default)),
        _ => (authority, default),
    }
}

/// Removes "." and ".." segments (RFC 3986 5.2.4) and decodes percent-encoded
/// unreserved characters, so equivalent paths share one object. Never climbs
/// above the root.
pub fn normalise_path(path: &str) -> String {
    let decoded = decode_unreserved(if path.is_empty() { "/" } else { path });
    let mut out: Vec<&str> = Vec::new();
    let trailing_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for seg in decoded.split('/').skip(1) {
        match seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    // "/a/" splits into ["a", ""]: the empty tail already encodes the slash.
    if trailing_slash && out.last().is_some_and(|s| !s.is_empty()) {
        out.push("");
    }
    let mut s = String::with_capacity(decoded.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                    out.push(c);
                } else {
                    // Keep reserved escapes, in one canonical (upper) case.
                    out.extend_from_slice(format!("%{c:02X}").as_bytes());
                }
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(auth: &str, target: &str) -> String {
        CacheKey::new("http", auth, target, &KeyPolicy::default())
            .as_str()
            .to_string()
    }

    #[test]
    fn equivalent_requests_share_a_key() {
        assert_eq!(
            key("Example.com", "/a/b"),
            key("example.com:80", "/a/./c/../b")
        );
        assert_eq!(key("example.com", "/%7Euser"), key("example.com", "/~user"));
        assert_eq!(key("example.com", "/a%2fb"), key("example.com", "/a%2Fb"));
        assert_ne!(key("example.com", "/a%2Fb"), key("example.com", "/a/b"));
        assert_eq!(key("example.com", "/x?q=1"), "http://example.com:80/x?q=1");
        assert_eq!(key("[::1]:8080", "/"), "http://::1:8080/");
    }

    #[test]
    fn dot_segments_never_climb_above_root() {
        assert_eq!(normalise_path("/../../etc"), "/etc");
        assert_eq!(normalise_path("/a/b/.."), "/a/");
        assert_eq!(normalise_path("/a/"), "/a/");
        assert_eq!(normalise_path(""), "/");
        assert_eq!(normalise_path("/"), "/");
    }

    #[test]
    fn query_can_be_left_out() {
        let p = KeyPolicy {
            include_query: false,
        };
        let a = CacheKey::new("http", "h", "/x?a=1", &p);
        let b = CacheKey::new("http", "h", "/x?a=2", &p);
        assert_eq!(a, b);
    }

    #[test]
    fn owners_spread_over_shards() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let k = CacheKey::from_text(format!("http://h:80/obj{i}"));
            counts[k.owner(4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
