//! Shared memory: anonymous `memfd` segments, named POSIX segments and their mappings.
//!
//! # References
//! - [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
//! - [`shm_open(3)`](https://man7.org/linux/man-pages/man3/shm_open.3.html)
//! - [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html),
//!   [`madvise(2)`](https://man7.org/linux/man-pages/man2/madvise.2.html) (`MADV_POPULATE_WRITE`)
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{MemfdFlags, Mode, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm::OFlags;

/// Segments at least this large are pre-faulted when mapped: the first touch of a page
/// otherwise dominates bulk writes (a write fault per 4 KiB page).
const POPULATE_FROM: usize = 64 * 1024;

/// Creates an anonymous segment of `size` bytes (zero-filled), sealed against shrinking and
/// growing so that a mapping of it can never fault with `SIGBUS`.
pub(crate) fn memfd(name: &str, size: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, size)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(fd)
}

/// Creates an anonymous segment of `size` bytes (zero-filled) that may grow but never shrink:
/// a mapping of its first `size` bytes can never fault with `SIGBUS`, and bytes beyond them
/// are reached with [`read_exact_at`] and [`write_all_at`] only.
pub(crate) fn memfd_growable(name: &str, size: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, size)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::SEAL)?;
    Ok(fd)
}

/// Whether `fd` is sealed against shrinking, and against any further seal (a segment made by
/// [`memfd`] or [`memfd_growable`]).
pub(crate) fn is_sealed_against_shrinking(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(SealFlags::SHRINK | SealFlags::SEAL))
}

/// Frees the memory of `len` bytes at `offset` of `fd`, which read as zeros afterwards; the
/// file keeps its size (`fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`).
///
/// # References
/// - [`fallocate(2)`](https://man7.org/linux/man-pages/man2/fallocate.2.html)
pub(crate) fn punch_hole(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    rustix::fs::fallocate(
        fd,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    )?;
    Ok(())
}

/// Whether `fd` is sealed against shrinking and growing (a segment made by [`memfd`]).
pub(crate) fn is_sealed(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(SealFlags::SHRINK | SealFlags::GROW))
}

/// Reads `out.len()` bytes at `offset` of `fd` (`pread`); `Ok(false)` if the file is shorter.
pub(crate) fn read_exact_at(fd: impl AsFd, out: &mut [u8], offset: u64) -> io::Result<bool> {
    let fd = fd.as_fd();
    let mut done = 0;
    while done < out.len() {
        match rustix::io::pread(fd, &mut out[done..], offset + done as u64) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Writes all of `src` at `offset` of `fd` (`pwrite`); the file grows if it is shorter.
pub(crate) fn write_all_at(fd: impl AsFd, src: &[u8], offset: u64) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut done = 0;
    while done < src.len() {
        match rustix::io::pwrite(fd, &src[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether `fd` is a regular file in a `tmpfs` (where `shm_open(3)` and `memfd_create(2)` make
/// their files): memory, not a file on a disk or a device.
pub(crate) fn is_memory_file(fd: impl AsFd) -> io::Result<bool> {
    /// `TMPFS_MAGIC` of `statfs(2)`.
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let fd = fd.as_fd();
    let st = rustix::fs::fstat(fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(false);
    }
    let fs = rustix::fs::fstatfs(fd)?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Ok(fs.f_type as i64 == TMPFS_MAGIC)
}

/// The size in bytes of the file behind `fd`.
pub(crate) fn size_of(fd: impl AsFd) -> io::Result<u64> {
    let st = rustix::fs::fstat(fd)?;
    u64::try_from(st.st_size).map_err(|_| io::Error::other("negative file size"))
}

/// The device and inode numbers of the file behind `fd`: which segment it is, whatever the
/// mapping or descriptor (unique while the file lives, and a segment holds it open).
pub(crate) fn identity(fd: impl AsFd) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// Creates the named segment `/dev/shm/<name>` (exclusively, mode 0600) of `size` bytes.
pub(crate) fn shm_create(name: &str, size: u64) -> io::Result<OwnedFd> {
    let fd = rustix::shm::open(
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
        Mode::RUSR | Mode::WUSR,
    )?;
    if let Err(e) = rustix::fs::ftruncate(&fd, size) {
        let _ = rustix::shm::unlink(name);
        return Err(e.into());
    }
    Ok(fd)
}

/// Opens the existing named segment `/dev/shm/<name>` for reading and writing; returns it with
/// its size.
///
/// Like the C library's `shm_open`, and unlike `rustix::shm::open`, this does not follow a
/// symbolic link (anyone may plant one in `/dev/shm`, pointing at a file of the victim); it
/// also refuses anything but a regular file (a FIFO or device node would not be memory).
pub(crate) fn shm_open(name: &str) -> io::Result<(OwnedFd, u64)> {
    use rustix::fs::OFlags as F;
    let path = format!("/dev/shm/{name}");
    let fd = rustix::fs::open(
        path.as_str(),
        F::RDWR | F::NOFOLLOW | F::CLOEXEC | F::NOCTTY | F::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a symbolic link, not shared memory",
            )
        } else {
            e.into()
        }
    })?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file, not shared memory",
        ));
    }
    let size = u64::try_from(st.st_size).map_err(|_| io::Error::other("negative file size"))?;
    Ok((fd, size))
}

/// Removes the name `/dev/shm/<name>`; mappings and descriptors stay valid.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    Ok(rustix::shm::unlink(name)?)
}

/// A shared, readable and writable mapping of a whole segment; unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Left mapped on drop (see [`Mapping::leak_on_drop`]).
    leak: bool,
}

// SAFETY: the mapping is plain memory owned by this value; which accesses to it are sound is
// decided by the types built on top of it, not by the thread that holds the mapping.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out the address.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd` (`MAP_SHARED`, read and write) for the process that
    /// created the segment, pre-faulting the pages of large segments. `len` must be non-zero
    /// and at most the file size.
    pub(crate) fn new(fd: impl AsFd, len: usize) -> io::Result<Mapping> {
        Self::map(fd, len, len >= POPULATE_FROM)
    }

    /// Maps the first `len` bytes of `fd` for a process that attaches to a segment made by
    /// someone else: no pre-faulting, so that a peer cannot make us commit memory by handing
    /// us a large segment; pages are faulted in as they are touched.
    pub(crate) fn attach(fd: impl AsFd, len: usize) -> io::Result<Mapping> {
        Self::map(fd, len, false)
    }

    fn map(fd: impl AsFd, len: usize, populate: bool) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an empty segment",
            ));
        }
        // SAFETY: a fresh mapping at an address of the kernel's choosing aliases no Rust memory.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let map = Mapping {
            ptr,
            len,
            leak: false,
        };
        if populate {
            // SAFETY: the range is exactly our mapping; populating does not change its contents.
            // Failure (kernels before 5.14) only costs the pre-faulting.
            let _ = unsafe {
                rustix::mm::madvise(
                    ptr.as_ptr().cast(),
                    len,
                    rustix::mm::Advice::LinuxPopulateWrite,
                )
            };
        }
        Ok(map)
    }

    /// Keeps the memory mapped when this value is dropped, for as long as the process lives:
    /// for a segment whose lock may still be linked in the C library's per-thread list of held
    /// robust mutexes (a guard was forgotten), which the C library and the kernel write through.
    pub(crate) fn leak_on_drop(&mut self) {
        self.leak = true;
    }

    /// The first byte of the mapping.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapped length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: we own this mapping and nothing borrowed from it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
