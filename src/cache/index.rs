//! The in-memory index of one shard: key hash → where the entry sits on the
//! device. Each object costs one packed `u64` in a fixed table of 32-entry
//! buckets (256 bytes, four cache lines), sized at start from the region size
//! and the expected mean object size. There is no per-object heap allocation
//! and no resizing. An entry whose home bucket is full may live in the next
//! bucket (a flag bit says so); only when both are full does the home bucket
//! drop its least-used entry (the object's bytes become dead space, as if
//! evicted). Full keys live on disk and are checked on every read, so a tag
//! collision costs a read, never a wrong object.

/// Entries per bucket.
pub const BUCKET: usize = 32;
// `Index::find_in` marks a bucket's matching slots in a u32.
const _: () = assert!(BUCKET <= 32);
/// Device allocation unit of entries within a segment.
pub const UNIT: u64 = 512;

const FREQ_BITS: u32 = 2;
const FREQ_MAX: u64 = (1 << FREQ_BITS) - 1;

/// A region with too many segments, or segments too large, for a packed
/// entry to keep 8 bits of tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{segments} segments of {segment_size} bytes leave fewer than 8 tag bits per index entry; \
     use fewer, larger segments"
)]
pub struct LayoutTooWide {
    pub segments: u64,
    pub segment_size: u64,
}

/// Bit widths of the packed entry, derived from the region geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryLayout {
    slot_bits: u32,
    offset_bits: u32,
    size_bits: u32,
    tag_bits: u32,
}

impl EntryLayout {
    /// `segments` per region, `segment_size` in bytes, `max_entry` in bytes.
    pub fn new(
        segments: u64,
        segment_size: u64,
        max_entry: u64,
    ) -> Result<EntryLayout, LayoutTooWide> {
        let bits = |n: u64| 64 - n.saturating_sub(1).leading_zeros();
        let slot_bits = bits(segments).max(1);
        let offset_bits = bits(segment_size.div_ceil(UNIT)).max(1);
        let size_bits = bits(max_entry.div_ceil(UNIT) + 1).max(1);
        // freq, manifest flag, displaced flag, then the location.
        let used = FREQ_BITS + 2 + slot_bits + offset_bits + size_bits;
        if used + 8 > 64 {
            return Err(LayoutTooWide {
                segments,
                segment_size,
            });
        }
        Ok(EntryLayout {
            slot_bits,
            offset_bits,
            size_bits,
            tag_bits: (64 - used).min(32),
        })
    }

    pub fn tag_bits(&self) -> u32 {
        self.tag_bits
    }

    pub fn max_entry_bytes(&self) -> u64 {
        ((1u64 << self.size_bits) - 1) * UNIT
    }

    fn tag_of(&self, hash: u64) -> u64 {
        (hash >> 32) & ((1 << self.tag_bits) - 1)
    }

    /// The bits of a packed entry that name it (its tag and whether it is
    /// displaced), and their value for `tag` and `displaced`: a live entry
    /// `v` is that one when `v & mask == want`, with no unpacking.
    fn naming_bits(&self, tag: u64, displaced: bool) -> (u64, u64) {
        let shift = self.slot_bits + self.offset_bits + self.size_bits + 2 + FREQ_BITS;
        let displaced_bit = 1 << FREQ_BITS;
        let mask = (((1 << self.tag_bits) - 1) << shift) | displaced_bit;
        let want = (tag << shift) | if displaced { displaced_bit } else { 0 };
        (mask, want)
    }

    fn pack(&self, e: &Packed) -> u64 {
        let size_units = (e.loc.len as u64).div_ceil(UNIT);
        debug_assert!(size_units >= 1 && size_units < 1 << self.size_bits);
        debug_assert!((e.loc.offset as u64).is_multiple_of(UNIT));
        let mut v = e.tag;
        v = (v << self.slot_bits) | e.loc.slot as u64;
        v = (v << self.offset_bits) | (e.loc.offset as u64 / UNIT);
        v = (v << self.size_bits) | size_units;
        v = (v << 1) | e.loc.manifest as u64;
        v = (v << 1) | e.displaced as u64;
        (v << FREQ_BITS) | e.freq.min(FREQ_MAX)
    }

