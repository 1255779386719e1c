//! How a cache device is cut up: one region per shard, each region its
//! segments followed by a metadata area for the shard's checkpoint, and the
//! chunk size of large objects for a segment size. Pure arithmetic, identical
//! on every shard; `device` checks it against the superblock.

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

impl Geometry {
    /// The smallest number of segments a region may have: two open write
    /// heads (small and main queue), one flushing, the free reserve of two,
    /// and one to reclaim.
    pub const MIN_SEGMENTS: u64 = 6;

    pub fn new(
        device_size: u64,
        segment_size: u64,
        shards: u32,
        avg_object_size: u64,
    ) -> Result<Geometry, TooSmall> {
        let usable = device_size.saturating_sub(DATA_START);
        let share = usable / shards as u64 / 4096 * 4096;
        let mut segments = share / segment_size;
        let objects_for =
            |segs: u64| (segs * segment_size / avg_object_size.max(64)).max(BUCKET as u64);
        while segments > 0
            && segments * segment_size + meta_bytes(segments, segment_size, objects_for(segments))
                > share
        {
            segments -= 1;
        }
        if segments < Self::MIN_SEGMENTS {
            let per_region = Self::MIN_SEGMENTS * segment_size
                + meta_bytes(
                    Self::MIN_SEGMENTS,
                    segment_size,
                    objects_for(Self::MIN_SEGMENTS),
                );
            return Err(TooSmall {
                size: device_size,
                needed: DATA_START + per_region * shards as u64,
                shards,
                segment_size,
            });
        }
        let index_objects = objects_for(segments);
        Ok(Geometry {
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

/// A device too small for the shards: what it has and what they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{size} bytes is too small: {shards} shard(s) with {segment_size}-byte segments need at \
     least {needed} bytes ({min} segments per shard)",
    min = Geometry::MIN_SEGMENTS
)]
pub struct TooSmall {
    pub size: u64,
    pub needed: u64,
    pub shards: u32,
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
    fn geometry_splits_regions_and_rejects_small_devices() {
        let seg = 16u64 << 20;
        let g = Geometry::new(DATA_START + 2 * (8 * seg), seg, 2, 32 << 10).unwrap();
        assert_eq!(
            g.segments_per_region, 7,
            "one segment's room goes to metadata"
        );
        assert!(g.meta_size > 0 && g.meta_size.is_multiple_of(4096));
        assert!(g.meta_offset(0) + g.meta_size <= g.segment_offset(1, 0));
        assert!(g.meta_offset(1) + g.meta_size <= g.device_size);
        let e = Geometry::new(DATA_START + 11 * seg, seg, 2, 32 << 10).unwrap_err();
        assert!(e.needed > e.size, "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("too small") && e.contains("need at least"),
            "{e}"
        );
    }
}
