//! [`Event`]: a flag that processes can wait for.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Descriptor;
use crate::shm::layout::{Segment, Tag};
use crate::shm::{AttachError, CreateError};
use crate::sync::raw::RawEvent;
use crate::sys::futex;

type Seg = Segment<RawEvent, ()>;

/// A flag shared between processes and threads, like Python's `multiprocessing.Event`:
/// [`set`](Event::set) wakes every waiter, [`clear`](Event::clear) resets it.
///
/// The death of a participant changes nothing: the flag stays as it was left.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::sync::Event;
///
/// let ev = Event::new().unwrap();
/// assert!(!ev.wait_timeout(Duration::from_millis(1)));
/// let other = ev.clone();
/// std::thread::spawn(move || other.set());
/// ev.wait();
/// assert!(ev.is_set());
/// ```
#[derive(Clone)]
pub struct Event {
    seg: Arc<Seg>,
}

impl Event {
    /// A new event, not set.
    ///
    /// # Errors
    ///
    /// When the system cannot create the segment.
    pub fn new() -> Result<Self, CreateError> {
        Ok(Event {
            seg: Arc::new(Seg::create(Tag::Event, 0)?),
        })
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.seg.state().flag.load(SeqCst) != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let st = self.seg.state();
        st.flag.store(1, SeqCst);
        if st.waiters.load(SeqCst) > 0 {
            futex::wake(&st.flag, u32::MAX);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.seg.state().flag.store(0, SeqCst);
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let st = self.seg.state();
        loop {
            if st.flag.load(SeqCst) != 0 {
                return true;
            }
            st.waiters.fetch_add(1, SeqCst);
            let woke = futex::wait(&st.flag, 0, deadline);
            st.waiters.fetch_sub(1, SeqCst);
            if !woke {
                return st.flag.load(SeqCst) != 0;
            }
        }
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Blocks until the flag is set or `timeout` passes; returns the flag.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Blocks until the flag is set or `deadline` passes; returns the flag.
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        self.wait_until(Some(deadline))
    }

    /// A new descriptor for the event's segment.
    ///
    /// # Errors
    ///
    /// When the process is out of descriptors.
    pub fn descriptor(&self) -> std::io::Result<Descriptor> {
        crate::sys::dup(self.seg.fd()).map(Descriptor::new)
    }

    /// Opens an event from a descriptor made by [`descriptor`](Self::descriptor).
    ///
    /// # Errors
    ///
    /// [`AttachError`] when the segment holds something else.
    pub fn from_descriptor(fd: Descriptor) -> Result<Self, AttachError> {
        Ok(Event {
            seg: Arc::new(Seg::attach(Tag::Event, fd.into_owned_fd())?),
        })
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::shm::serialize_segment(&self.seg, s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Event {
            seg: Arc::new(crate::shm::deserialize_segment(Tag::Event, d)?),
        })
    }
}
