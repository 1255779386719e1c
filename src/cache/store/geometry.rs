//! How a cache device is cut up: one region per shard, each region its
//! segments followed by a metadata area for the shard's checkpoint, and the
//! chunk size of large objects for a segment size. When the configured
//! segment size leaves a region too few segments, the segments shrink (by
//! halves, down to `MIN_SEGMENT_SIZE`) until they fit; the geometry carries
//! the size actually used, and nothing after start-up reads the configured
//! one. Pure arithmetic, identical on every shard and on every start with the
//! same inputs; `device` checks it against the superblock.

use super::layout::{DATA_START, FORMAT_VERSION, Superblock};
use crate::cache::index::{BUCKET, Index};

/// Body bytes per chunk of a large object for a given segment size: about
/// 1 MiB (at least four chunks a segment), sized so that whole chunk entries
/// (header included, 512-byte aligned) fill a segment with no waste.
pub fn chunk_size(segment_size: u64) -> u64 {
    let per_segment = (segment_size >> 20).max(4);
    let alloc = (segment_size - 4096) / per_segment / 512 * 512;
    alloc - 64
}

/// How the device is cut up. Identical on every shard. Each region is its
/// segments followed by a metadata area that holds the shard's checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub device_size: u64,
    pub segment_size: u64,
    pub shards: u32,
    pub segments_per_region: u32,
    /// Objects each shard's index is sized for.
    pub index_objects: u64,
    /// Bytes of each region's metadata area (a multiple of 4 KiB).
    pub meta_size: u64,
}

/// Bytes a checkpoint of one region may need: header, segment table, index
/// table, ghost, and the chunk-owner list (at most two chunk entries per
/// chunk-size of region, counting each large object's short last chunk).
pub fn meta_bytes(segments: u64, segment_size: u64, index_objects: u64) -> u64 {
    let table = Index::buckets_for(index_objects) * BUCKET as u64;
    let ghost = table * 17 / 20;
    let chunk_entries = 2 * segments * segment_size / chunk_size(segment_size);
    let raw = 4096 + segments * 16 + table * 8 + ghost + chunk_entries * 12 + 4096;
    raw.div_ceil(4096) * 4096
}

/// Bytes of the device each shard's region (segments and metadata) may use.
fn region_share(device_size: u64, shards: u32) -> u64 {
    let usable = device_size.saturating_sub(DATA_START);
    usable / shards.max(1) as u64 / 4096 * 4096
}

/// Objects a region's index is sized for.
fn index_objects(segments: u64, segment_size: u64, avg_object_size: u64) -> u64 {
    (segments * segment_size / avg_object_size.max(64)).max(BUCKET as u64)
}

/// The smallest segments a device is cut into. A power of two, so every
/// halving of a configured power of two down to it stays a multiple of the
/// 4 KiB O_DIRECT alignment and of any device's logical block size.
pub const MIN_SEGMENT_SIZE: u64 = 1 << 20;

const _: () = assert!(MIN_SEGMENT_SIZE.is_power_of_two() && MIN_SEGMENT_SIZE.is_multiple_of(4096));

impl Geometry {
    /// The smallest number of segments a region may have: two open write
    /// heads (small and main queue), one flushing, the free reserve of two,
    /// and one to reclaim.
    pub const MIN_SEGMENTS: u64 = 6;

    /// Cuts the device into regions of `segment_size`-byte segments or, when
    /// those leave fewer than `MIN_SEGMENTS` per region, of the largest
    /// halving of `segment_size` (a power of two) that does, down to
    /// `MIN_SEGMENT_SIZE`. The result depends only on the arguments, so a
    /// restart with the same configuration finds the same layout.
    pub fn new(
        device_size: u64,
        segment_size: u64,
        shards: u32,
        avg_object_size: u64,
    ) -> Result<Geometry, TooSmall> {
        let mut size = segment_size;
        loop {
            if let Some(g) = Self::with_segment_size(device_size, size, shards, avg_object_size) {
                return Ok(g);
            }
            if !size.is_power_of_two() || size / 2 < MIN_SEGMENT_SIZE {
                break;
            }
            size /= 2;
        }
        let per_region = Self::MIN_SEGMENTS * size
            + meta_bytes(
                Self::MIN_SEGMENTS,
                size,
                index_objects(Self::MIN_SEGMENTS, size, avg_object_size),
            );
        Err(TooSmall {
            size: device_size,
            needed: DATA_START + per_region * shards as u64,
            shards,
            segment_size: size,
        })
    }

