//! The cache device: a file or a raw block device, its preparation at start-up
//! (on the main thread, before any shard runs: sized, superblock read, laid
//! out as `geometry` says or re-formatted) and the per-shard O_DIRECT handle.
//! Only this file and its siblings in `cache::store` touch the device.

use super::faults::Faults;
use super::geometry::{Geometry, TooSmall};
use super::layout::{FORMAT_VERSION, SUPERBLOCK_SIZE, Superblock, SuperblockRead};
use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// An aligned buffer that can be written to the device with O_DIRECT.
pub type IoBuffer = DmaBuffer;

/// Bytes of each shard executor's direct-I/O buffer region
/// (`LocalExecutorBuilder::io_memory`; glommio's default size).
pub const IO_MEMORY: usize = 10 << 20;

/// Bytes read from the device (aligned, without a copy); derefs to `[u8]`.
pub type DeviceBytes = ReadResult;

/// What start-up decided about the device.
#[derive(Clone, Debug)]
pub struct PreparedDevice {
    /// The exclusive lock on the device, held while any clone lives (the
    /// whole life of the process).
    pub lock: std::sync::Arc<std::fs::File>,
    pub path: PathBuf,
    pub geometry: Geometry,
    pub format_id: u64,
    pub is_block_device: bool,
    /// Just formatted: there is nothing to recover.
    pub fresh: bool,
}

/// Why the cache device cannot be used. Each names the path; the kind says
/// what an operator (or a caller) can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not opened: missing permissions, no such device, no directory for a
    /// file, no O_DIRECT.
    #[error("cache device {}: {what}: {source}", path.display())]
    CannotOpen {
        path: PathBuf,
        what: String,
        source: io::Error,
    },
    /// Its size could not be read, or a file could not be sized to
    /// `cache.size` (a full disk, a filesystem limit).
    #[error("cache device {}: {what}: {source}", path.display())]
    CannotSize {
        path: PathBuf,
        what: String,
        source: io::Error,
    },
    /// Another process holds the device (`flock`): a second instance on
    /// the same cache would overwrite the first one's checkpoint.
    #[error(
        "cache device {}: in use by another process{} (one edgeslab per cache device; \
         stop it first, or give this one another cache.path)",
        path.display(),
        holder.map_or(String::new(), |pid| format!(" (pid {pid})"))
    )]
    Locked { path: PathBuf, holder: Option<u32> },
    /// Smaller than the shards need: a larger `cache.size` or device, or
    /// fewer `cores`.
    #[error("cache device {}: {source}", path.display())]
    TooSmall { path: PathBuf, source: TooSmall },
    /// A path where no cache file may be created.
    #[error("cache device {}: {why}", path.display())]
    Path { path: PathBuf, why: String },
    /// Our superblock with a bad checksum: the contents cannot be trusted.
    #[error(
        "cache device {}: the superblock is corrupt (checksum mismatch), so its contents cannot \
         be trusted. To discard the cache and re-format the device, start once with `edgeslab \
         serve --reformat ...` (or set cache.reformat = true)",
        path.display()
    )]
    CorruptSuperblock { path: PathBuf },
    /// Reading or writing the superblock failed.
    #[error("cache device {}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

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

/// What `prepare` needs to know from the configuration.
#[derive(Clone, Debug)]
pub struct DeviceSpec<'a> {
    pub path: &'a Path,
    /// Size of a cache file; a block device brings its own.
    pub size: u64,
    /// The configured segment size; the geometry may use a smaller one (see
    /// `Geometry::new`), and that one is what the device is laid out with.
    pub segment_size: u64,
    pub shards: u32,
    pub avg_object_size: u64,
    /// Discard whatever is on the device.
    pub reformat: bool,
    /// Re-format a device whose superblock is corrupt instead of refusing.
    pub reformat_if_corrupt: bool,
}

/// A cache file is created only where one is meant to be: in a directory
/// that exists (a mistyped path must not grow a directory tree and a
/// full-size file), and never among the device nodes of `/dev`, where a
/// typo in a block device's name would otherwise become a file in RAM.
pub fn check_file_path(path: &Path) -> Result<(), DeviceError> {
    let refuse = |why: String| DeviceError::Path {
        path: path.to_path_buf(),
        why,
    };
    if path.starts_with("/dev") {
        return Err(refuse(
            "is under /dev but is not a block device (a typo in the device name?)".into(),
        ));
    }
    if path.exists() {
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(refuse(format!(
            "the directory {} does not exist (create it, or correct cache.path)",
            parent.display()
        )));
    }
    Ok(())
}

