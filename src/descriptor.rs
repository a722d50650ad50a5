//! [`Descriptor`]: an owned file descriptor that can travel to another process.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An owned file descriptor that can be sent to another process: as an argument of a
/// [`Process`](crate::Process), or (later) inside any message on a Unix-socket connection.
///
/// It serializes as an index into the descriptor list that travels beside the message
/// (`SCM_RIGHTS`); the receiving process gets its own descriptor for the same open file
/// description (same file offset, same flags), as after `dup(2)`.
///
/// # Examples
///
/// A child writes into a file the parent opened:
///
/// ```
/// # multiproc::init();
/// use std::io::{Read, Seek, Write};
/// use multiproc::{Descriptor, Process};
///
/// fn write_hello(fd: Descriptor) {
///     let mut file = fd.into_file();
///     file.write_all(b"hello from the child").unwrap();
/// }
///
/// let mut file = tempfile_in_tmp();
/// let p = Process::start(write_hello, Descriptor::from(file.try_clone().unwrap())).unwrap();
/// p.join().unwrap();
/// let mut text = String::new();
/// file.seek(std::io::SeekFrom::Start(0)).unwrap();
/// file.read_to_string(&mut text).unwrap();
/// assert_eq!(text, "hello from the child");
/// # fn tempfile_in_tmp() -> std::fs::File {
/// #     let path = std::env::temp_dir().join(format!("multiproc-doc-{}", std::process::id()));
/// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
/// #     std::fs::remove_file(&path).unwrap();
/// #     f
/// # }
/// ```
pub struct Descriptor(OwnedFd);

impl Descriptor {
    /// Wraps an owned descriptor.
    pub fn new(fd: impl Into<OwnedFd>) -> Self {
        Descriptor(fd.into())
    }

    /// Duplicates the descriptor (`fcntl(F_DUPFD_CLOEXEC)`).
    ///
    /// # Errors
    ///
    /// When the process is out of descriptors.
    pub fn try_clone(&self) -> std::io::Result<Self> {
        crate::sys::dup(&self.0).map(Descriptor)
    }

    /// The descriptor as a [`File`].
    pub fn into_file(self) -> File {
        File::from(self.0)
    }

    /// The owned descriptor.
    pub fn into_owned_fd(self) -> OwnedFd {
        self.0
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Descriptor>();
};

impl fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Descriptor")
            .field(&self.0.as_raw_fd())
            .finish()
    }
}

impl From<OwnedFd> for Descriptor {
    fn from(fd: OwnedFd) -> Self {
        Descriptor(fd)
    }
}

impl From<File> for Descriptor {
    fn from(file: File) -> Self {
        Descriptor(file.into())
    }
}

impl From<Descriptor> for OwnedFd {
    fn from(d: Descriptor) -> Self {
        d.0
    }
}

impl From<Descriptor> for File {
    fn from(d: Descriptor) -> Self {
        d.into_file()
    }
}

impl AsFd for Descriptor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Descriptor {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl IntoRawFd for Descriptor {
    fn into_raw_fd(self) -> RawFd {
        self.0.into_raw_fd()
    }
}

impl Serialize for Descriptor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::codec::serialize_fd(self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Descriptor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::codec::deserialize_fd(d).map(Descriptor)
    }
}