    /// How many segments of `segment_size` bytes (with the metadata area
    /// they need) fit one region; fewer than `MIN_SEGMENTS` is too few.
    pub fn segments_that_fit(
        device_size: u64,
        segment_size: u64,
        shards: u32,
        avg_object_size: u64,
    ) -> u64 {
        let share = region_share(device_size, shards);
        let mut segments = share / segment_size;
        while segments > 0
            && segments * segment_size
                + meta_bytes(
                    segments,
                    segment_size,
                    index_objects(segments, segment_size, avg_object_size),
                )
                > share
        {
            segments -= 1;
        }
        segments
    }

    /// The layout with segments of exactly `segment_size` bytes, if that
    /// leaves each region at least `MIN_SEGMENTS`.
    fn with_segment_size(
        device_size: u64,
        segment_size: u64,
        shards: u32,
        avg_object_size: u64,
    ) -> Option<Geometry> {
        let segments = Self::segments_that_fit(device_size, segment_size, shards, avg_object_size);
        if segments < Self::MIN_SEGMENTS {
            return None;
        }
        let index_objects = index_objects(segments, segment_size, avg_object_size);
        Some(Geometry {
            device_size,
            segment_size,
            shards,
            segments_per_region: segments.min(u32::MAX as u64) as u32,
            index_objects,
            meta_size: meta_bytes(segments, segment_size, index_objects),
        })
    }

    pub fn region_size(&self) -> u64 {
        self.segments_per_region as u64 * self.segment_size
    }

    fn region_stride(&self) -> u64 {
        self.region_size() + self.meta_size
    }

    pub fn segment_offset(&self, shard: u32, slot: u32) -> u64 {
        DATA_START + shard as u64 * self.region_stride() + slot as u64 * self.segment_size
    }

    /// Where a shard's metadata area (its checkpoint) starts.
    pub fn meta_offset(&self, shard: u32) -> u64 {
        DATA_START + shard as u64 * self.region_stride() + self.region_size()
    }

    pub(super) fn superblock(&self, format_id: u64) -> Superblock {
        Superblock {
            version: FORMAT_VERSION,
            device_size: self.device_size,
            segment_size: self.segment_size,
            shards: self.shards,
            segments_per_region: self.segments_per_region,
            index_objects: self.index_objects,
            format_id,
        }
    }
}

/// A device too small for the shards even with the smallest segments tried:
/// what it has and what they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{size} bytes is too small: {shards} shard(s) need at least {needed} bytes ({min} segments \
     per shard, with segments shrunk to {segment_size} bytes)",
    min = Geometry::MIN_SEGMENTS
)]
pub struct TooSmall {
    pub size: u64,
    pub needed: u64,
    pub shards: u32,
    /// The smallest segment size tried (the one `needed` is computed for).
    pub segment_size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fill_segments_exactly() {
        for seg in [1u64 << 20, 4 << 20, 16 << 20, 256 << 20] {
            let chunk = chunk_size(seg);
            let alloc = (chunk + 64).div_ceil(512) * 512;
            let fit = (seg - 4096) / alloc;
            assert!(
                fit >= 4 && (seg - 4096) - fit * alloc < 512 * fit,
                "{seg}: {chunk}"
            );
            assert!(chunk <= 1 << 20 || seg < 4 << 20);
        }
    }

    #[test]
    fn geometry_splits_regions() {
        let seg = 16u64 << 20;
        let g = Geometry::new(DATA_START + 2 * (8 * seg), seg, 2, 32 << 10).unwrap();
        assert_eq!(g.segment_size, seg, "a fitting segment size is kept");
        assert_eq!(
            g.segments_per_region, 7,
            "one segment's room goes to metadata"
        );
        assert!(g.meta_size > 0 && g.meta_size.is_multiple_of(4096));
        assert!(g.meta_offset(0) + g.meta_size <= g.segment_offset(1, 0));
        assert!(g.meta_offset(1) + g.meta_size <= g.device_size);
    }