    fn unpack(&self, mut v: u64) -> Packed {
        let freq = v & FREQ_MAX;
        v >>= FREQ_BITS;
        let displaced = v & 1 == 1;
        v >>= 1;
        let manifest = v & 1 == 1;
        v >>= 1;
        let size = v & ((1 << self.size_bits) - 1);
        v >>= self.size_bits;
        let offset = v & ((1 << self.offset_bits) - 1);
        v >>= self.offset_bits;
        let slot = v & ((1 << self.slot_bits) - 1);
        v >>= self.slot_bits;
        Packed {
            tag: v,
            loc: Location {
                slot: slot as u32,
                offset: (offset * UNIT) as u32,
                len: (size * UNIT) as u32,
                manifest,
            },
            freq,
            displaced,
        }
    }
}

/// One index entry, unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    tag: u64,
    loc: Location,
    freq: u64,
    /// Lives in the bucket after its home bucket.
    displaced: bool,
}

/// Where an entry sits in its region. `len` is rounded up to whole units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub slot: u32,
    pub offset: u32,
    pub len: u32,
    pub manifest: bool,
}

/// An entry taken out of the index by a segment reclaim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub bucket: u32,
    pub tag: u64,
    pub loc: Location,
    pub freq: u64,
}

pub struct Index {
    layout: EntryLayout,
    table: Vec<u64>,
    buckets: u64,
    len: usize,
    overflow_drops: u64,
}

impl Index {
    /// A table for about `objects` objects at 85% occupancy: with 32-entry
    /// buckets even the fullest buckets rarely overflow there.
    pub fn new(layout: EntryLayout, objects: u64) -> Index {
        let buckets = Self::buckets_for(objects);
        Index {
            layout,
            // vec![0; n] comes from calloc: pages are only resident once touched.
            table: vec![0u64; buckets as usize * BUCKET],
            buckets,
            len: 0,
            overflow_drops: 0,
        }
    }

    /// Buckets a table for `objects` objects has.
    pub fn buckets_for(objects: u64) -> u64 {
        (objects.max(BUCKET as u64) * 20 / 17)
            .div_ceil(BUCKET as u64)
            .min(u32::MAX as u64)
    }

    /// A table restored from a checkpoint.
    pub fn from_table(layout: EntryLayout, table: Vec<u64>) -> Option<Index> {
        if table.is_empty() || !table.len().is_multiple_of(BUCKET) {
            return None;
        }
        let len = table.iter().filter(|&&v| v != 0).count();
        Some(Index {
            layout,
            buckets: (table.len() / BUCKET) as u64,
            table,
            len,
            overflow_drops: 0,
        })
    }

    /// The raw table, for checkpoints.
    pub fn table(&self) -> &[u64] {
        &self.table
    }

    pub fn layout(&self) -> EntryLayout {
        self.layout
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.table.len()
    }

    /// Entries dropped because their bucket was full.
    pub fn overflow_drops(&self) -> u64 {
        self.overflow_drops
    }

    pub fn table_bytes(&self) -> usize {
        self.table.len() * 8
    }

    /// The bucket of a hash (multiply-shift on the low 32 bits, so any
    /// bucket count works); segments remember it for each entry they hold.
    pub fn bucket_of(&self, hash: u64) -> u32 {
        (((hash & 0xFFFF_FFFF) * self.buckets) >> 32) as u32
    }

    pub fn buckets(&self) -> u64 {
        self.buckets
    }

    /// The tag a hash is stored under.
    pub fn tag_of(&self, hash: u64) -> u64 {
        self.layout.tag_of(hash)
    }

    fn bucket(&self, b: u32) -> std::ops::Range<usize> {
        let start = b as usize * BUCKET;
        start..start + BUCKET
    }

