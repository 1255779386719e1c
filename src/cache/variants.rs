//! Which stored entry a cacheable request is after, across its URL's `Vary`
//! variants (the rules are `cache::vary`'s): a [`Selecting`] starts at the
//! URL's key; a lookup that finds a Vary marker there moves it to the
//! variant the request's fields select and looks that up (one more owner
//! round trip, only for URLs whose responses vary). It carries the marker it
//! learnt to the fill, which stores the response under the right key and
//! writes the marker when needed, and it decides whether a miss may follow
//! another request's fetch of the URL (only of the same variant). Objects
//! without `Vary` are looked up, coalesced and filled exactly as before.
//! Never serves an entry itself: it finds entries and plans fills.

use super::index::Location;
use super::key::CacheKey;
use super::owner::{OwnerRouter, StoredEntry};
use super::policy::{Freshness, NotStored, from_unix_millis};
use super::store::inflight::FollowInfo;
use super::store::{Lookup, SegmentId, VariantMeta};
use super::vary::{self, FillKey, KnownMarker, Marker, MarkerSource, Variant};
use crate::http::Headers;
use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// The key a cacheable request is after and what it knows of its URL's
/// marker.
#[derive(Clone, Debug)]
pub struct Selecting {
    url: CacheKey,
    /// The variant's key, once a marker named one (the URL's key until
    /// then: no copy on the path of objects without Vary).
    variant_key: Option<CacheKey>,
    known: Option<KnownMarker>,
}

/// What a lookup found under the key a request is after.
pub enum Found {
    /// A verified entry (the URL's own object, or the selected variant).
    Entry {
        entry: StoredEntry,
        /// Where the index pointed.
        loc: Location,
        /// Segments not yet on the device at the time of the lookup.
        buffered: Vec<SegmentId>,
    },
    /// Nothing readable; `seen` is where the index pointed, if anywhere.
    Missing { seen: Option<Location> },
}

/// Where a fill is stored.
pub struct FillTarget {
    pub key: CacheKey,
    /// Set when the response is a variant.
    pub variant: Option<VariantMeta>,
}

impl Selecting {
    pub fn new(url: CacheKey) -> Selecting {
        Selecting {
            url,
            variant_key: None,
            known: None,
        }
    }

    /// The URL's own key.
    pub fn url(&self) -> &CacheKey {
        &self.url
    }

    /// The key to look up, coalesce on and read from: the URL's, or the
    /// variant's once a marker named one.
    pub fn key(&self) -> &CacheKey {
        self.variant_key.as_ref().unwrap_or(&self.url)
    }

    /// Whether the URL is known to vary: the request is after a variant.
    pub fn is_variant(&self) -> bool {
        self.known.is_some()
    }

    /// Looks the request's key up; when the URL's key holds a Vary marker,
    /// looks up the variant `request` selects instead.
    pub async fn find(&mut self, cache: &OwnerRouter, request: &Headers) -> Found {
        let found = read(cache, self.key()).await;
        let Found::Entry { entry, loc, .. } = &found else {
            return found;
        };
        let Some(marker) = Marker::decode(entry.head()) else {
            return found;
        };
        if self.variant_key.is_some() {
            // Markers are written under URL keys only; anything else here
            // is not servable.
            return Found::Missing { seen: Some(*loc) };
        }
        let fresh = Freshness {
            born: from_unix_millis(entry.header.born_ms),
            expires: from_unix_millis(entry.header.expires_ms),
        }
        .is_fresh(SystemTime::now());
        let source = match fresh {
            true => MarkerSource::StoredFresh,
            false => MarkerSource::StoredStale,
        };
        let seen = Some(*loc);
        let variant = Variant::of(marker.clone(), request);
        self.known = Some(KnownMarker { marker, source });
        let Some(key) = variant.key(&self.url) else {
            // Too long to key: fetched, and not stored.
            return Found::Missing { seen };
        };
        let found = read(cache, &key).await;
        self.variant_key = Some(key);
        match found {
            Found::Entry { entry, loc, .. } if Marker::decode(entry.head()).is_some() => {
                Found::Missing { seen: Some(loc) }
            }
            found => found,
        }
    }

    /// Whether this request may be answered from the fill another request
    /// leads for the key: yes when that response does not vary or when this
    /// request selects the same variant (RFC 9111 §4.1). Otherwise the
    /// request is now after its own variant under the leader's marker, to be
    /// looked up (and coalesced on) next.
    pub fn accepts(&mut self, info: &FollowInfo, request: &Headers) -> bool {
        let Some(leader) = &info.variant else {
            return true;
        };
        if leader.selected_by(request) {
            return true;
        }
        let mine = Variant::of(leader.marker.clone(), request);
        if let Some(key) = mine.key(&self.url) {
            self.variant_key = Some(key);
            let known_already = self
                .known
                .as_ref()
                .is_some_and(|k| k.marker == leader.marker);
            if !known_already {
                self.known = Some(KnownMarker {
                    marker: leader.marker.clone(),
                    source: MarkerSource::Leader,
                });
            }
        }
        false
    }