    /// Checks what every layout must hold: enough segments, power-of-two
    /// segments no smaller than the floor, regions and their metadata inside
    /// the device without overlapping.
    fn assert_sound(g: &Geometry) {
        assert!(g.segment_size >= MIN_SEGMENT_SIZE, "{g:?}");
        assert!(g.segment_size.is_power_of_two(), "{g:?}");
        assert!(
            g.segments_per_region as u64 >= Geometry::MIN_SEGMENTS,
            "{g:?}"
        );
        for shard in 0..g.shards {
            assert!(g.meta_offset(shard) >= g.segment_offset(shard, 0) + g.region_size());
            let end = g.meta_offset(shard) + g.meta_size;
            if shard + 1 < g.shards {
                assert!(end <= g.segment_offset(shard + 1, 0), "{g:?}");
            } else {
                assert!(end <= g.device_size, "{g:?}");
            }
        }
    }

    #[test]
    fn a_64_mib_cache_fits_any_core_count_by_shrinking_segments() {
        let size = 64u64 << 20;
        let configured = 16u64 << 20;
        let mut previous = configured;
        for shards in [1, 2, 4, 8] {
            let g = Geometry::new(size, configured, shards, 32 << 10)
                .unwrap_or_else(|e| panic!("{shards} shards: {e}"));
            assert_sound(&g);
            assert!(g.segment_size < configured, "{shards} shards: {g:?}");
            assert!(
                g.segment_size <= previous,
                "more shards, no larger segments"
            );
            previous = g.segment_size;
            // The largest halving that fits is taken, not a smaller one.
            let larger = g.segment_size * 2;
            assert!(
                Geometry::segments_that_fit(size, larger, shards, 32 << 10)
                    < Geometry::MIN_SEGMENTS,
                "{shards} shards: {larger}-byte segments would have fit"
            );
            // The same inputs always give the same layout (a restart adopts it).
            assert_eq!(Geometry::new(size, configured, shards, 32 << 10), Ok(g));
        }
    }

    #[test]
    fn a_fitting_segment_size_is_unchanged() {
        for (size, seg, shards) in [
            (1u64 << 30, 16u64 << 20, 2),
            (96 << 20, 4 << 20, 2),
            (24 << 20, 1 << 20, 1),
        ] {
            let g = Geometry::new(size, seg, shards, 32 << 10).unwrap();
            assert_eq!(g.segment_size, seg, "{size} on {shards}");
            assert_eq!(
                g.segments_per_region as u64,
                Geometry::segments_that_fit(size, seg, shards, 32 << 10)
            );
            assert_sound(&g);
        }
    }

    #[test]
    fn too_small_even_for_the_smallest_segments_says_what_is_needed() {
        let e = Geometry::new(8 << 20, 16 << 20, 2, 32 << 10).unwrap_err();
        assert_eq!(e.segment_size, MIN_SEGMENT_SIZE, "{e:?}");
        assert!(e.needed > e.size, "{e:?}");
        // Exactly the size asked for is enough, with the smallest segments.
        let g = Geometry::new(e.needed, 16 << 20, 2, 32 << 10).unwrap();
        assert_eq!(g.segment_size, MIN_SEGMENT_SIZE);
        assert!(Geometry::new(e.needed - 4096, 16 << 20, 2, 32 << 10).is_err());
        let text = e.to_string();
        assert!(
            text.contains("too small")
                && text.contains(&format!("need at least {}", e.needed))
                && text.contains(&MIN_SEGMENT_SIZE.to_string()),
            "{text}"
        );
    }

    #[test]
    fn chunks_of_the_smallest_segments_stay_sane() {
        let chunk = chunk_size(MIN_SEGMENT_SIZE);
        assert!(chunk > 200 << 10 && chunk < MIN_SEGMENT_SIZE / 4, "{chunk}");
        let g = Geometry::new(64 << 20, 16 << 20, 8, 32 << 10).unwrap();
        assert_eq!(g.segment_size, MIN_SEGMENT_SIZE, "{g:?}");
        assert!(g.region_size() / chunk >= 4 * Geometry::MIN_SEGMENTS);
    }
}
