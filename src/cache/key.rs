//! Cache keys: which request maps to which stored object, and which shard owns
//! it. A key is scheme, authority and target plus whatever else the key
//! policy names, all in the normal form the codec gave the request
//! (`http::target`) — the very target that is forwarded upstream, so the key
//! never names a path other than the one the origin answered for. Its 64-bit
//! hash picks the owner shard (top bits) and the index bucket and tag (low
//! bits), so the two choices stay independent.
//!
//! A variant key (one stored response among several for a URL whose
//! responses carry `Vary`, see `cache::vary`) extends its URL's key with a
//! suffix: it has a hash of its own (its own index entry, verified against
//! its own text) but is routed by its URL's hash, so a URL and all its
//! variants have one owner shard, where their coalescing is decided.

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
    /// The hash that picks the owner shard: `hash` itself, or for a variant
    /// key its URL's.
    route: u64,
}

/// The text's buffer is reused for a later key (`crate::spare`).
impl Drop for CacheKey {
    fn drop(&mut self) {
        crate::spare::give_string(std::mem::take(&mut self.text));
    }
}

impl CacheKey {
    /// `authority` and `target` as the codec normalised them (a request
    /// head's `authority` and `target`): the key adds no normalisation of
    /// its own, so that it describes exactly the request sent upstream. Its
    /// text names the port even when it is the scheme's default, as keys
    /// always have, so that the keys of objects already stored stay valid.
    pub fn new(scheme: &str, authority: &str, target: &str, policy: &KeyPolicy) -> CacheKey {
        let path = match target.split_once('?') {
            Some((path, _)) if !policy.include_query => path,
            _ => target,
        };
        let mut text = crate::spare::take_string(scheme.len() + authority.len() + path.len() + 9);
        push_origin(&mut text, scheme, authority);
        text.push_str(path);
        CacheKey::from_text(text)
    }

    pub fn from_text(text: String) -> CacheKey {
        let hash = xxh3_64(text.as_bytes());
        CacheKey {
            text,
            hash,
            route: hash,
        }
    }

    /// The key of one variant of this key's URL: this key's text followed by
    /// `suffix`, hashed on its own, owned by the same shard as this key.
    /// The suffix must make the text one no request's own key can have
    /// (`cache::vary` starts it with a space, which no target contains).
    pub fn variant(&self, suffix: &str) -> CacheKey {
        let mut text = String::with_capacity(self.text.len() + suffix.len());
        text.push_str(&self.text);
        text.push_str(suffix);
        let hash = xxh3_64(text.as_bytes());
        CacheKey {
            text,
            hash,
            route: self.route,
        }
    }

    /// Whether this is a variant key (see `variant`).
    pub fn is_variant(&self) -> bool {
        self.route != self.hash
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The shard that owns this key among `shards`: for a variant key, its
    /// URL's owner.
    pub fn owner(&self, shards: usize) -> usize {
        owner_of(self.route, shards)
    }
}

/// Appends a key's first part, `scheme://host:port`, the port written even
/// when it is the scheme's default.
pub fn push_origin(text: &mut String, scheme: &str, authority: &str) {
    let (host, port) = split_authority(authority, scheme);
    text.push_str(scheme);
    text.push_str("://");
    text.push_str(host);
    text.push(':');
    text.push_str(itoa::Buffer::new().format(port));
}

/// Multiply-shift range reduction on the top 32 bits: uniform, and leaves the
/// low bits (index bucket) uncorrelated with the shard.
pub fn owner_of(hash: u64, shards: usize) -> usize {
    (((hash >> 32) * shards as u64) >> 32) as usize
}

/// "[v6]:port", "[v6]", "host:port" or "host" (as the codec validated it).
fn split_authority<'a>(authority: &'a str, scheme: &str) -> (&'a str, u16) {
    let default = if scheme == "https" { 443 } else { 80 };
    if let Some(rest) = authority.strip_prefix('[')
        && let Some((h, p)) = rest.split_once(']')
    {
        let port = p.strip_prefix(':').and_then(|p| p.parse().ok());
        return (h, port.unwrap_or(default));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().unwrap_or(default)),
        _ => (authority, default),
    }
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
    fn the_key_is_the_normalised_request() {
        assert_eq!(key("example.com", "/x?q=1"), "http://example.com:80/x?q=1");
        assert_eq!(key("example.com:81", "/"), "http://example.com:81/");
        assert_eq!(key("[::1]:8080", "/"), "http://::1:8080/");
        assert_eq!(key("[::1]", "/"), "http://::1:80/");
        // The codec's normal form, not a second one: what is keyed is what
        // is forwarded.
        let head = crate::http::request::head_from(
            "GET /x/%2e%2e/%62?%7E HTTP/1.1\r\nHost: Example.COM:80\r\n\r\n",
        );
        let authority = head.authority.as_deref().expect("host");
        assert_eq!(key(authority, &head.target), "http://example.com:80/b?%7E");
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
    fn a_variant_has_its_own_hash_and_its_url_s_owner() {
        let url = CacheKey::from_text("http://h:80/x".into());
        assert!(!url.is_variant());
        let v = url.variant(" vary;a");
        assert_eq!(v.as_str(), "http://h:80/x vary;a");
        assert_ne!(v.hash(), url.hash());
        assert!(v.is_variant());
        for shards in 1..=64 {
            assert_eq!(v.owner(shards), url.owner(shards));
        }
        assert_ne!(v, url.variant(" vary;b"));
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