    /// Where a response to `request` is stored, given what this request
    /// knows of its URL's marker (see `vary::plan_fill`).
    pub fn plan_fill(
        &self,
        response: &Headers,
        request: &Headers,
    ) -> Result<FillTarget, NotStored> {
        let plan = vary::plan_fill(
            &self.url,
            self.known.as_ref(),
            response,
            request,
            new_epoch(self.url.hash()),
        )?;
        Ok(match plan {
            FillKey::Url => FillTarget {
                key: self.url.clone(),
                variant: None,
            },
            FillKey::Variant(f) => FillTarget {
                key: f.key,
                variant: Some(VariantMeta {
                    url_key: self.url.as_str().to_string(),
                    url_hash: self.url.hash(),
                    variant: f.variant,
                    write_marker: f.write_marker,
                }),
            },
        })
    }
}

/// Looks `key` up at its owner and reads the entry.
async fn read(cache: &OwnerRouter, key: &CacheKey) -> Found {
    let Lookup::Found {
        loc,
        seq,
        bytes,
        buffered,
    } = cache.lookup(key).await
    else {
        return Found::Missing { seen: None };
    };
    match cache.read_entry(key, loc, seq, bytes, &buffered).await {
        Ok(entry) => Found::Entry {
            entry,
            loc,
            buffered,
        },
        Err(_) => Found::Missing { seen: Some(loc) },
    }
}

thread_local! {
    static EPOCHS: Cell<u64> = const { Cell::new(0) };
}

/// An epoch for a new marker: different from any earlier marker of the URL
/// (the time in nanoseconds and a per-thread count, mixed with the URL's
/// hash so that shards starting together do not agree).
fn new_epoch(url_hash: u64) -> u64 {
    let n = EPOCHS.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&nanos.to_le_bytes());
    bytes[8..16].copy_from_slice(&n.to_le_bytes());
    bytes[16..].copy_from_slice(&url_hash.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::store::FillId;
    use crate::cache::vary::VaryField;

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in fields {
            h.push(n, v.as_bytes());
        }
        h
    }

    fn leader(variant: Option<Variant>) -> FollowInfo {
        FollowInfo {
            fill: FillId { from: 0, n: 1 },
            hash: 1,
            variant,
            head: Vec::new(),
            declared_len: None,
            born_ms: 0,
            expires_ms: 0,
            late: false,
        }
    }

    fn marker(vary: &str, epoch: u64) -> Marker {
        let VaryField::Names(names) = VaryField::of(&headers(&[("Vary", vary)])) else {
            panic!("{vary}");
        };
        Marker { names, epoch }
    }

    fn url() -> CacheKey {
        CacheKey::from_text("http://h:80/x".into())
    }

    // RFC 9111 §4.1: a stored (or arriving) response answers a request only
    // if the request selects it.
    #[test]
    fn a_miss_follows_only_a_leader_of_its_own_variant() {
        let gzip = headers(&[("Accept-Encoding", "gzip")]);
        let mut s = Selecting::new(url());
        assert!(
            s.accepts(&leader(None), &gzip),
            "a response that does not vary"
        );
        let led = Variant::of(marker("Accept-Encoding", 4), &gzip);
        let same = headers(&[("accept-encoding", " GZIP ;q=0.9")]);
        assert!(s.accepts(&leader(Some(led.clone())), &same));
        assert_eq!(s.key(), &url());
        assert!(!s.is_variant());

        let br = headers(&[("Accept-Encoding", "br")]);
        assert!(!s.accepts(&leader(Some(led.clone())), &br));
        // Now after its own variant, under the leader's marker.
        assert!(s.is_variant());
        let own = Variant::of(marker("Accept-Encoding", 4), &br);
        assert_eq!(Some(s.key().clone()), own.key(&url()));
        assert_eq!(s.key().owner(5), url().owner(5));
        // Its fill goes there, and writes the marker the leader may not
        // have written yet.
        let varies = headers(&[("Vary", "accept-encoding")]);
        let target = s.plan_fill(&varies, &br).expect("stored");
        assert_eq!(&target.key, s.key());
        let v = target.variant.expect("a variant");
        assert!(v.write_marker);
        assert_eq!(v.variant.marker.epoch, 4);
        assert_eq!(
            (v.url_key.as_str(), v.url_hash),
            (url().as_str(), url().hash())
        );
    }

    #[test]
    fn a_response_that_stopped_varying_is_stored_under_the_url() {
        let br = headers(&[("Accept-Encoding", "br")]);
        let mut s = Selecting::new(url());
        let led = Variant::of(marker("Accept-Encoding", 4), &headers(&[]));
        assert!(!s.accepts(&leader(Some(led)), &br));
        let target = s.plan_fill(&headers(&[]), &br).expect("stored");
        assert_eq!(target.key, url());
        assert!(target.variant.is_none());
        assert_eq!(
            s.plan_fill(&headers(&[("Vary", "*")]), &br).err(),
            Some(NotStored::Vary)
        );
    }
}
