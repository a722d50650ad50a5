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
/// [`set`](Event::set) wakes every waiter, [`clear`](Event::clear) resets it. A waiter is
/// released by every `set` that happens while it waits, even one followed at once by `clear`.
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
        self.seg.state().word.load(SeqCst) & 1 != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let st = self.seg.state();
        let mut w = st.word.load(SeqCst);
        loop {
            if w & 1 != 0 {
                return;
            }
            // The next generation, with the flag set.
            match st
                .word
                .compare_exchange_weak(w, w.wrapping_add(2) | 1, SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        if st.waiters.load(SeqCst) > 0 {
            futex::wake(&st.word, u32::MAX);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.seg.state().word.fetch_and(!1, SeqCst);
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let st = self.seg.state();
        let start = st.word.load(SeqCst);
        if start & 1 != 0 {
            return true;
        }
        // Set since we started waiting (even if cleared again): the generation moved on.
        let released = |w: u32| w & 1 != 0 || w >> 1 != start >> 1;
        let mut w = start;
        loop {
            st.waiters.fetch_add(1, SeqCst);
            let woke = futex::wait(&st.word, w, deadline);
            st.waiters.fetch_sub(1, SeqCst);
            w = st.word.load(SeqCst);
            if released(w) {
                return true;
            }
            if !woke {
                return false;
            }
        }
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it was set meanwhile
    /// (it may have been cleared again since).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Blocks until the flag is set or `deadline` passes; returns whether it was set meanwhile
    /// (it may have been cleared again since).
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
