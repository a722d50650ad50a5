//! [`SharedMemory`]: named segments that Python's `multiprocessing.shared_memory` can open.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sys::memfd::{self, Mapping};

/// The most bytes a name may have (`NAME_MAX`, without the leading slash).
const NAME_MAX: usize = 255;

/// Why a [`SharedMemory`] could not be created, opened or unlinked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharedMemoryError {
    /// The name is empty, too long, or contains `/` (after an optional leading one) or NUL.
    #[error("invalid shared memory name {0:?}")]
    InvalidName(String),
    /// A size of zero was asked for, or the segment to open is empty.
    #[error("a shared memory segment must not be empty")]
    EmptySize,
    /// `create` found the name taken.
    #[error("shared memory {0:?} already exists")]
    AlreadyExists(String),
    /// `open` or `unlink` found no segment of that name.
    #[error("no shared memory named {0:?}")]
    NotFound(String),
    /// The name now names another segment than this handle's (it was unlinked and created
    /// again, or a received handle claimed a name that is not its own): `unlink` leaves it
    /// alone, and a received handle is refused.
    #[error("shared memory {0:?} is another segment now")]
    Replaced(String),
    /// Another failure of the system (permissions, memory, descriptors).
    #[error("shared memory {name:?}")]
    Os {
        /// The segment's name.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl SharedMemoryError {
    fn from_io(name: &str, e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::AlreadyExists => SharedMemoryError::AlreadyExists(name.to_owned()),
            io::ErrorKind::NotFound => SharedMemoryError::NotFound(name.to_owned()),
            _ => SharedMemoryError::Os {
                name: name.to_owned(),
                source: e,
            },
        }
    }
}

/// Checks a name and returns it without its leading slash, as Python's `SharedMemory.name`.
fn normalize(name: &str) -> Result<&str, SharedMemoryError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.len() > NAME_MAX || bare.contains(['/', '\0']) {
        return Err(SharedMemoryError::InvalidName(name.to_owned()));
    }
    Ok(bare)
}

/// Whether `/dev/shm/<name>` is the file behind `fd` (the same device and inode). An error
/// when there is no such name ([`io::ErrorKind::NotFound`]) or it cannot be opened.
fn names_segment(name: &str, fd: &OwnedFd) -> io::Result<bool> {
    let (named, _) = memfd::shm_open(name)?;
    Ok(memfd::identity(&named)? == memfd::identity(fd)?)
}

/// A name like Python's: `psm_` and 8 hexadecimal digits.
fn generated_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState's keys are random per process (and differ per instance); no system call.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("psm_{:08x}", h.finish() as u32)
}

/// How to create or open a [`SharedMemory`], in memmap2's builder style.
///
/// # Examples
///
/// ```
/// use multiproc::shm::SharedMemory;
///
/// let name = format!("doc_opts_{}", std::process::id());
/// let a = SharedMemory::options().size(4096).create(&name).unwrap();
/// let b = SharedMemory::options().open(&name).unwrap();
/// assert_eq!(b.size(), 4096);
/// # drop(b);
/// a.unlink().unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedMemoryOptions {
    size: usize,
    keep: bool,
}

impl SharedMemoryOptions {
    /// The size in bytes of a segment to create (required, non-zero).
    pub fn size(&mut self, size: usize) -> &mut Self {
        self.size = size;
        self
    }

    /// Whether the name outlives the creating handle. By default (`false`) dropping the
    /// handle that created the segment unlinks its name; with `true` the name stays until
    /// someone calls [`SharedMemory::unlink`], as in Python.
    pub fn keep(&mut self, keep: bool) -> &mut Self {
        self.keep = keep;
        self
    }