/// Opens (creating a file if needed) and sizes the device, reads its
/// superblock, and either adopts the device as it is laid out or formats it,
/// saying why in the log. A corrupt superblock is an error unless `reformat`.
/// Takes the device's exclusive `flock` (held by a duplicate of the
/// descriptor for the life of the process), or names the holder's pid.
fn lock_exclusive(
    file: std::fs::File,
    path: &Path,
) -> Result<std::sync::Arc<std::fs::File>, DeviceError> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(DeviceError::Locked {
                path: path.to_path_buf(),
                holder: lock_holder(&file),
            });
        }
        return Err(DeviceError::CannotOpen {
            path: path.to_path_buf(),
            what: "cannot lock".into(),
            source: e,
        });
    }
    Ok(std::sync::Arc::new(file))
}

/// The pid holding a `flock` on `file`, from /proc/locks (`FLOCK ADVISORY
/// WRITE pid maj:min:inode …`).
fn lock_holder(file: &std::fs::File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let id = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

pub fn prepare(spec: &DeviceSpec<'_>) -> Result<PreparedDevice, DeviceError> {
    let path = spec.path;
    let open_err = |what: &str, source: io::Error| DeviceError::CannotOpen {
        path: path.to_path_buf(),
        what: what.to_string(),
        source,
    };
    let size_err = |what: String, source: io::Error| DeviceError::CannotSize {
        path: path.to_path_buf(),
        what,
        source,
    };
    let io_err = |what: &'static str| {
        move |source: io::Error| DeviceError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let meta = std::fs::metadata(path).ok();
    let is_block_device = meta
        .as_ref()
        .is_some_and(|m| m.file_type().is_block_device());
    if !is_block_device {
        check_file_path(path)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(!is_block_device)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| open_err("cannot open", e))?;
    // Before anything is read, sized or written: one process per device.
    // The lock has a descriptor of its own, kept for life (O_DIRECT like
    // every descriptor of the device, though it never reads).
    let lock_fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| open_err("cannot open to lock", e))?;
    let lock = lock_exclusive(lock_fd, path)?;
    let device_size = if is_block_device {
        file.seek(SeekFrom::End(0))
            .map_err(|e| size_err("cannot read its size".into(), e))?
    } else {
        let current = file
            .metadata()
            .map_err(|e| size_err("cannot stat".into(), e))?
            .len();
        if current != spec.size {
            file.set_len(spec.size)
                .map_err(|e| size_err(format!("cannot size it to {} bytes", spec.size), e))?;
        }
        preallocate(&file, spec.size).map_err(|e| {
            size_err(
                format!("cannot allocate {} bytes (disk full?)", spec.size),
                e,
            )
        })?;
        spec.size
    };
    let geometry = Geometry::new(
        device_size,
        spec.segment_size,
        spec.shards,
        spec.avg_object_size,
    )
    .map_err(|source| DeviceError::TooSmall {
        path: path.to_path_buf(),
        source,
    })?;
    if geometry.segment_size != spec.segment_size {
        log_shrunk_segments(spec, &geometry);
    }

    let mut block = AlignedBlock::new(SUPERBLOCK_SIZE);
    file.seek(SeekFrom::Start(0))
        .map_err(io_err("cannot seek"))?;
    file.read_exact(block.bytes())
        .map_err(io_err("cannot read the superblock"))?;
    let wanted = geometry.superblock(0);
    match Superblock::decode(block.bytes()) {
        SuperblockRead::Valid(old) if !spec.reformat => {
            let differences = old.differences(&wanted);
            if differences.is_empty() {
                tracing::info!(path = %path.display(), "cache device adopted: same layout, recovering its objects");
                return Ok(PreparedDevice {
                    lock,
                    path: path.to_path_buf(),
                    geometry,
                    format_id: old.format_id,
                    is_block_device,
                    fresh: false,
                });
            }
            tracing::warn!(
                path = %path.display(),
                changed = %differences.join(", "),
                "cache device was laid out differently; re-formatting it (cached objects are dropped)"
            );
        }
        SuperblockRead::Valid(_) => {
            tracing::warn!(path = %path.display(), "re-formatting the cache device as asked")
        }
        SuperblockRead::OtherVersion(v) => tracing::warn!(
            path = %path.display(),
            changed = %format!("format version {v} -> {FORMAT_VERSION}"),
            "cache device was laid out differently; re-formatting it (cached objects are dropped)"
        ),
        SuperblockRead::Corrupt if !spec.reformat && !spec.reformat_if_corrupt => {
            return Err(DeviceError::CorruptSuperblock {
                path: path.to_path_buf(),
            });
        }
        SuperblockRead::Corrupt => {
            tracing::warn!(path = %path.display(), "re-formatting a cache device with a corrupt superblock")
        }
        SuperblockRead::Absent => {
            tracing::info!(path = %path.display(), "formatting a new cache device")
        }
    }
    let sb = geometry.superblock(random_u64());
    block.bytes().fill(0);
    block.bytes()[..SUPERBLOCK_SIZE].copy_from_slice(&sb.encode());
    file.seek(SeekFrom::Start(0))
        .map_err(io_err("cannot seek"))?;
    file.write_all(block.bytes())
        .map_err(io_err("cannot write the superblock"))?;
    file.sync_data()
        .map_err(io_err("cannot sync the superblock"))?;
    Ok(PreparedDevice {
        lock,
        path: path.to_path_buf(),
        geometry,
        format_id: sb.format_id,
        is_block_device,
        fresh: true,
    })
}