    /// The bucket after `b`, where entries of home `b` overflow to.
    fn next(&self, b: u32) -> u32 {
        if b as u64 + 1 == self.buckets {
            0
        } else {
            b + 1
        }
    }

    /// Table position of the entry with home `b` and `tag`.
    fn find(&self, b: u32, tag: u64) -> Option<usize> {
        self.find_in(b, tag, false)
            .or_else(|| self.find_in(self.next(b), tag, true))
    }

    /// Table position of the entry with `tag` in bucket `b`, displaced
    /// there or not. Every slot of the bucket is compared, without a branch
    /// per slot: a miss (the common case of a lookup) looks at all of them
    /// anyway, and so the comparisons vectorise.
    fn find_in(&self, b: u32, tag: u64, displaced: bool) -> Option<usize> {
        let (mask, want) = self.layout.naming_bits(tag, displaced);
        let range = self.bucket(b);
        let start = range.start;
        let slots: &[u64; BUCKET] = self.table[range].try_into().expect("a bucket's slots");
        let mut found = 0u32;
        for (i, &v) in slots.iter().enumerate() {
            // A live entry is never 0 (its size is at least one unit).
            found |= u32::from(v != 0 && v & mask == want) << i;
        }
        (found != 0).then(|| start + found.trailing_zeros() as usize)
    }

    /// Looks up a hash and counts the access (for reinsertion decisions).
    pub fn lookup(&mut self, hash: u64) -> Option<Location> {
        let i = self.find(self.bucket_of(hash), self.layout.tag_of(hash))?;
        let mut e = self.layout.unpack(self.table[i]);
        e.freq += 1;
        self.table[i] = self.layout.pack(&e);
        Some(e.loc)
    }

    /// Looks up without counting an access.
    pub fn peek(&self, hash: u64) -> Option<(Location, u64)> {
        let i = self.find(self.bucket_of(hash), self.layout.tag_of(hash))?;
        let e = self.layout.unpack(self.table[i]);
        Some((e.loc, e.freq))
    }

    /// Inserts or replaces the entry of `hash`. Returns the location it
    /// replaced or pushed out of a full bucket, if any.
    pub fn insert(&mut self, hash: u64, loc: Location) -> Option<Location> {
        let b = self.bucket_of(hash);
        self.insert_at(b, self.layout.tag_of(hash), loc, 0)
    }

    /// Inserts by home bucket and tag (reinsertion after a reclaim).
    pub fn insert_at(&mut self, b: u32, tag: u64, loc: Location, freq: u64) -> Option<Location> {
        let mut e = Packed {
            tag,
            loc,
            freq,
            displaced: false,
        };
        if let Some(i) = self.find(b, tag) {
            let old = self.layout.unpack(self.table[i]);
            e.displaced = old.displaced;
            self.table[i] = self.layout.pack(&e);
            return Some(old.loc);
        }
        let home = self.bucket(b);
        let empty = home.clone().find(|&i| self.table[i] == 0).or_else(|| {
            e.displaced = true;
            self.bucket(self.next(b)).find(|&i| self.table[i] == 0)
        });
        if let Some(i) = empty {
            self.table[i] = self.layout.pack(&e);
            self.len += 1;
            return None;
        }
        // Both buckets full: the home bucket's least-used entry makes room.
        e.displaced = false;
        let victim = home
            .min_by_key(|&i| self.layout.unpack(self.table[i]).freq)
            .expect("bucket is not empty");
        let old = self.layout.unpack(self.table[victim]).loc;
        self.table[victim] = self.layout.pack(&e);
        self.overflow_drops += 1;
        Some(old)
    }

    pub fn remove(&mut self, hash: u64) -> Option<Location> {
        let i = self.find(self.bucket_of(hash), self.layout.tag_of(hash))?;
        let loc = self.layout.unpack(self.table[i]).loc;
        self.table[i] = 0;
        self.len -= 1;
        Some(loc)
    }