    /// Creates the segment `name` (exclusively: an existing name is an error), zero-filled.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::InvalidName`], [`SharedMemoryError::EmptySize`],
    /// [`SharedMemoryError::AlreadyExists`], or [`SharedMemoryError::Os`].
    pub fn create(&self, name: &str) -> Result<SharedMemory, SharedMemoryError> {
        let name = normalize(name)?;
        if self.size == 0 {
            return Err(SharedMemoryError::EmptySize);
        }
        let fd = memfd::shm_create(name, self.size as u64)
            .map_err(|e| SharedMemoryError::from_io(name, e))?;
        let map = match Mapping::new(&fd, self.size) {
            Ok(map) => map,
            Err(e) => {
                let _ = memfd::shm_unlink(name);
                return Err(SharedMemoryError::from_io(name, e));
            }
        };
        Ok(SharedMemory {
            name: name.to_owned(),
            fd,
            map,
            unlink_on_drop: AtomicBool::new(!self.keep),
        })
    }

    /// Creates a segment under a fresh name like Python's (`psm_` and 8 hex digits).
    ///
    /// # Errors
    ///
    /// As for [`create`](Self::create), except that a taken name is retried.
    pub fn create_unique(&self) -> Result<SharedMemory, SharedMemoryError> {
        loop {
            match self.create(&generated_name()) {
                Err(SharedMemoryError::AlreadyExists(_)) => continue,
                other => return other,
            }
        }
    }

    /// Opens the existing segment `name`, whatever its creator (this crate, Python, C).
    /// The size is the segment's current size; the `size` option is ignored.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::InvalidName`], [`SharedMemoryError::NotFound`],
    /// [`SharedMemoryError::EmptySize`] or [`SharedMemoryError::Os`]. A symbolic link in
    /// `/dev/shm` is not followed, and anything but a regular file is refused
    /// ([`SharedMemoryError::Os`]), as the C library's `shm_open` does.
    pub fn open(&self, name: &str) -> Result<SharedMemory, SharedMemoryError> {
        let name = normalize(name)?;
        let (fd, size) = memfd::shm_open(name).map_err(|e| SharedMemoryError::from_io(name, e))?;
        let size = usize::try_from(size).map_err(|_| SharedMemoryError::EmptySize)?;
        if size == 0 {
            return Err(SharedMemoryError::EmptySize);
        }
        let map = Mapping::attach(&fd, size).map_err(|e| SharedMemoryError::from_io(name, e))?;
        Ok(SharedMemory {
            name: name.to_owned(),
            fd,
            map,
            unlink_on_drop: AtomicBool::new(false),
        })
    }
}