/// Says once, at start-up, that the device is laid out with smaller segments
/// than configured, and why, so an operator who reads
/// `cache.segment_size = "16MiB"` is not surprised by 4 MiB segments.
fn log_shrunk_segments(spec: &DeviceSpec<'_>, geometry: &Geometry) {
    use crate::config::Size;
    let configured = spec.segment_size;
    let left = Geometry::segments_that_fit(
        geometry.device_size,
        configured,
        spec.shards,
        spec.avg_object_size,
    );
    tracing::warn!(
        path = %spec.path.display(),
        configured_segment_size = configured,
        segment_size = geometry.segment_size,
        "cache.segment_size {} leaves {left} segment(s) per shard on a {} cache with {} shard(s) \
         (at least {} needed); using {} segments",
        Size(configured),
        Size(geometry.device_size),
        spec.shards,
        Geometry::MIN_SEGMENTS,
        Size(geometry.segment_size),
    );
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
    /// Alignment of direct reads: the larger of glommio's and the device's
    /// logical block size.
    alignment: u64,
    faults: Faults,
}

/// The logical block size of a block device (BLKSSZGET).
fn logical_block_size(fd: std::os::fd::RawFd) -> io::Result<u64> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer we pass.
    let rc = unsafe { libc::ioctl(fd, libc::BLKSSZGET, &mut size) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size.max(512) as u64)
}

