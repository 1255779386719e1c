//! Stored heads decoded once per shard. A hit needs its stored response's
//! head as fields (for the policy, the preconditions, the invalidation tags
//! and the head it sends) and the directives that govern reuse; both are
//! decoded from the entry the first time the shard serves it and kept here,
//! so later hits on the same stored copy neither parse the head nor its
//! `Cache-Control` again.
//!
//! A kept head is named by where its entry was written (the segment's slot
//! and sequence number, the offset in it) and by what its entry's header
//! says of it (its key's hash, its birth time, its head's length): bytes
//! once written there never change, so a kept head cannot disagree with
//! its entry. An entry replaced, invalidated or evicted is simply never asked
//! for again, and its head ages out. Bounded in count and bytes; a head
//! asked for again since it was kept gets a second chance before eviction
//! (CLOCK), so the hot set stays while one-off heads pass through.
//!
//! A head is kept from its second decode on, not its first: a doorkeeper
//! (a table of fingerprints of heads decoded once) lets it in. In a long
//! tail of objects hit once in a while, every hit decoded a new head, kept
//! it and evicted another that would never be asked for again: a third of
//! the decode's cost, for nothing.

use crate::cache::policy::{Controls, Downstream, fields_to_strip};
use crate::http::ResponseHead;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Where a stored copy was written: what names its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryId {
    pub key_hash: u64,
    pub seq: u64,
    pub slot: u32,
    pub offset: u32,
    pub born_ms: u64,
    pub head_len: u32,
}

/// A stored head as a hit uses it.
pub struct Decoded {
    pub head: ResponseHead,
    /// The directives governing this cache's reuse of it.
    pub controls: Controls,
    /// What a plain hit sends before its own fields, encoded once: the
    /// status line and the stored fields less those a hit writes itself
    /// (see `hit_prefix`). None when the head cannot be sent that way.
    pub hit_prefix: Option<Vec<u8>>,
    /// Whether the head carries a targeted field that some role strips
    /// from what it sends downstream (`fields_to_strip`), so that a hit
    /// need not look for each.
    pub carries_strippable: bool,
}

/// Fields a hit writes itself, so a plain hit's prefix leaves them out.
/// Hop-by-hop fields go too, as from every response toward a viewer.
const HIT_WRITES: [&str; 3] = ["age", "accept-ranges", "content-length"];

impl Decoded {
    pub fn new(head: ResponseHead) -> Decoded {
        let controls = Controls::of(&head.headers);
        let hit_prefix = hit_prefix(&head);
        let carries_strippable = [Downstream::Viewers, Downstream::Caches]
            .into_iter()
            .flat_map(fields_to_strip)
            .any(|name| head.headers.contains(name));
        Decoded {
            head,
            controls,
            hit_prefix,
            carries_strippable,
        }
    }

    /// Memory it holds, roughly: what the bound counts.
    fn footprint(&self) -> usize {
        size_of::<Decoded>()
            + self.head.headers.heap_bytes()
            + self.hit_prefix.as_ref().map_or(0, Vec::capacity)
    }
}

/// A 200's status line and fields as every plain hit of it sends them,
/// ending before the blank line: the hit appends `Age`, `Accept-Ranges`,
/// its framing, `Via`, `Cache-Status` and `Connection`. Only for a head
/// with a `Date` and none of the fields a hit appends to (`Via`,
/// `Cache-Status`), which is how heads are stored; any other takes the
/// shaped way (`hit::serve_stored`).
fn hit_prefix(head: &ResponseHead) -> Option<Vec<u8>> {
    let h = &head.headers;
    if head.status != 200 || !h.contains("date") || h.contains("via") || h.contains("cache-status")
    {
        return None;
    }
    let mut out = Vec::new();
    head.encode_end_to_end_prefix(&HIT_WRITES, &mut out);
    Some(out)
}

struct Kept {
    decoded: Rc<Decoded>,
    size: usize,
    /// Asked for since it was kept or last given a second chance.
    referenced: bool,
}

/// A shard's decoded heads (see the module's notes).
pub struct DecodedHeads {
    inner: RefCell<Inner>,
}

