//! Invalidations as a ban list (Varnish's word): rules that say which stored
//! objects may no longer be served. The index is a hash table over key
//! texts, so "everything under `/images/`" or "everything tagged
//! `product-42`" cannot be enumerated and deleted; instead each invalidation
//! becomes a [`Ban`], and an entry a lookup finds is checked against the
//! [`BanList`] before it is served. A banned entry is the caller's miss: it
//! is fetched again and the new copy, born after the ban, is not banned.
//!
//! This module owns the whole invalidation core: the `POST /invalidations`
//! body ([`InvalidationRequest`], `request`), the tag fields of a stored head
//! ([`TagFields`], `tags`), matching ([`BanList::bans`]), the durable
//! [`Journal`] (`journal`) and the [`BanBoard`] that hands the current list
//! to the serving shards. Matching is pure, allocates nothing unless a tag
//! ban could apply, and never locks; the journal does plain blocking std
//! file I/O and so must only ever run on the admin path, never on a shard's
//! executor.
//!
//! The rules:
//! - A ban applies only to entries *born* (unix ms when their age was zero)
//!   strictly before its `at_ms`. The journal stamps a ban one millisecond
//!   after the clock reading it is applied at, so an entry fetched in that
//!   same millisecond, which might predate the ban, is banned too: one more
//!   fetch, never a stale serve. Both times come from this node's clock; a
//!   clock stepping back by `d` lets entries fetched in the `d` before the
//!   step escape bans applied in the `d` after it.
//! - Path rules match the key's target (path and query, after the
//!   authority), on every host this node caches: a ban names content, and
//!   whoever may ban may ban it everywhere. An exact rule matches the target
//!   byte for byte, query included; where the key policy leaves the query
//!   out, keys have none, so ban the bare path (or a prefix). A prefix rule
//!   matches every target that starts with it. Variant, range-part and
//!   key-extra suffixes (after the first space of the key text) are ignored,
//!   so a ban covers all of a URL's variants and parts.
//! - Tag rules match a token of the stored head's tag fields (by default
//!   `Surrogate-Key`, space-separated, and `Cache-Tag`, comma-separated),
//!   compared ASCII case-insensitively: origins disagree on case, and
//!   banning one object too many costs a fetch where one too few serves
//!   stale content.
//!
//! Retention: bans are kept for a configured `retain` time and then dropped,
//! but dropping one must not let the entries it banned be served again. So
//! the journal remembers the newest `at_ms` it ever dropped as a *floor*,
//! and every entry born before the floor counts as banned. The trade-off:
//! an entry older than `retain` that no dropped ban named is fetched again
//! once too (it is at least `retain` old by then, so few are, and the
//! refetch is a miss, not a wrong answer). The ids of dropped bans are
//! forgotten, so a peer that propagates one again after `retain` bans anew,
//! which again costs fetches, never correctness.
//!
//! How the admin path and a shard use it:
//!
//! ```
//! use edgeslab::cache::bans::*;
//! use std::time::Duration;
//!
//! let dir = std::env::temp_dir().join(format!("edgeslab-bans-doc-{}", std::process::id()));
//! let now_ms = 1_700_000_000_000;
//! let mut journal = Journal::open(dir.join("bans.jsonl"), Duration::from_secs(86_400), now_ms)?;
//! let mut shard = journal.board().reader();
//!
//! // Admin path: parse, record durably, then acknowledge.
//! let body = br#"{"paths": ["/images/*"], "tags": ["product-42"]}"#;
//! let request = InvalidationRequest::parse(body).expect("a good body");
//! let id = request.id_or_new(now_ms);
//! assert_eq!(journal.apply(&id, request.rules, now_ms)?, Applied::New);
//!
//! // Lookup path: an entry found is checked before it is served.
//! let fields = TagFields::default();
//! let head = b"HTTP/1.1 200 OK\r\nSurrogate-Key: product-42 sale\r\n\r\n";
//! let born_before = now_ms - 60_000;
//! let tags = || fields.of_stored_head(head);
//! assert!(shard.current().bans("http://shop:80/p/42", tags, born_before));
//! assert!(shard.current().bans("http://cdn:80/images/a.png vary;e=1", Vec::new, born_before));
//! assert!(!shard.current().bans("http://cdn:80/images/a.png", Vec::new, now_ms + 1));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod journal;
mod request;
mod tags;

