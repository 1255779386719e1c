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
    key: CacheKey,
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
            key: url.clone(),
            url,
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
        &self.key
    }

    /// Whether the URL is known to vary: the request is after a variant.
    pub fn is_variant(&self) -> bool {
        self.known.is_some()
    }

    /// Looks the request's key up; when the URL's key holds a Vary marker,
    /// looks up the variant `request` selects instead.
    pub async fn find(&mut self, cache: &OwnerRouter, request: &Headers) -> Found {
        let found = read(cache, &self.key).await;
        let Found::Entry { entry, loc, .. } = &found else {
            return found;
        };
        let Some(marker) = Marker::decode(entry.head()) else {
            return found;
        };
        if self.key.is_variant() {
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
        self.key = key;
        match read(cache, &self.key).await {
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
            self.key = key;
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