struct Inner {
    /// Keyed with a fast seeded hash: a lookup per hit.
    map: foldhash::HashMap<EntryId, Kept>,
    /// The doorkeeper: fingerprints of heads decoded once and not kept, at
    /// the slot their fingerprint picks (a power of two of them); a newer
    /// head may take an older one's slot, which is then let in a decode
    /// later.
    seen: Box<[u64]>,
    fingerprint: foldhash::fast::RandomState,
    /// Kept heads in the order they came; the clock's hand is the front.
    order: VecDeque<EntryId>,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

/// The default bounds: a shard's hot set of small objects, at a few
/// hundred bytes each.
pub const MAX_HEADS: usize = 16_384;
pub const MAX_HEAD_BYTES: usize = 8 << 20;

impl DecodedHeads {
    pub fn new(max_count: usize, max_bytes: usize) -> DecodedHeads {
        DecodedHeads {
            inner: RefCell::new(Inner {
                map: foldhash::HashMap::default(),
                seen: vec![0; (2 * max_count).next_power_of_two()].into_boxed_slice(),
                fingerprint: foldhash::fast::RandomState::default(),
                order: VecDeque::new(),
                bytes: 0,
                max_count,
                max_bytes,
            }),
        }
    }

    /// The head of the entry `id`, decoded by `decode` (from the entry's
    /// bytes) when it is not kept; None when it does not decode (nothing is
    /// kept then).
    pub fn get_or_decode(
        &self,
        id: EntryId,
        decode: impl FnOnce() -> Option<ResponseHead>,
    ) -> Option<Rc<Decoded>> {
        if let Some(kept) = self.inner.borrow_mut().map.get_mut(&id) {
            kept.referenced = true;
            return Some(kept.decoded.clone());
        }
        let decoded = Rc::new(Decoded::new(decode()?));
        let mut inner = self.inner.borrow_mut();
        if inner.seen_before(&id) {
            inner.keep(id, decoded.clone());
        }
        Some(decoded)
    }

    /// Heads kept now, and the bytes they hold.
    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        let inner = self.inner.borrow();
        (inner.map.len(), inner.bytes)
    }
}

impl Inner {
    /// Whether `id` was decoded before (its fingerprint is at its slot,
    /// which it then leaves); otherwise it is noted, for next time.
    fn seen_before(&mut self, id: &EntryId) -> bool {
        use std::hash::BuildHasher;
        // Never 0, which marks an empty slot.
        let fp = self.fingerprint.hash_one(id) | 1;
        let slot = &mut self.seen[fp as usize & (self.seen.len() - 1)];
        if *slot == fp {
            *slot = 0;
            return true;
        }
        *slot = fp;
        false
    }