pub use journal::{Applied, Journal, JournalError};
pub use request::{BadInvalidation, InvalidationRequest, MAX_ITEM_BYTES, MAX_ITEMS, new_id};
pub use tags::{TagField, TagFields, TagSeparator};

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// What one invalidation item names. Paths are in the normal form of
/// `http::target`, as keys are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A target (path and query) exactly.
    Exact(String),
    /// Every target starting with this (`/` is everything).
    Prefix(String),
    /// Every object whose head carries this tag.
    Tag(String),
}

/// One rule of one invalidation, in force for entries born before `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// The invalidation's id: all rules of one request share it.
    pub id: String,
    pub at_ms: u64,
    pub rule: Rule,
}

/// The bans in force, indexed for the lookup path: exact targets and tags
/// in hash maps holding the newest `at_ms` of each, prefixes newest first.
#[derive(Clone, Debug, Default)]
pub struct BanList {
    /// Sorted by `at_ms`: what was applied, for listing and persisting.
    bans: Vec<Ban>,
    floor_ms: u64,
    /// Nothing born at or after this is banned: the one comparison an
    /// entry newer than every ban costs.
    newest_ms: u64,
    exact: HashMap<String, u64>,
    /// (prefix, newest at_ms), newest first, so the scan stops at the
    /// first prefix older than the entry.
    prefixes: Vec<(String, u64)>,
    /// Lower-cased tag → newest at_ms.
    tags: HashMap<String, u64>,
    /// Tags are parsed from the head only for entries born before this.
    newest_tag_ms: u64,
}

impl BanList {
    /// `bans` in any order; `floor_ms` as the journal keeps it (0: none).
    pub fn new(mut bans: Vec<Ban>, floor_ms: u64) -> BanList {
        bans.sort_by_key(|b| b.at_ms);
        let mut exact = HashMap::new();
        let mut prefix_at: HashMap<&str, u64> = HashMap::new();
        let mut tags = HashMap::new();
        let mut newest_tag_ms = 0;
        for ban in &bans {
            // Sorted, so each insert leaves the newest at_ms in place.
            match &ban.rule {
                Rule::Exact(t) => {
                    exact.insert(t.clone(), ban.at_ms);
                }
                Rule::Prefix(p) => {
                    prefix_at.insert(p, ban.at_ms);
                }
                Rule::Tag(t) => {
                    tags.insert(t.to_ascii_lowercase(), ban.at_ms);
                    newest_tag_ms = ban.at_ms;
                }
            }
        }
        let mut prefixes: Vec<(String, u64)> = prefix_at
            .into_iter()
            .map(|(p, at)| (p.to_owned(), at))
            .collect();
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.1));
        let newest_ms = bans.last().map_or(0, |b| b.at_ms).max(floor_ms);
        BanList {
            bans,
            floor_ms,
            newest_ms,
            exact,
            prefixes,
            tags,
            newest_tag_ms,
        }
    }

    /// Whether the entry stored under `key_text`, born at `born_ms`, is
    /// banned. `head_tags` gives the tags of its stored head (see
    /// [`TagFields`]); it is called only when a tag ban newer than the
    /// entry exists.
    pub fn bans(
        &self,
        key_text: &str,
        head_tags: impl FnOnce() -> Vec<String>,
        born_ms: u64,
    ) -> bool {
        if born_ms >= self.newest_ms {
            return false;
        }
        if born_ms < self.floor_ms {
            return true;
        }
        if let Some(target) = key_target(key_text) {
            if self.exact.get(target).is_some_and(|&at| born_ms < at) {
                return true;
            }
            for (prefix, at) in &self.prefixes {
                if *at <= born_ms {
                    break;
                }
                if target.starts_with(prefix.as_str()) {
                    return true;
                }
            }
        }
        born_ms < self.newest_tag_ms
            && head_tags().iter().any(|tag| {
                self.tags
                    .get(&tag.to_ascii_lowercase())
                    .is_some_and(|&at| born_ms < at)
            })
    }

    /// The bans in force, oldest first.
    pub fn entries(&self) -> &[Ban] {
        &self.bans
    }

    /// Every entry born before this is banned (0: none).
    pub fn floor_ms(&self) -> u64 {
        self.floor_ms
    }

    /// Whether nothing at all is banned.
    pub fn is_empty(&self) -> bool {
        self.bans.is_empty() && self.floor_ms == 0
    }
}