/// A named shared-memory segment, like Python's `multiprocessing.shared_memory.SharedMemory`:
/// a Rust process and a Python process can share its bytes.
///
/// Names are Python's: `SharedMemory::create(n)` picks `psm_` and 8 hex digits, and
/// [`name`](SharedMemory::name) has no leading slash, so it can be passed to Python's
/// `SharedMemory(name)` as is. The segment is `/dev/shm/<name>`, created with mode 0600. Its
/// bytes are all yours: unlike this crate's anonymous segments it carries no header, because
/// Python would see it.
///
/// # Lifetime of the name
///
/// A named segment outlives the processes using it until its name is unlinked. The handle
/// that created a segment unlinks the name when it is dropped, unless it was created with
/// [`keep(true)`](SharedMemoryOptions::keep); handles that opened it never do. A creator killed
/// with `SIGKILL` cannot unlink anything: prefer [`Array`](crate::shm::Array) or
/// [`RawArray`](crate::shm::RawArray) (anonymous, freed by the kernel) unless you need a name.
///
/// # Access
///
/// The bytes can change at any moment under another process, and a named segment cannot be
/// sealed against resizing (unlike this crate's anonymous ones): another process that opens
/// it may shrink it (`ftruncate`), and touching a mapping past the new end faults with
/// `SIGBUS`. So safe access copies through the descriptor, in the kernel:
/// [`read_at`](SharedMemory::read_at) and [`write_at`](SharedMemory::write_at) (`pread(2)`
/// and `pwrite(2)`) report a shrunk segment as an error and are no data race with other
/// threads. That has a price (`cargo bench --bench shm`, group `shared_memory`; on a 2-vCPU
/// VM, 2026-12-01): about 1 µs for a small `read_at` and 3 µs for a small `write_at` (which
/// also checks the size), and 1.4–2 GiB/s for 80 MB copies, where a `memcpy` ran at 6 GiB/s.
/// For bulk data that only Rust processes share, an [`Array`](crate::shm::Array) or
/// [`RawArray`](crate::shm::RawArray) (sealed, copied at memory speed) is the faster home.
/// Access through the mapping is the `unsafe` escape hatch: [`as_ptr`](SharedMemory::as_ptr),
/// [`as_slice`](SharedMemory::as_slice) and [`as_mut_slice`](SharedMemory::as_mut_slice),
/// whose callers promise that nobody shrinks the segment or writes it concurrently.
///
/// A handle received in a message (see the `Serialize` impl) is checked before it is used:
/// its descriptor must be shared memory, and its name must name that very segment or nothing.
///
/// # Examples
///
/// ```
/// use multiproc::shm::SharedMemory;
///
/// let shm = SharedMemory::create(10).unwrap();          // SharedMemory(create=True, size=10)
/// assert!(shm.name().starts_with("psm_"));
/// shm.write_at(0, b"hello").unwrap();
///
/// let other = SharedMemory::open(shm.name()).unwrap();   // SharedMemory(name)
/// let mut buf = [0u8; 5];
/// other.read_at(0, &mut buf).unwrap();
/// assert_eq!(&buf, b"hello");
/// drop(other);                                            // close()
/// shm.unlink().unwrap();                                  // unlink()
/// ```
pub struct SharedMemory {
    name: String,
    fd: OwnedFd,
    map: Mapping,
    /// Whether dropping this handle unlinks the name: set for a creator without `keep`, cleared
    /// once the name is known to be gone (so that a later segment of the same name is safe).
    unlink_on_drop: AtomicBool,
}

impl SharedMemory {
    /// Options for creating or opening a segment.
    pub fn options() -> SharedMemoryOptions {
        SharedMemoryOptions::default()
    }

    /// Creates a zero-filled segment of `size` bytes under a fresh name (`psm_` and 8 hex
    /// digits); the name is unlinked when this handle is dropped.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::EmptySize`] for a size of 0; [`SharedMemoryError::Os`].
    pub fn create(size: usize) -> Result<Self, SharedMemoryError> {
        Self::options().size(size).create_unique()
    }

