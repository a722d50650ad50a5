//! [`QueueOptions`]: the sizes and limits of a new queue.

use std::marker::PhantomData;
use std::sync::Arc;

use super::raw::{self, Geometry};
use super::ring::Ring;
use super::{
    BytesQueue, DEFAULT_MEMBERS, DEFAULT_SLOT_SIZE, DEFAULT_SLOTS, DEFAULT_STREAM, Handle,
    JoinableQueue, Queue, QueueError,
};

/// Sizes of a new queue: `Queue::options().maxsize(100).create()`.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    maxsize: u64,
    slot_size: u64,
    stream_size: u64,
    members: u32,
    max_message: u64,
    direct_copy: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            maxsize: 0,
            slot_size: DEFAULT_SLOT_SIZE,
            stream_size: DEFAULT_STREAM,
            members: DEFAULT_MEMBERS,
            max_message: 0,
            direct_copy: false,
        }
    }
}

impl QueueOptions {
    /// The most messages the queue holds (Python's `maxsize`); 0 (the default) means 1024.
    pub fn maxsize(&mut self, n: usize) -> &mut Self {
        self.maxsize = n as u64;
        self
    }

    /// The largest message copied into a slot, in bytes (default 1072); larger ones go
    /// through the stream area. Rounded up so that a slot is a multiple of 64 bytes.
    pub fn inline_size(&mut self, bytes: usize) -> &mut Self {
        let slot = (bytes as u64).saturating_add(raw::SLOT_HEAD as u64);
        self.slot_size = slot.div_ceil(64).saturating_mul(64);
        self
    }

    /// The size of the area large messages stream through, split into four lanes (default 1
    /// MiB; 4 KiB to 1 GiB, a multiple of 256 bytes). Messages that find no lane free, or no
    /// reader while their lane is full, spill to the segment's file instead.
    pub fn stream_size(&mut self, bytes: usize) -> &mut Self {
        self.stream_size = bytes as u64;
        self
    }

    /// How many handles (one per process, or per received copy) may use the queue at once
    /// (default 128, at most 4096).
    pub fn max_handles(&mut self, n: u32) -> &mut Self {
        self.members = n;
        self
    }

    /// The largest message the queue carries, in bytes (encoded; at least 1; default: no
    /// limit).
    ///
    /// A larger `put` fails with [`PutError::TooLarge`](super::PutError::TooLarge), handing the value back. A consumer
    /// refuses a message that declares more (one put by a process that does not keep to the
    /// limit) before reading or reserving anything for it: [`GetError::TooLarge`](super::GetError::TooLarge), counted
    /// in [`QueueStats::rejected`](super::QueueStats::rejected). So the limit also bounds what a hostile peer can make a
    /// consumer allocate. Handles received elsewhere keep the limit their creator set.
    ///
    /// ```
    /// use multiproc::queue::{PutError, Queue};
    ///
    /// let q = Queue::options().max_message_size(100).create_bytes().unwrap();
    /// q.put(vec![1u8; 100]).unwrap();
    /// let err = q.put(vec![2u8; 101]).unwrap_err();
    /// assert!(matches!(err, PutError::TooLarge(_, 101)));
    /// assert_eq!(err.into_inner().len(), 101);
    /// assert_eq!(q.get().unwrap().len(), 100);
    /// ```
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.max_message = (bytes as u64).max(1);
        self
    }

    /// Whether a consumer copies a large message (1 MiB or more) straight from its producer's
    /// memory with `process_vm_readv` (one copy, the producer waiting meanwhile) instead of
    /// taking it through a stream lane while the producer writes it (two copies, made at the
    /// same time on two CPUs). Default `false`: on the machines measured so far the kernel's
    /// copy runs at about half the speed of `memcpy`, so the two pipelined copies are faster
    /// when both processes have a CPU; the direct copy needs only the consumer's. Where the
    /// kernel refuses (see the module documentation) messages stream as usual.
    ///
    /// ```
    /// # multiproc::init();
    /// use multiproc::queue::Queue;
    ///
    /// let q = Queue::options().direct_copy(true).create_bytes().unwrap();
    /// let reader = {
    ///     let q = q.clone();
    ///     std::thread::spawn(move || q.get().unwrap())
    /// };
    /// q.put(vec![7u8; 2 << 20]).unwrap();
    /// assert_eq!(reader.join().unwrap(), vec![7u8; 2 << 20]);
    /// ```
    pub fn direct_copy(&mut self, on: bool) -> &mut Self {
        self.direct_copy = on;
        self
    }

    /// The segment, with a side channel for descriptors in messages (typed queues) or not.
    fn ring(&self, side: bool) -> Result<Arc<Ring>, QueueError> {
        let maxsize = if self.maxsize == 0 {
            DEFAULT_SLOTS
        } else {
            self.maxsize
        };
        if maxsize > raw::limits::MAX_SLOTS {
            return Err(QueueError::InvalidArgument("maxsize above 16777216"));
        }
        let g = Geometry {
            members: self.members,
            slots: maxsize.next_power_of_two().max(2),
            slot_size: self.slot_size,
            stream_size: self.stream_size,
            maxsize,
            max_message: self.max_message,
        };
        if !g.is_valid() {
            return Err(QueueError::InvalidArgument(
                "slot size, stream size or handle count out of range",
            ));
        }
        let ring = Ring::create(g, side).map_err(QueueError::Os)?;
        if self.direct_copy {
            ring.raw
                .control()
                .direct_copy
                .0
                .store(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Arc::new(ring))
    }

    /// Creates the queue.
    ///
    /// # Errors
    ///
    /// [`QueueError::InvalidArgument`] when an option is out of range; [`QueueError::Os`] when
    /// the system cannot create the segment.
    pub fn create<T>(&self) -> Result<Queue<T>, QueueError> {
        Ok(Queue {
            handle: Handle::new(self.ring(true)?),
            _t: PhantomData,
        })
    }

    /// Creates a [`JoinableQueue`].
    ///
    /// # Errors
    ///
    /// As for [`create`](Self::create).
    pub fn create_joinable<T>(&self) -> Result<JoinableQueue<T>, QueueError> {
        let q = self.create()?;
        q.handle.ring.set_joinable();
        Ok(JoinableQueue(q))
    }

    /// Creates a queue of raw bytes.
    ///
    /// # Errors
    ///
    /// As for [`create`](Self::create).
    pub fn create_bytes(&self) -> Result<BytesQueue, QueueError> {
        Ok(BytesQueue {
            handle: Handle::new(self.ring(false)?),
        })
    }
}