/// The target (path and query) of a key text `scheme://authority/target`,
/// without the suffixes that follow it, each after a space (variants, range
/// parts, key extras); `None` when the text has no such target.
pub fn key_target(key_text: &str) -> Option<&str> {
    let (_, rest) = key_text.split_once("://")?;
    // The authority holds neither '/' nor ' ' (the codec validated it; an
    // IPv6 host is written without brackets but has only ':').
    let start = rest.find(['/', ' '])?;
    let target = &rest[start..];
    if !target.starts_with('/') {
        return None;
    }
    Some(target.split_once(' ').map_or(target, |(t, _)| t))
}

/// The current ban list, shared by the journal (the one writer) and every
/// serving shard. Bans arrive rarely and lookups are constant, so a shard
/// keeps a [`BanReader`] whose check is one atomic load of a generation
/// that changes only when a list is published: no lock, and no write to a
/// shared reference count on the lookup path (which `arc-swap`'s
/// `load_full` or an `Arc` clone per lookup would bounce between cores).
/// The lock is taken only to fetch a newly published list, by each reader
/// once per publish, so std's `RwLock` does and no dependency is needed.
#[derive(Clone, Debug, Default)]
pub struct BanBoard {
    inner: Arc<BoardInner>,
}

#[derive(Debug, Default)]
struct BoardInner {
    /// Bumped after each publish, with the lock held.
    generation: AtomicU64,
    list: RwLock<Arc<BanList>>,
}

impl BanBoard {
    pub fn new(list: BanList) -> BanBoard {
        BanBoard {
            inner: Arc::new(BoardInner {
                generation: AtomicU64::new(0),
                list: RwLock::new(Arc::new(list)),
            }),
        }
    }

    /// The current list (takes the read lock: for the admin path; shards
    /// use a [`BanReader`]).
    pub fn current(&self) -> Arc<BanList> {
        let list = self
            .inner
            .list
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&list)
    }

    /// Makes `list` the current one for every reader.
    pub fn publish(&self, list: BanList) {
        // Replacing an Arc cannot panic, so a poisoned lock still holds a
        // whole list.
        let mut slot = self
            .inner
            .list
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Arc::new(list);
        self.inner.generation.fetch_add(1, Ordering::Release);
    }

    /// A reader for one shard's lookup path.
    pub fn reader(&self) -> BanReader {
        let generation = self.inner.generation.load(Ordering::Acquire);
        BanReader {
            list: self.current(),
            generation,
            board: self.clone(),
        }
    }
}

/// One shard's view of a [`BanBoard`]: its own `Arc` of the current list,
/// refreshed when the board's generation moves.
#[derive(Debug)]
pub struct BanReader {
    board: BanBoard,
    generation: u64,
    list: Arc<BanList>,
}

impl BanReader {
    /// The current list: one atomic load when nothing was published since
    /// the last call.
    pub fn current(&mut self) -> &BanList {
        let generation = self.board.inner.generation.load(Ordering::Acquire);
        if generation != self.generation {
            // The list read here is at least as new as `generation`: it was
            // stored before the generation was bumped. If a newer one lands
            // in between, the next call sees a newer generation and reads
            // the list again, which is harmless.
            self.list = self.board.current();
            self.generation = generation;
        }
        &self.list
    }
}

#[cfg(test)]
#[path = "bans_tests.rs"]
mod tests;