    fn keep(&mut self, id: EntryId, decoded: Rc<Decoded>) {
        let size = decoded.footprint();
        if size > self.max_bytes || self.max_count == 0 {
            return;
        }
        // Each head passes the hand at most twice (once to lose its second
        // chance), so this ends within twice the count.
        let mut turns = 2 * self.order.len();
        while turns > 0 && (self.map.len() >= self.max_count || self.bytes + size > self.max_bytes)
        {
            turns -= 1;
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            match self.map.get_mut(&oldest) {
                Some(k) if k.referenced => {
                    k.referenced = false;
                    self.order.push_back(oldest);
                }
                Some(_) => {
                    let k = self.map.remove(&oldest).expect("just seen");
                    self.bytes -= k.size;
                }
                None => {}
            }
        }
        if self.map.len() >= self.max_count || self.bytes + size > self.max_bytes {
            return;
        }
        self.bytes += size;
        self.order.push_back(id);
        self.map.insert(
            id,
            Kept {
                decoded,
                size,
                referenced: false,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::DeltaSeconds;
    use crate::http::{Limits, parse_response};

    fn head(cc: &str) -> ResponseHead {
        let text = format!("HTTP/1.1 200 OK\r\nCache-Control: {cc}\r\nETag: \"x\"\r\n\r\n");
        let limits = Limits::default();
        parse_response(text.as_bytes(), &limits, false)
            .unwrap()
            .unwrap()
            .0
    }

    fn id(n: u32) -> EntryId {
        EntryId {
            key_hash: 7,
            seq: 1,
            slot: 0,
            offset: n,
            born_ms: 1,
            head_len: 60,
        }
    }

    #[test]
    fn a_hit_prefix_leaves_out_hop_by_hop_nominated_and_hit_written_fields() {
        let text = "HTTP/1.1 200 OK\r\nDate: Mon, 30 Nov 2026 10:00:00 GMT\r\n\
                    Connection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\n\
                    X-Private: 1\r\nAge: 4\r\nContent-Length: 3\r\nETag: \"e\"\r\n\
                    accept-ranges: none\r\nX-Kept: a\r\nAGE: 9\r\n\r\n";
        let stored = parse_response(text.as_bytes(), &Limits::default(), false)
            .unwrap()
            .unwrap()
            .0;
        let prefix = hit_prefix(&stored).expect("a prefix");
        assert_eq!(
            String::from_utf8(prefix).unwrap(),
            "HTTP/1.1 200 OK\r\nDate: Mon, 30 Nov 2026 10:00:00 GMT\r\n\
             ETag: \"e\"\r\nX-Kept: a\r\n"
        );
    }

    /// Decodes `n`'s head twice, the second time keeping it.
    fn keep(heads: &DecodedHeads, n: u32, cc: &str) {
        for _ in 0..2 {
            assert!(heads.get_or_decode(id(n), || Some(head(cc))).is_some());
        }
    }

    #[test]
    fn a_head_is_kept_from_its_second_decode_on() {
        let heads = DecodedHeads::new(10, 1 << 20);
        let mut decodes = 0;
        for _ in 0..5 {
            heads.get_or_decode(id(1), || {
                decodes += 1;
                Some(head("max-age=60"))
            });
        }
        assert_eq!(decodes, 2, "decoded once, then kept on the second");
        assert_eq!(heads.kept().0, 1);
        // Heads decoded once keep nothing and evict nothing.
        for n in 10..100 {
            heads.get_or_decode(id(n), || Some(head("max-age=1")));
        }
        assert_eq!(heads.kept().0, 1);
        heads.get_or_decode(id(1), || panic!("still kept"));
    }

    #[test]
    fn a_kept_head_is_not_decoded_again() {
        let heads = DecodedHeads::new(10, 1 << 20);
        heads.get_or_decode(id(1), || Some(head("max-age=60")));
        let first = heads.get_or_decode(id(1), || Some(head("max-age=60")));
        assert_eq!(
            first.unwrap().controls.directives.max_age,
            Some(DeltaSeconds::Valid(60))
        );
        let again = heads.get_or_decode(id(1), || panic!("decoded twice"));
        assert!(again.is_some());
        // Another copy of the same key (a new write) is another head.
        let mut decoded = false;
        let other = heads.get_or_decode(id(2), || {
            decoded = true;
            Some(head("max-age=5"))
        });
        assert!(decoded);
        assert_eq!(
            other.unwrap().controls.directives.max_age,
            Some(DeltaSeconds::Valid(5))
        );
    }

    #[test]
    fn a_head_that_does_not_decode_is_not_kept() {
        let heads = DecodedHeads::new(10, 1 << 20);
        assert!(heads.get_or_decode(id(1), || None).is_none());
        assert_eq!(heads.kept().0, 0);
        assert!(
            heads
                .get_or_decode(id(1), || Some(head("no-cache")))
                .is_some()
        );
    }

    #[test]
    fn the_bounds_hold_and_a_head_asked_for_again_stays() {
        let heads = DecodedHeads::new(3, 1 << 20);
        for n in 0..3 {
            keep(&heads, n, "max-age=1");
        }
        // 0 is asked for again: it gets a second chance; 1 goes first.
        heads.get_or_decode(id(0), || panic!("kept"));
        keep(&heads, 3, "max-age=1");
        assert_eq!(heads.kept().0, 3);
        heads.get_or_decode(id(0), || panic!("0 stayed"));
        let mut again = false;
        heads.get_or_decode(id(1), || {
            again = true;
            Some(head("max-age=1"))
        });
        assert!(again, "1 was evicted");
        // A byte bound below one head keeps nothing.
        let tiny = DecodedHeads::new(3, 8);
        keep(&tiny, 0, "max-age=1");
        assert_eq!(tiny.kept(), (0, 0));
    }
}
