//! The cache device: a file or a raw block device, its geometry (one region
//! per shard), preparation at start-up (on the main thread, before any shard
//! runs) and the per-shard O_DIRECT handle. Only this file and its siblings in
//! `cache::store` touch the device.

use super::layout::{DATA_START, FORMAT_VERSION, SUPERBLOCK_SIZE, Superblock, SuperblockRead};
use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// How the device is cut up. Identical on every shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub device_size: u64,
    pub segment_size: u64,
    pub shards: u32,
    pub segments_per_region: u32,
}

impl Geometry {
    /// The smallest number of segments a region may have: two open write
    /// heads (small and main queue), one flushing, the free reserve of two,
    /// and one to reclaim.
    pub const MIN_SEGMENTS: u64 = 6;

    pub fn new(device_size: u64, segment_size: u64, shards: u32) -> Result<Geometry, String> {
        let usable = device_size.saturating_sub(DATA_START);
        let per_region = usable / shards as u64 / segment_size;
        if per_region < Self::MIN_SEGMENTS {
            let needed = DATA_START + Self::MIN_SEGMENTS * segment_size * shards as u64;
            return Err(format!(
                "is too small: {device_size} bytes; {shards} shard(s) with {segment_size}-byte segments \
                 need at least {needed} bytes ({} segments per shard)",
                Self::MIN_SEGMENTS
            ));
        }
        Ok(Geometry {
            device_size,
            segment_size,
            shards,
            segments_per_region: per_region.min(u32::MAX as u64) as u32,
        })
    }

    pub fn region_size(&self) -> u64 {
        self.segments_per_region as u64 * self.segment_size
    }

    pub fn segment_offset(&self, shard: u32, slot: u32) -> u64 {
        DATA_START + shard as u64 * self.region_size() + slot as u64 * self.segment_size
    }
}

/// What start-up decided about the device.
#[derive(Clone, Debug)]
pub struct PreparedDevice {
    pub path: PathBuf,
    pub geometry: Geometry,
    pub format_id: u64,
    pub is_block_device: bool,
}

#[derive(Debug)]
pub struct DeviceError(pub String);

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeviceError {}

/// A 4 KiB-aligned buffer for O_DIRECT through std I/O.
struct AlignedBlock {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBlock {
    fn new(len: usize) -> AlignedBlock {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("valid layout");
        // SAFETY: layout has non-zero size; zeroed memory is a valid [u8].
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBlock { ptr, layout }
    }
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for layout.size() bytes for the life of self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Opens (creating a file if needed) and sizes the device, reads its
/// superblock and formats it. `size` is the size for a cache file; a block
/// device brings its own.
pub fn prepare(
    path: &Path,
    size: u64,
    segment_size: u64,
    shards: u32,
) -> Result<PreparedDevice, DeviceError> {
    let err = |what: &str, e: io::Error| {
        DeviceError(format!("cache device {}: {what}: {e}", path.display()))
    };
    let meta = std::fs::metadata(path).ok();
    let is_block_device = meta
        .as_ref()
        .is_some_and(|m| m.file_type().is_block_device());
    if !is_block_device && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| err("cannot create its directory", e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(!is_block_device)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| err("cannot open", e))?;
    let device_size = if is_block_device {
        file.seek(SeekFrom::End(0))
            .map_err(|e| err("cannot read its size", e))?
    } else {
        let current = file.metadata().map_err(|e| err("cannot stat", e))?.len();
        if current != size {
            file.set_len(size)
                .map_err(|e| err(&format!("cannot size it to {size} bytes"), e))?;
        }
        preallocate(&file, size)
            .map_err(|e| err(&format!("cannot allocate {size} bytes (disk full?)"), e))?;
        size
    };
    let geometry = Geometry::new(device_size, segment_size, shards)
        .map_err(|e| DeviceError(format!("cache device {} {e}", path.display())))?;

    let mut block = AlignedBlock::new(SUPERBLOCK_SIZE);
    file.seek(SeekFrom::Start(0))
        .map_err(|e| err("cannot seek", e))?;
    file.read_exact(block.bytes())
        .map_err(|e| err("cannot read the superblock", e))?;
    match Superblock::decode(block.bytes()) {
        SuperblockRead::Absent => {
            tracing::info!(path = %path.display(), "formatting a new cache device")
        }
        SuperblockRead::Corrupt => tracing::warn!(
            path = %path.display(),
            "cache superblock checksum is wrong; re-formatting (cached objects are discarded)"
        ),
        SuperblockRead::Valid(old) => tracing::info!(
            path = %path.display(),
            old_shards = old.shards,
            old_segment_size = old.segment_size,
            "re-formatting the cache device (this version starts cold)"
        ),
    }
    let sb = Superblock {
        version: FORMAT_VERSION,
        device_size,
        segment_size,
        shards,
        format_id: random_u64(),
    };
    block.bytes().copy_from_slice(&sb.encode());
    file.seek(SeekFrom::Start(0))
        .map_err(|e| err("cannot seek", e))?;
    file.write_all(block.bytes())
        .map_err(|e| err("cannot write the superblock", e))?;
    file.sync_data()
        .map_err(|e| err("cannot sync the superblock", e))?;
    Ok(PreparedDevice {
        path: path.to_path_buf(),
        geometry,
        format_id: sb.format_id,
        is_block_device,
    })
}

fn preallocate(file: &File, size: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on an owned, open descriptor.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    // Filesystems without fallocate still work, just without the guarantee.
    if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
        return Ok(());
    }
    Err(e)
}

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    xxhash_rust::xxh3::xxh3_64(
        &[t.to_le_bytes(), (std::process::id() as u64).to_le_bytes()].concat(),
    )
}

/// One shard's O_DIRECT handle on the device (any shard may read any region).
pub struct Device {
    file: Rc<DmaFile>,
}

impl Device {
    pub async fn open(path: &Path) -> io::Result<Device> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(|e| io::Error::other(format!("cache device {}: {e}", path.display())))?;
        Ok(Device {
            file: Rc::new(file),
        })
    }

    pub fn alloc(&self, len: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(len)
    }

    pub async fn read(&self, pos: u64, len: usize) -> io::Result<ReadResult> {
        let r = self.file.read_at(pos, len).await.map_err(io::Error::from)?;
        if r.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short read from cache device",
            ));
        }
        Ok(r)
    }

    pub async fn write(&self, buf: Rc<DmaBuffer>, pos: u64) -> io::Result<()> {
        let len = buf.len();
        let n = self
            .file
            .write_rc_at(buf, pos)
            .await
            .map_err(io::Error::from)?;
        if n < len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to cache device",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_splits_regions_and_rejects_small_devices() {
        let g = Geometry::new(DATA_START + 14 * (16 << 20), 16 << 20, 2).unwrap();
        assert_eq!(g.segments_per_region, 7);
        assert_eq!(g.segment_offset(1, 0), DATA_START + 7 * (16 << 20));
        let e = Geometry::new(DATA_START + 11 * (16 << 20), 16 << 20, 2).unwrap_err();
        assert!(
            e.contains("too small") && e.contains("need at least"),
            "{e}"
        );
    }

    #[test]
    fn prepare_creates_sizes_and_formats_a_file() {
        let dir = std::env::temp_dir().join(format!("edgeslab-dev-{}", random_u64()));
        let path = dir.join("c.slab");
        let p = prepare(&path, 16 << 20, 1 << 20, 2).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 << 20);
        assert_eq!(p.geometry.segments_per_region, 7);
        assert!(Geometry::new(16 << 20, 1 << 20, 3).is_err());
        let e = prepare(&path, 8 << 20, 1 << 20, 2).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("too small"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