    /// Opens the existing segment `name` (with or without a leading slash).
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::NotFound`] and the others of [`SharedMemoryOptions::open`].
    pub fn open(name: &str) -> Result<Self, SharedMemoryError> {
        Self::options().open(name)
    }

    /// The name, without a leading slash (what Python's `SharedMemory(name)` takes).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes, as mapped when this handle was made (another process may shrink the
    /// segment since: [`read_at`](Self::read_at) and [`write_at`](Self::write_at) report it).
    pub fn size(&self) -> usize {
        self.map.len()
    }

    /// Copies bytes `offset..offset + out.len()` into `out`.
    ///
    /// The copy is made by the kernel (`pread(2)` on the segment's descriptor), not through
    /// the mapping: a segment that another process shrank (`ftruncate`) gives an error here
    /// instead of a `SIGBUS`, and the copy is no data race with another thread's
    /// [`write_at`](Self::write_at). Bytes that another process writes at the same time may
    /// arrive partly old and partly new; order them with a lock or an event of your own.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`](crate::shm::OutOfBounds) when the range passes the end, with `len` the
    /// size: the handle's [`size`](Self::size), or the segment's current size if another
    /// process shrank it below the range.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> Result<(), crate::shm::OutOfBounds> {
        let end = self.check_range(offset, out.len())?;
        match memfd::read_exact_at(&self.fd, out, offset as u64) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(self.shrunk(end)),
        }
    }

    /// Copies `src` into bytes `offset..offset + src.len()`.
    ///
    /// The copy is made by the kernel (`pwrite(2)`), as for [`read_at`](Self::read_at). If
    /// another process shrinks the segment below the range, this is an error; if it shrinks it
    /// just while the write runs, the write can grow the segment back (with zeros up to
    /// `offset`), which is as much as a co-tenant that resizes the segment can expect.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`](crate::shm::OutOfBounds) as for [`read_at`](Self::read_at).
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<(), crate::shm::OutOfBounds> {
        let end = self.check_range(offset, src.len())?;
        if memfd::size_of(&self.fd).is_ok_and(|size| size >= end as u64)
            && memfd::write_all_at(&self.fd, src, offset as u64).is_ok()
        {
            return Ok(());
        }
        Err(self.shrunk(end))
    }

    /// The end of `offset..offset + len`, if it lies within the handle's size.
    fn check_range(&self, offset: usize, len: usize) -> Result<usize, crate::shm::OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => Ok(end),
            _ => Err(crate::shm::OutOfBounds {
                index: offset.saturating_add(len),
                len: self.size(),
            }),
        }
    }

    /// The error for a range ending at `end` that the segment no longer holds.
    fn shrunk(&self, end: usize) -> crate::shm::OutOfBounds {
        let now = memfd::size_of(&self.fd).map_or(0, |s| usize::try_from(s).unwrap_or(usize::MAX));
        crate::shm::OutOfBounds {
            index: end,
            len: now.min(self.size()),
        }
    }

    /// The address of the first byte in this process's mapping (Python's `buf`).
    #[doc(alias = "buf")]
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.ptr()
    }

    /// Removes the name, so that nobody can open the segment any more; mappings stay valid
    /// until closed. Python: `unlink()`.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::NotFound`] when the name is already gone.
    pub fn unlink(&self) -> Result<(), SharedMemoryError> {
        let r = self.unlink_if_mine();
        if matches!(
            r,
            Ok(()) | Err(SharedMemoryError::NotFound(_) | SharedMemoryError::Replaced(_))
        ) {
            self.unlink_on_drop.store(false, Ordering::Relaxed);
        }
        r
    }

    /// Removes the name if it still names this handle's segment.
    ///
    /// Between the check and the removal, only a process allowed to remove the file (in the
    /// sticky `/dev/shm`: its owner) could put another file under the name.
    fn unlink_if_mine(&self) -> Result<(), SharedMemoryError> {
        let err = |e| SharedMemoryError::from_io(&self.name, e);
        if !names_segment(&self.name, &self.fd).map_err(err)? {
            return Err(SharedMemoryError::Replaced(self.name.clone()));
        }
        memfd::shm_unlink(&self.name).map_err(err)
    }

    /// Closes this handle: unmaps the segment and closes its descriptor (the same as dropping
    /// it). Python: `close()`.
    pub fn close(self) {}

    pub(crate) fn map(&self) -> &Mapping {
        &self.map
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        if *self.unlink_on_drop.get_mut() {
            let _ = self.unlink_if_mine();
        }
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    #[serde(serialize_with = "ser_fd")]
    fd: BorrowedFd<'a>,
    name: &'a str,
}

fn ser_fd<S: Serializer>(fd: &BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    crate::codec::serialize_fd(*fd, s)
}

#[derive(Deserialize)]
struct Wire {
    #[serde(deserialize_with = "crate::codec::deserialize_fd")]
    fd: OwnedFd,
    name: String,
}