    /// Removes the entry of `hash` only if it still points at `loc`.
    pub fn remove_if_at(&mut self, hash: u64, loc: Location) -> bool {
        match self.peek(hash) {
            Some((l, _)) if l == loc => self.remove(hash).is_some(),
            _ => false,
        }
    }

    /// Removes and returns every entry with home bucket `b` that points into
    /// `slot`.
    pub fn take_in_slot(&mut self, b: u32, slot: u32, out: &mut Vec<Taken>) {
        let places = self
            .bucket(b)
            .map(|i| (i, false))
            .chain(self.bucket(self.next(b)).map(|i| (i, true)));
        for (i, displaced) in places.collect::<Vec<_>>() {
            let v = self.table[i];
            if v == 0 {
                continue;
            }
            let e = self.layout.unpack(v);
            if e.displaced == displaced && e.loc.slot == slot {
                self.table[i] = 0;
                self.len -= 1;
                out.push(Taken {
                    bucket: b,
                    tag: e.tag,
                    loc: e.loc,
                    freq: e.freq,
                });
            }
        }
    }

    /// Whether home bucket `b` holds an entry with this tag (a newer write
    /// that must not be overwritten by a reinsertion).
    pub fn has_tag(&self, b: u32, tag: u64) -> bool {
        self.find(b, tag).is_some()
    }

