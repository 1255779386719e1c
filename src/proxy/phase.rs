//! The cache phase of a request: one enum that the pipeline moves through and
//! that the `Cache-Status` header (RFC 9211), the access log and the metrics
//! all read from, so they can never disagree.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePhase {
    /// Not looked up yet (or the request was refused before routing).
    Start,
    /// Served from the cache.
    Hit,
    /// Not in the cache: fetched from the origin.
    Miss,
    /// In the cache but no longer fresh: fetched again.
    Stale,
    /// The method is never cached (PUT, POST, …): passed to the origin.
    PassMethod,
    /// A cacheable method whose request cannot use the cache (a body, …).
    PassRequest,
}

impl CachePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            CachePhase::Start => "start",
            CachePhase::Hit => "hit",
            CachePhase::Miss => "miss",
            CachePhase::Stale => "stale",
            CachePhase::PassMethod => "pass",
            CachePhase::PassRequest => "pass",
        }
    }

    /// The RFC 9211 `fwd` reason for phases that went forward.
    fn fwd(self) -> Option<&'static str> {
        match self {
            CachePhase::Miss => Some("uri-miss"),
            CachePhase::Stale => Some("stale"),
            CachePhase::PassMethod => Some("method"),
            CachePhase::PassRequest => Some("request"),
            CachePhase::Start | CachePhase::Hit => None,
        }
    }
}

/// One `Cache-Status` list member for this node.
pub struct CacheStatus<'a> {
    pub phase: CachePhase,
    pub stored: bool,
    pub ttl: Option<i64>,
    pub fwd_status: Option<u16>,
    pub detail: Option<&'a str>,
}

impl CacheStatus<'_> {
    pub fn render(&self, node: &str) -> String {
        let mut s = String::from(node);
        match self.phase {
            CachePhase::Hit => s.push_str("; hit"),
            p => {
                if let Some(fwd) = p.fwd() {
                    let _ = write!(s, "; fwd={fwd}");
                }
            }
        }
        if self.stored {
            s.push_str("; stored");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(s, "; ttl={ttl}");
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={st}");
        }
        if let Some(d) = self.detail {
            let _ = write!(s, "; detail={d}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9211_members() {
        let hit = CacheStatus {
            phase: CachePhase::Hit,
            stored: false,
            ttl: Some(42),
            fwd_status: None,
            detail: None,
        };
        assert_eq!(hit.render("edgeslab"), "edgeslab; hit; ttl=42");
        let miss = CacheStatus {
            phase: CachePhase::Miss,
            stored: true,
            ttl: None,
            fwd_status: Some(200),
            detail: None,
        };
        assert_eq!(
            miss.render("edgeslab"),
            "edgeslab; fwd=uri-miss; stored; fwd-status=200"
        );
        let pass = CacheStatus {
            phase: CachePhase::PassMethod,
            stored: false,
            ttl: None,
            fwd_status: None,
            detail: Some("no-store"),
        };
        assert_eq!(
            pass.render("edgeslab"),
            "edgeslab; fwd=method; detail=no-store"
        );
    }
}