/// Sends the segment's descriptor and name: the receiver maps the same segment (even if the
/// name was unlinked meanwhile) and never unlinks it on drop.
impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireRef {
            fd: self.fd.as_fd(),
            name: &self.name,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let fail = |e: io::Error| D::Error::custom(crate::codec::reason(e.to_string()));
        let refuse = |why: String| D::Error::custom(crate::codec::reason(why));
        // What the sender says is checked before anything is mapped: the descriptor must be
        // memory (a tmpfs file, as `shm_open` makes), and the name must be a valid one that
        // names this very segment, or nothing (the sender may have unlinked it): a sender
        // cannot make `unlink` remove somebody else's segment.
        let name = normalize(&w.name)
            .map_err(|e| refuse(e.to_string()))?
            .to_owned();
        if !memfd::is_memory_file(&w.fd).map_err(fail)? {
            return Err(refuse(format!(
                "the descriptor received as shared memory {name:?} is not shared memory"
            )));
        }
        match names_segment(&name, &w.fd) {
            Ok(true) => {}
            Ok(false) => return Err(refuse(SharedMemoryError::Replaced(name).to_string())),
            // Unlinked by now, or a name this process may not open: nothing to confuse it
            // with (and `unlink` checks again).
            Err(_) => {}
        }
        let size = memfd::size_of(&w.fd).map_err(fail)?;
        let size =
            usize::try_from(size).map_err(|_| fail(io::Error::other("segment too large")))?;
        let map = Mapping::attach(&w.fd, size).map_err(fail)?;
        Ok(SharedMemory {
            name,
            fd: w.fd,
            map,
            unlink_on_drop: AtomicBool::new(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_normalised() {
        assert_eq!(normalize("/psm_12345678").unwrap(), "psm_12345678");
        assert!(normalize("").is_err());
        assert!(normalize("/").is_err());
        assert!(normalize("a/b").is_err());
        assert!(normalize("a\0b").is_err());
        assert!(normalize(&"x".repeat(256)).is_err());
        let g = generated_name();
        assert_eq!(g.len(), 12);
        assert!(g.starts_with("psm_"));
        assert!(g[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn unlinked_creator_leaves_a_new_segment_of_the_same_name_alone() {
        let name = format!("mp_test_{}_reuse", std::process::id());
        let first = SharedMemory::options().size(64).create(&name).unwrap();
        first.unlink().unwrap();
        let second = SharedMemory::options()
            .size(64)
            .keep(true)
            .create(&name)
            .unwrap();
        drop(first); // must not unlink `second`'s name
        let third = SharedMemory::open(&name).unwrap();
        assert_eq!(third.size(), 64);
        second.unlink().unwrap();
    }

    #[test]
    fn create_open_unlink() {
        let name = format!("mp_test_{}_a", std::process::id());
        let a = SharedMemory::options().size(100).create(&name).unwrap();
        assert!(matches!(
            SharedMemory::options().size(100).create(&name),
            Err(SharedMemoryError::AlreadyExists(_))
        ));
        let b = SharedMemory::open(&format!("/{name}")).unwrap();
        assert_eq!(b.name(), name);
        assert_eq!(b.size(), 100);
        b.write_at(98, b"xy").unwrap();
        assert!(b.write_at(99, b"xy").is_err());
        let mut out = [0u8; 2];
        a.read_at(98, &mut out).unwrap();
        assert_eq!(&out, b"xy");
        drop(a); // the creator unlinks on drop
        assert!(matches!(
            SharedMemory::open(&name),
            Err(SharedMemoryError::NotFound(_))
        ));
        // The mapping survives the name.
        b.read_at(98, &mut out).unwrap();
        assert_eq!(&out, b"xy");
        assert!(matches!(b.unlink(), Err(SharedMemoryError::NotFound(_))));
        assert!(matches!(
            SharedMemory::options().create("zero_size_segment"),
            Err(SharedMemoryError::EmptySize)
        ));
    }

    #[test]
    fn travels_by_descriptor() {
        let a = SharedMemory::create(64).unwrap();
        a.write_at(0, b"abc").unwrap();
        let mut buf = Vec::new();
        let fds = crate::codec::encode_into(&a, &mut buf).unwrap();
        let b: SharedMemory = crate::codec::decode(&buf, fds).unwrap();
        assert_eq!(b.name(), a.name());
        let mut out = [0u8; 3];
        b.read_at(0, &mut out).unwrap();
        assert_eq!(&out, b"abc");
    }
}
