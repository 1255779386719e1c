//! Files for the RAM tier's chunks, so that a hit lends their pages to the
//! viewer's socket (sendfile) instead of copying the bytes into it. On
//! loopback the copy was half of a large hit's time (`_copy_from_iter`).
//!
//! Each chunk is a file of its own, unlinked from the start, written once
//! and never again; its pages outlive it for as long as a socket still
//! holds them, so a chunk dropped from the tier while a response is sending
//! it never changes the bytes in flight.
//!
//! Where the files live decides what a lent page costs. In a private tmpfs
//! mounted with `huge=within_size` (made with the new mount API, attached
//! to no path, so nothing is left behind; it needs CAP_SYS_ADMIN), a
//! megabyte chunk is one large folio, and sending it takes a reference per
//! folio. Elsewhere a chunk is a memfd of 4 KiB pages, unless the host's
//! `/sys/kernel/mm/transparent_hugepage/shmem_enabled` allows large ones: a
//! reference and a page-cache lookup per page, measured at 1.5 times the
//! large folio's cost per megabyte and still below the copy's.
//!
//! Every chunk file holds a descriptor; they are bounded by a quarter of
//! the process's descriptor limit, beyond which chunks are held in
//! anonymous memory and copied as before.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Where chunk files are made.
#[derive(Debug)]
pub enum Backing {
    /// In a private tmpfs of large folios: the mount's descriptor.
    LargeFolios(OwnedFd),
    /// memfd_create(2): the host's shmem page size.
    Memfd,
}

impl Backing {
    pub fn kind(&self) -> BackingKind {
        match self {
            Backing::LargeFolios(_) => BackingKind::LargeFolios,
            Backing::Memfd => BackingKind::Memfd,
        }
    }
}

/// What `Backing` is in use, as logs and metrics show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackingKind {
    LargeFolios,
    Memfd,
}

impl BackingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackingKind::LargeFolios => "large_folios",
            BackingKind::Memfd => "memfd",
        }
    }
}

// From linux/mount.h (the libc crate has the system call numbers only).
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

/// A tmpfs of large folios, mounted nowhere: its descriptor.
fn private_tmpfs() -> io::Result<OwnedFd> {
    let owned = |r: libc::c_long| -> io::Result<OwnedFd> {
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the call returned a new descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    };
    // SAFETY: fsopen with a NUL-terminated name and flags.
    let fs = owned(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    let set = |key: &std::ffi::CStr, value: &std::ffi::CStr| -> io::Result<()> {
        // SAFETY: fsconfig on our context with NUL-terminated strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    set(c"huge", c"within_size")?;
    set(c"mode", c"0700")?;
    // SAFETY: fsconfig's create command takes no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsmount on the created context.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })
}

/// The process's backing, chosen on first use and logged.
pub fn backing() -> &'static Backing {
    static BACKING: OnceLock<Backing> = OnceLock::new();
    BACKING.get_or_init(|| {
        let b = match private_tmpfs() {
            Ok(fd) => Backing::LargeFolios(fd),
            Err(e) => {
                tracing::info!(
                    "RAM chunks in memfd pages: no private tmpfs of large folios ({e}; it needs CAP_SYS_ADMIN)"
                );
                Backing::Memfd
            }
        };
        tracing::debug!(backing = b.kind().as_str(), "RAM chunk files");
        b
    })
}

/// Chunk files open now, and at most.
static OPEN: AtomicUsize = AtomicUsize::new(0);

fn most_open() -> usize {
    static MOST: OnceLock<usize> = OnceLock::new();
    *MOST.get_or_init(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills the struct we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return 0;
        }
        (lim.rlim_cur.min(1 << 20) / 4) as usize
    })
}

/// A chunk's bytes in a file of their own (see the module's notes).
pub struct ChunkFile {
    file: File,
}

impl ChunkFile {
    /// A file holding `bytes`; None when the descriptor budget is spent or
    /// the system refuses (the caller then holds them in memory).
    pub fn holding(bytes: &[u8]) -> Option<ChunkFile> {
        if OPEN.fetch_add(1, Relaxed) >= most_open() {
            OPEN.fetch_sub(1, Relaxed);
            return None;
        }
        // Counted from here: dropping it uncounts it, whatever fails.
        let file = ChunkFile {
            file: new_file(backing()).ok()?,
        };
        file.file.set_len(bytes.len() as u64).ok()?;
        file.file.write_all_at(bytes, 0).ok()?;
        Some(file)
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for ChunkFile {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Relaxed);
    }
}

fn new_file(backing: &Backing) -> io::Result<File> {
    let fd = match backing {
        // SAFETY: openat on the mount's root with a NUL-terminated path.
        Backing::LargeFolios(mount) => unsafe {
            libc::openat(
                mount.as_raw_fd(),
                c".".as_ptr(),
                libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                0o600,
            )
        },
        // SAFETY: memfd_create with a NUL-terminated name.
        Backing::Memfd => unsafe {
            libc::memfd_create(c"edgeslab-chunk".as_ptr(), libc::MFD_CLOEXEC)
        },
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_chunk_file_holds_its_bytes_on_either_backing() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for backing in [
            private_tmpfs().map(Backing::LargeFolios),
            Ok(Backing::Memfd),
        ] {
            // Without CAP_SYS_ADMIN there is no private tmpfs to try.
            let Ok(backing) = backing else { continue };
            let file = new_file(&backing).expect("a chunk file");
            file.set_len(bytes.len() as u64).unwrap();
            file.write_all_at(&bytes, 0).unwrap();
            let mut back = vec![0u8; bytes.len()];
            file.read_exact_at(&mut back, 0).unwrap();
            assert!(back == bytes, "{:?}", backing.kind());
        }
    }

    #[test]
    fn a_chunk_file_is_as_long_as_its_bytes() {
        let f = ChunkFile::holding(&[1u8; 8192]).expect("a chunk file");
        assert_eq!(f.file().metadata().unwrap().len(), 8192);
        let mut b = [0u8; 4];
        f.file().read_exact_at(&mut b, 8188).unwrap();
        assert_eq!(b, [1; 4]);
    }
}