    /// Every live entry, with its home bucket (for checkpoints).
    pub fn iter(&self) -> impl Iterator<Item = Taken> + '_ {
        self.table
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0)
            .map(|(i, &v)| {
                let e = self.layout.unpack(v);
                let here = (i / BUCKET) as u32;
                let bucket = match (e.displaced, here) {
                    (false, _) => here,
                    (true, 0) => (self.buckets - 1) as u32,
                    (true, h) => h - 1,
                };
                Taken {
                    bucket,
                    tag: e.tag,
                    loc: e.loc,
                    freq: e.freq,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(slot: u32, offset: u32, len: u32) -> Location {
        Location {
            slot,
            offset,
            len,
            manifest: false,
        }
    }

    fn layout() -> EntryLayout {
        EntryLayout::new(64, 16 << 20, 2 << 20).unwrap()
    }

    /// `find` against a plain search that unpacks every slot, over a table
    /// crowded enough that entries are displaced and dropped, with tags
    /// that recur across buckets and locations whose every field varies.
    #[test]
    fn find_agrees_with_unpacking_every_slot() {
        let l = layout();
        let mut ix = Index::new(l, 64);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            // xorshift64: a fixed, repeatable sequence.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let reference = |ix: &Index, b: u32, tag: u64| {
            let search = |b: u32, displaced: bool| {
                ix.bucket(b).find(|&i| {
                    let v = ix.table[i];
                    v != 0 && {
                        let e = ix.layout.unpack(v);
                        e.tag == tag && e.displaced == displaced
                    }
                })
            };
            search(b, false).or_else(|| search(ix.next(b), true))
        };
        let mut hashes = Vec::new();
        let mut displaced = 0;
        for _ in 0..300 {
            let r = next();
            // Few distinct tags (the table has three buckets of 32), so
            // the same tag sits in every bucket; three keys in four have
            // the first bucket for home, which overflows into the second.
            let low = r & 0xFFFF_FFFF;
            let home = if r % 4 == 0 { low } else { low / 3 };
            let h = home | ((r >> 32) % 97) << 32;
            let at = loc(
                (r % 64) as u32,
                ((r >> 8) % 1024) as u32 * 512,
                512 * (1 + (r >> 20) % 8) as u32,
            );
            ix.insert(h, at);
            if r % 5 == 0 {
                ix.lookup(h);
            }
            hashes.push(h);
            // Every hash so far, present, replaced or dropped.
            for &h in &hashes {
                let (b, tag) = (ix.bucket_of(h), ix.tag_of(h));
                let found = ix.find(b, tag);
                assert_eq!(found, reference(&ix, b, tag), "hash {h:#x}");
                displaced +=
                    usize::from(found.is_some_and(|i| ix.layout.unpack(ix.table[i]).displaced));
            }
        }
        assert!(displaced > 0, "some entries were displaced");
        assert!(ix.overflow_drops() > 0, "some buckets overflowed");
    }

    #[test]
    fn pack_round_trips() {
        let l = layout();
        let x = Location {
            slot: 63,
            offset: (16 << 20) - 512,
            len: 2 << 20,
            manifest: true,
        };
        let t = (1 << l.tag_bits) - 1;
        for e in [
            Packed {
                tag: t,
                loc: x,
                freq: 3,
                displaced: true,
            },
            Packed {
                tag: 0,
                loc: loc(0, 0, 512),
                freq: 0,
                displaced: false,
            },
        ] {
            assert_eq!(l.unpack(l.pack(&e)), e);
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let mut ix = Index::new(layout(), 1000);
        for h in 0..1000u64 {
            let hash = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert_eq!(ix.insert(hash, loc((h % 64) as u32, 512, 1024)), None);
        }
        assert_eq!(ix.len(), 1000);
        let h5 = 5u64.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        assert_eq!(ix.lookup(h5), Some(loc(5, 512, 1024)));
        assert_eq!(ix.peek(h5).unwrap().1, 1);
        assert_eq!(ix.insert(h5, loc(9, 0, 512)), Some(loc(5, 512, 1024)));
        assert_eq!(ix.len(), 1000);
        assert!(!ix.remove_if_at(h5, loc(5, 512, 1024)));
        assert!(ix.remove_if_at(h5, loc(9, 0, 512)));
        assert_eq!(ix.lookup(h5), None);
        assert_eq!(ix.len(), 999);
    }

    #[test]
    fn reclaim_takes_only_the_slot() {
        let mut ix = Index::new(layout(), 64);
        let a = 0x0000_0001_0000_0000u64; // bucket 0, tag 1
        let b = 0x0000_0002_0000_0000u64; // bucket 0, tag 2
        assert_eq!((ix.bucket_of(a), ix.bucket_of(b)), (0, 0));
        ix.insert(a, loc(3, 0, 512));
        ix.insert(b, loc(4, 0, 512));
        let mut out = Vec::new();
        ix.take_in_slot(0, 3, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].tag, 1);
        assert!(ix.peek(a).is_none() && ix.peek(b).is_some());
        ix.insert_at(out[0].bucket, out[0].tag, loc(5, 0, 512), 1);
        assert_eq!(ix.peek(a), Some((loc(5, 0, 512), 1)));
    }

    #[test]
    fn full_buckets_spill_to_the_next_then_drop_least_used() {
        let mut ix = Index::new(layout(), 60);
        assert_eq!(ix.buckets(), 3);
        // Tags 1..=65 all have home bucket 0 (low hash bits zero).
        let hs: Vec<u64> = (1..=2 * BUCKET as u64 + 1).map(|t| t << 32).collect();
        for (i, &h) in hs.iter().take(2 * BUCKET).enumerate() {
            assert_eq!(ix.insert(h, loc(1, (i * 512) as u32, 512)), None);
            if i != 7 {
                ix.lookup(h);
            }
        }
        assert_eq!(ix.overflow_drops(), 0);
        assert!(hs.iter().take(2 * BUCKET).all(|&h| ix.peek(h).is_some()));
        // Spilled entries are found, reclaimed and listed under their home.
        let homes: Vec<u32> = ix.iter().map(|t| t.bucket).collect();
        assert!(homes.iter().all(|&b| b == 0), "{homes:?}");
        ix.insert(hs[2 * BUCKET], loc(2, 0, 512));
        assert_eq!(ix.overflow_drops(), 1);
        assert!(ix.peek(hs[7]).is_none(), "the unused entry made room");
        let mut out = Vec::new();
        ix.take_in_slot(0, 1, &mut out);
        assert_eq!(out.len(), 2 * BUCKET - 1);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn too_many_segments_is_an_error() {
        assert!(EntryLayout::new(1 << 40, 1 << 20, 1 << 20).is_err());
    }
}
