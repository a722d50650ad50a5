//! Typed messages: serde with postcard, plus an out-of-band list of descriptors.
//!
//! Objects of this crate that wrap a descriptor (a [`Descriptor`](crate::Descriptor), a
//! connection end, a shared segment, …) serialize as an index into a descriptor list that travels
//! beside the bytes (as `SCM_RIGHTS` on Unix sockets). Encoding collects that list while serde
//! walks the value; decoding hands the received descriptors back to the values that name them.
//! Outside this crate's encoder (for example through `serde_json`), such objects refuse to
//! serialize: their bytes would mean nothing in another process.

use std::cell::RefCell;
use std::os::fd::{BorrowedFd, OwnedFd};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sys::socket::MAX_FDS;

mod keep_text;
#[cfg(feature = "python")]
pub mod pickle;

/// Why a value could not be turned into a message, or a message back into a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be encoded (a serde `Serialize` implementation failed, or a
    /// descriptor-carrying object was sent where descriptors cannot travel).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The bytes do not decode as the requested type.
    #[error("cannot decode message: {0}")]
    Decode(String),
    /// More descriptors than one message can carry.
    #[error("a message can carry at most {MAX_FDS} descriptors, this one has {0}")]
    TooManyDescriptors(usize),
}

thread_local! {
    static SINK: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static SOURCE: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    /// The descriptor hooks leave the reason of their failure here.
    static REASON: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records `msg` as the reason of the failure that the caller is about to return.
pub(crate) fn reason(msg: String) -> String {
    REASON.with(|r| *r.borrow_mut() = Some(msg.clone()));
    msg
}

/// The text for a postcard error: the recorded reason if a descriptor hook failed.
fn explain(e: impl std::fmt::Display) -> String {
    REASON
        .with(|r| r.borrow_mut().take())
        .unwrap_or_else(|| e.to_string())
}

/// Restores the previous thread-local state when an encode or decode ends (even by panic).
struct Restore<T: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    prev: Option<Option<T>>,
}

impl<T> Drop for Restore<T> {
    fn drop(&mut self) {
        let prev = self.prev.take().flatten();
        self.key.with(|c| *c.borrow_mut() = prev);
    }
}

/// Serializes `value`, appending its bytes to `out`; returns the descriptors it refers to.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, CodecError> {
    REASON.with(|r| r.borrow_mut().take());
    let prev = SINK.with(|c| c.borrow_mut().replace(Vec::new()));
    let guard = Restore {
        key: &SINK,
        prev: Some(prev),
    };
    let buf = std::mem::take(out);
    let res = keep_text::to_extend(value, buf);
    let fds = SINK.with(|c| c.borrow_mut().take()).unwrap_or_default();
    drop(guard);
    match res {
        Ok(buf) => *out = buf,
        Err(e) => return Err(CodecError::Encode(explain(e))),
    }
    if fds.len() > MAX_FDS {
        return Err(CodecError::TooManyDescriptors(fds.len()));
    }
    Ok(fds)
}

/// Serializes `value` without descriptors: any descriptor-carrying object in it is an error.
/// For transports that cannot carry descriptors (TCP, pipes).
pub(crate) fn encode_plain_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    REASON.with(|r| r.borrow_mut().take());
    let prev = SINK.with(|c| c.borrow_mut().take());
    let _guard = Restore {
        key: &SINK,
        prev: Some(prev),
    };
    let buf = std::mem::take(out);
    *out = keep_text::to_extend(value, buf).map_err(|e| CodecError::Encode(explain(e)))?;
    Ok(())
}

/// Deserializes a `T` from exactly `bytes`, giving it the descriptors `fds` it refers to.
/// Descriptors no value claims are closed.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<T, CodecError> {
    REASON.with(|r| r.borrow_mut().take());
    let prev = SOURCE.with(|c| c.borrow_mut().replace(fds.into_iter().map(Some).collect()));
    let _guard = Restore {
        key: &SOURCE,
        prev: Some(prev),
    };
    match keep_text::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(CodecError::Decode(format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(CodecError::Decode(explain(e))),
    }
}

/// Serializes a descriptor as an index into the message's descriptor list (a duplicate of `fd`
/// travels with the message). Fails outside [`encode_into`].
pub(crate) fn serialize_fd<S: Serializer>(fd: BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    let index = SINK.with(|c| -> Result<u32, String> {
        let mut sink = c.borrow_mut();
        let sink = sink.as_mut().ok_or_else(|| {
            "a descriptor-carrying object can only travel through a multiproc Unix-socket \
             connection or as a process argument"
                .to_owned()
        })?;
        let dup = crate::sys::dup(fd).map_err(|e| format!("cannot duplicate descriptor: {e}"))?;
        sink.push(dup);
        Ok((sink.len() - 1) as u32)
    });
    match index {
        Ok(i) => s.serialize_u32(i),
        Err(msg) => Err(S::Error::custom(reason(msg))),
    }
}

/// Takes the descriptor a message refers to by index. Fails outside [`decode`], for an index the
/// message does not carry, or for an index already taken.
pub(crate) fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    let index = u32::deserialize(d)? as usize;
    SOURCE.with(|c| {
        let mut src = c.borrow_mut();
        let src = src.as_mut().ok_or_else(|| {
            D::Error::custom(reason(
                "descriptors can only be received by multiproc".into(),
            ))
        })?;
        let count = src.len();
        src.get_mut(index)
            .ok_or_else(|| {
                D::Error::custom(reason(format!(
                    "message refers to descriptor {index} but carries {count}"
                )))
            })?
            .take()
            .ok_or_else(|| D::Error::custom(reason(format!("descriptor {index} is named twice"))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Descriptor;

    #[test]
    fn plain_values_round_trip() {
        let mut buf = Vec::new();
        let fds = encode_into(&(1u8, "two".to_owned(), vec![3.0f64]), &mut buf).unwrap();
        assert!(fds.is_empty());
        let back: (u8, String, Vec<f64>) = decode(&buf, fds).unwrap();
        assert_eq!(back, (1, "two".to_owned(), vec![3.0]));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut buf = Vec::new();
        encode_into(&(1u32, 2u32), &mut buf).unwrap();
        assert!(matches!(
            decode::<u32>(&buf, vec![]),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn descriptors_travel_out_of_band() {
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let d = Descriptor::from(file);
        let mut buf = Vec::new();
        let fds = encode_into(&vec![d], &mut buf).unwrap();
        assert_eq!(fds.len(), 1);
        let back: Vec<Descriptor> = decode(&buf, fds).unwrap();
        assert_eq!(back.len(), 1);
    }

    #[test]
    fn descriptor_refuses_plain_transport() {
        let d = Descriptor::from(std::fs::File::open("/proc/self/exe").unwrap());
        let mut buf = Vec::new();
        let err = encode_plain_into(&d, &mut buf).unwrap_err();
        assert!(err.to_string().contains("descriptor"), "{err}");
    }

    #[test]
    fn missing_or_repeated_index_is_an_error() {
        let mut buf = Vec::new();
        encode_plain_into(&(0u32, 0u32), &mut buf).unwrap();
        let err = decode::<Descriptor>(&buf[..1], vec![]).unwrap_err();
        assert!(err.to_string().contains("carries 0"), "{err}");
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let err = decode::<(Descriptor, Descriptor)>(&buf, vec![f.into()]).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
