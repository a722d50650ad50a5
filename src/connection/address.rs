//! [`Address`]: where a [`Listener`](super::Listener) listens and a
//! [`Client`](super::Client) connects.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// A listening address: a Unix socket path, a Linux abstract socket name, or a TCP address
/// (IPv4 or IPv6).
///
/// Python spells these as a path string (`'/tmp/sock'`), a string with a leading NUL
/// (`'\0name'`) and a `(host, port)` tuple.
///
/// As text ([`FromStr`], [`Display`](fmt::Display)): `unix:/tmp/sock` (or any path starting
/// with `/` or `.`), `abstract:name` (or a leading NUL character), and `127.0.0.1:6000` or
/// `[::1]:6000`.
///
/// # Examples
///
/// ```
/// use multiproc::Address;
/// let a: Address = "127.0.0.1:6000".parse()?;
/// assert_eq!(a, Address::Tcp("127.0.0.1:6000".parse()?));
/// let u: Address = "/tmp/app.sock".parse()?;
/// assert_eq!(u.to_string(), "unix:/tmp/app.sock");
/// let n: Address = "abstract:app".parse()?;
/// assert_eq!(n, Address::Abstract(b"app".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A Unix socket file. The listener creates it with mode `0600` and removes it when
    /// dropped.
    Unix(PathBuf),
    /// A Linux abstract Unix socket name (no file; Python's `'\0name'`), without the
    /// leading NUL.
    Abstract(Vec<u8>),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl Address {
    /// A Unix socket path.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Address::Unix(path.into())
    }

    /// A Linux abstract socket name (without the leading NUL).
    pub fn abstract_name(name: impl Into<Vec<u8>>) -> Self {
        Address::Abstract(name.into())
    }

    /// A TCP address from a host name (or literal) and a port, as Python's `(host, port)`:
    /// the first address the name resolves to.
    ///
    /// # Errors
    ///
    /// When the name does not resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Address;
    /// let a = Address::tcp(("127.0.0.1", 6000))?;
    /// assert_eq!(a.to_string(), "127.0.0.1:6000");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn tcp(addr: impl std::net::ToSocketAddrs) -> std::io::Result<Self> {
        addr.to_socket_addrs()?
            .next()
            .map(Address::Tcp)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the name resolves to no address",
                )
            })
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Self {
        Address::Unix(p)
    }
}

impl From<&std::path::Path> for Address {
    fn from(p: &std::path::Path) -> Self {
        Address::Unix(p.to_owned())
    }
}

impl From<&Address> for Address {
    fn from(a: &Address) -> Self {
        a.clone()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Abstract(n) => write!(f, "abstract:{}", String::from_utf8_lossy(n)),
            Address::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Why a text is not an [`Address`].
#[derive(Debug, thiserror::Error)]
#[error("invalid address {0:?}: expected unix:PATH, abstract:NAME, IP:PORT or [IPv6]:PORT")]
pub struct AddressParseError(String);

impl FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.strip_prefix("unix:") {
            return Ok(Address::Unix(p.into()));
        }
        if let Some(n) = s.strip_prefix("abstract:") {
            return Ok(Address::Abstract(n.as_bytes().to_vec()));
        }
        if let Some(n) = s.strip_prefix('\0') {
            return Ok(Address::Abstract(n.as_bytes().to_vec()));
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Ok(Address::Unix(s.into()));
        }
        s.parse::<SocketAddr>()
            .map(Address::Tcp)
            .map_err(|_| AddressParseError(s.to_owned()))
    }
}