impl Device {
    pub async fn open(path: &Path) -> Result<Device, DeviceError> {
        use std::os::fd::AsRawFd;
        let err = |what: &str, source: io::Error| DeviceError::CannotOpen {
            path: path.to_path_buf(),
            what: what.to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(|e| err("cannot open for direct I/O", e.into()))?;
        let mut alignment = file.alignment();
        let is_block = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
        if is_block {
            // glommio decides on direct I/O from the filesystem that holds the
            // path, and a device node lives on devtmpfs (which it takes for
            // tmpfs): ask for O_DIRECT here, and align to the device itself.
            let fd = file.as_raw_fd();
            // SAFETY: fcntl on a descriptor we own.
            let ok = unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) == 0
            };
            if !ok {
                return Err(err("cannot enable O_DIRECT", io::Error::last_os_error()));
            }
            let block =
                logical_block_size(fd).map_err(|e| err("cannot read its logical block size", e))?;
            alignment = alignment.max(block);
        }
        let device = Device {
            file: Rc::new(file),
            alignment,
            faults: Faults::from_env(),
        };
        device.touch_io_memory();
        Ok(device)
    }

    /// Makes the shard's I/O memory resident now. glommio carves direct-I/O
    /// buffers out of one region per executor (`IO_MEMORY` bytes,
    /// registered with the ring), allocated whole at start but resident only
    /// as its pages are first written. Left alone, the resident set would
    /// step up whenever a rare overlap of segment flushes and chunk reads
    /// first reached a new part of it, hours into a run; touched here, it is
    /// resident from the start and stays flat. Blocks are taken until the
    /// region is spent (the last ones come from the heap instead, and are
    /// freed with the rest).
    fn touch_io_memory(&self) {
        const BLOCK: usize = 64 << 10;
        let mut held = Vec::with_capacity(IO_MEMORY / BLOCK + 1);
        while held.len() * BLOCK <= IO_MEMORY {
            let mut b = self.alloc(BLOCK);
            b.as_bytes_mut().fill(0);
            held.push(b);
        }
    }

    pub fn alloc(&self, len: usize) -> IoBuffer {
        self.file.alloc_dma_buffer(len)
    }

    pub async fn read(&self, pos: u64, len: usize) -> io::Result<DeviceBytes> {
        self.faults.on_read()?;
        let start = pos / self.alignment * self.alignment;
        let end = (pos + len as u64).div_ceil(self.alignment) * self.alignment;
        let r = self
            .file
            .read_at_aligned(start, (end - start) as usize)
            .await
            .map_err(io::Error::from)?;
        let skip = (pos - start) as usize;
        if r.len() < skip + len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short read from cache device",
            ));
        }
        ReadResult::slice(&r, skip, len)
            .ok_or_else(|| io::Error::other("read result slice out of range"))
    }

    pub async fn write(&self, buf: Rc<IoBuffer>, pos: u64) -> io::Result<()> {
        self.faults.on_write()?;
        if let Some(delay) = self.faults.write_delay() {
            glommio::timer::sleep(delay).await;
        }
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

    /// Makes completed writes durable.
    pub async fn sync(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &Path, size: u64, shards: u32) -> DeviceSpec<'_> {
        DeviceSpec {
            path,
            size,
            segment_size: 1 << 20,
            shards,
            avg_object_size: 4096,
            reformat: false,
            reformat_if_corrupt: false,
        }
    }

    #[test]
    fn prepare_formats_adopts_and_reformats_on_change() {
        let dir = std::env::temp_dir().join(format!("edgeslab-dev-{}", random_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.slab");
        let p = prepare(&spec(&path, 32 << 20, 2)).unwrap();
        assert!(p.fresh);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32 << 20);
        // A device is held by one PreparedDevice at a time (its lock).
        let e = prepare(&spec(&path, 32 << 20, 2)).unwrap_err();
        assert!(
            matches!(e, DeviceError::Locked { holder: Some(pid), .. } if pid == std::process::id()),
            "{e:?}"
        );
        assert!(e.to_string().contains("in use by another process"), "{e}");
        let first_id = p.format_id;
        drop(p);
        let again = prepare(&spec(&path, 32 << 20, 2)).unwrap();
        assert!(!again.fresh, "same layout is adopted");
        assert_eq!(again.format_id, first_id);
        drop(again);
        let changed = prepare(&spec(&path, 32 << 20, 1)).unwrap();
        assert!(changed.fresh, "a new shard count re-formats");
        assert_ne!(changed.format_id, first_id);
        drop(changed);
        let e = prepare(&spec(&path, 8 << 20, 2)).unwrap_err();
        assert!(matches!(e, DeviceError::TooSmall { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("too small"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn shrunk_segments_are_recorded_and_adopted_on_restart() {
        let dir = std::env::temp_dir().join(format!("edgeslab-dev-{}", random_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.slab");
        let sixteen = DeviceSpec {
            segment_size: 16 << 20,
            ..spec(&path, 32 << 20, 2)
        };
        let p = prepare(&sixteen).unwrap();
        assert!(p.fresh);
        assert!(p.geometry.segment_size < 16 << 20, "{:?}", p.geometry);
        let mut block = vec![0u8; SUPERBLOCK_SIZE];
        File::open(&path).unwrap().read_exact(&mut block).unwrap();
        match Superblock::decode(&block) {
            SuperblockRead::Valid(sb) => assert_eq!(sb.segment_size, p.geometry.segment_size),
            other => panic!("{other:?}"),
        }
        let (id, geometry) = (p.format_id, p.geometry);
        drop(p);
        let again = prepare(&sixteen).unwrap();
        assert!(!again.fresh, "the same config adopts the shrunk layout");
        assert_eq!(again.format_id, id);
        assert_eq!(again.geometry, geometry);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_superblock_is_an_error_that_says_how_to_reformat() {
        let dir = std::env::temp_dir().join(format!("edgeslab-dev-{}", random_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.slab");
        prepare(&spec(&path, 32 << 20, 1)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        let e = prepare(&spec(&path, 32 << 20, 1)).unwrap_err();
        assert!(matches!(e, DeviceError::CorruptSuperblock { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("corrupt") && e.contains("--reformat"), "{e}");
        let tolerant = prepare(&DeviceSpec {
            reformat_if_corrupt: true,
            ..spec(&path, 32 << 20, 1)
        })
        .unwrap();
        assert!(tolerant.fresh);
        drop(tolerant);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] = 1; // an older format version
        std::fs::write(&path, &bytes).unwrap();
        let older = prepare(&spec(&path, 32 << 20, 1)).unwrap();
        assert!(older.fresh, "another version re-formats");
        drop(older);
        let forced = prepare(&DeviceSpec {
            reformat: true,
            ..spec(&path, 32 << 20, 1)
        })
        .unwrap();
        assert!(forced.fresh);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
