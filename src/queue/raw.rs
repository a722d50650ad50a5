//! The bytes of a queue segment: header, control block, process table, slots, stream area.
//!
//! This is the only part of the queue that forms references into shared memory or copies
//! bytes in and out of it. Everything it hands out is either atomics (`Sync`, valid whatever
//! bits another process leaves there) or a copy. Which process may touch which slot's payload
//! at a given moment is decided by the state machine in [`super::ring`]; the copies here rely
//! on it (see each `// SAFETY:`).
#![allow(unsafe_code)]

use std::mem::size_of;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::sys::memfd::{self, Mapping};

/// The magic bytes at offset 0 of a queue segment.
pub(crate) const MAGIC: [u8; 8] = *b"MPROCQUE";
/// The version of this layout; bumped whenever it changes shape.
pub(crate) const VERSION: u32 = 3;
/// Independent stream lanes: this many large messages can be in flight (unread) at once.
pub(crate) const LANES: usize = 4;
/// Bytes of a slot before its payload.
pub(crate) const SLOT_HEAD: usize = size_of::<SlotHead>();
const LINE: usize = 64;
/// Alignment of spilled messages in the segment's file.
pub(crate) const SPILL_ALIGN: u64 = 64 * 1024;

/// Describes a queue segment; written once by its creator, checked by everyone who attaches.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// [`MAGIC`].
    pub(crate) magic: [u8; 8],
    /// [`VERSION`].
    pub(crate) version: u32,
    /// Entries in the process table.
    pub(crate) members: u32,
    /// Slots in the ring (a power of two).
    pub(crate) slots: u64,
    /// Bytes per slot, [`SLOT_HEAD`] included (a multiple of 64).
    pub(crate) slot_size: u64,
    /// Bytes of the stream area (large messages), split into [`LANES`] equal lanes.
    pub(crate) stream_size: u64,
    /// The most messages the queue holds (at most `slots`).
    pub(crate) maxsize: u64,
    /// Total size of the segment.
    pub(crate) total: u64,
    /// The largest message in bytes the queue carries (0: no limit), as its creator set it.
    pub(crate) max_message: u64,
}

const _: () = assert!(size_of::<Header>() == LINE);

/// A futex word and the number of processes or threads sleeping on it.
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct WaitWord {
    /// Bumped (when someone sleeps) on every change the sleepers wait for.
    pub(crate) seq: AtomicU32,
    /// Sleepers, or about to sleep. One left high by a killed sleeper costs a spare wake-up.
    pub(crate) waiters: AtomicU32,
}

/// A 64-bit word alone on its cache line.
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct Padded(pub(crate) AtomicU64);

/// A stream lane's control: who is writing and reading the large message in flight in it.
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct StreamCtl {
    /// `seq << 33 | active << 32 | writer << 16 | reader` (see `stream::Token`).
    pub(crate) token: AtomicU64,
    /// Bytes of the message in flight written so far (its length is in its slot).
    pub(crate) written: AtomicU64,
    /// Bytes of it read so far.
    pub(crate) read: AtomicU64,
    /// The address of the message's bytes in its producer's memory, offered for the reader to
    /// copy them from directly (0: not offered). Written with the next four before the
    /// message's slot is published.
    pub(crate) src_addr: AtomicU64,
    /// The producer's pid, start time and pid namespace (see `sys::vm::Identity`).
    pub(crate) src_pid: AtomicU64,
    pub(crate) src_start: AtomicU64,
    pub(crate) src_ns: AtomicU64,
    /// 1 while the reader copies the rest of the message from the producer's memory: the
    /// producer then waits for the reader to end the message.
    pub(crate) direct: AtomicU64,
}

const _: () = assert!(size_of::<StreamCtl>() == LINE);

/// Queue-wide counters (per-process ones live in the process table).
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct Counters {
    /// Messages whose producer died before publishing them (skipped, never delivered).
    pub(crate) abandoned: AtomicU64,
    /// Messages whose reader died after taking them out of the ring (lost).
    pub(crate) dropped: AtomicU64,
    /// Messages whose reader died while copying them out of their slot (delivered again).
    pub(crate) redelivered: AtomicU64,
    /// `put` counts of members that left or died.
    pub(crate) retired_put: AtomicU64,
    /// `get` counts of members that left or died.
    pub(crate) retired_got: AtomicU64,
    /// `JoinableQueue`: tasks got and not marked done by members that left or died.
    pub(crate) released: AtomicU64,
    /// Messages a consumer refused because they declared more than the maximum message size.
    pub(crate) rejected: AtomicU64,
    /// 1 when the queue was created as a `JoinableQueue` (consumers then count the messages
    /// they are taking, for `join`).
    pub(crate) joinable: AtomicU64,
    /// Direct copies (see `Member::direct`) of members that left or died.
    pub(crate) retired_direct: AtomicU64,
}

/// The control block, after the header.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Control {
    /// The next position a producer claims.
    pub(crate) tail: Padded,
    /// The next position a consumer claims.
    pub(crate) head: Padded,
    /// Consumers wait here for messages.
    pub(crate) items: WaitWord,
    /// Producers wait here for free slots.
    pub(crate) space: WaitWord,
    /// Both sides of the stream, and producers waiting for it, wait here.
    pub(crate) stream_wait: WaitWord,
    /// The stream lanes' states.
    pub(crate) stream: [StreamCtl; LANES],
    /// Slots handed back by the reaper to be delivered again, not yet taken.
    pub(crate) orphans: Padded,
    /// The file offset where the next spilled large message goes (see [`Raw::spill_base`]);
    /// only grows.
    pub(crate) spill_end: Padded,
    /// The number the next message with descriptors gets in the side channel.
    pub(crate) fd_seq: Padded,
    /// 1 when large messages are offered for direct copies (`QueueOptions::direct_copy`).
    pub(crate) direct_copy: Padded,
    /// Counters.
    pub(crate) counters: Counters,
    /// `JoinableQueue::join` sleeps here.
    pub(crate) joined: WaitWord,
    /// The ends of a duplex channel whose first direction this queue is.
    pub(crate) ends: Ends,
}

/// Who holds each end of a duplex channel (kept in the queue of its first direction).
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct Ends {
    /// Per end: the process-table index + 1 of the process holding it, `u32::MAX` once it was
    /// dropped.
    pub(crate) owner: [AtomicU32; 2],
    /// Per end: copies sent (serialized) and not yet received.
    pub(crate) pending: [AtomicU32; 2],
    /// The CPU (+ 1; 0: unknown) the producer of this queue last sent from, when this queue
    /// is a direction of a duplex channel: a consumer on the same CPU yields instead of
    /// spinning.
    pub(crate) producer_cpu: AtomicU32,
}

/// One entry of the process table.
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct Member {
    /// 0: free; otherwise `pid << 1 | 1` of the process that registered.
    pub(crate) state: AtomicU64,
    /// Messages this member put.
    pub(crate) put: AtomicU64,
    /// Messages this member got.
    pub(crate) got: AtomicU64,
    /// `JoinableQueue`: tasks this member marked done (its own, or another member's).
    pub(crate) done: AtomicU64,
    /// `JoinableQueue`: `get`s of this member in progress (from before the slot is taken to
    /// after `got` counts the message).
    pub(crate) taking: AtomicU64,
    /// Large messages this member copied straight from their producer's memory.
    pub(crate) direct: AtomicU64,
}

const _: () = assert!(size_of::<Member>() == LINE && size_of::<Counters>() == 2 * LINE);

/// The fixed part of a slot, before its payload.
#[repr(C)]
pub(crate) struct SlotHead {
    /// `pos << 18 | state << 16 | owner` (see `ring::Stamp`).
    pub(crate) stamp: AtomicU64,
    /// Payload bytes in use (inline message), written by the producer that holds the slot.
    pub(crate) len: AtomicU32,
    /// What the payload holds (inline bytes, or the reference to a large message).
    pub(crate) kind: AtomicU32,
}

/// Sizes of a queue segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) members: u32,
    pub(crate) slots: u64,
    pub(crate) slot_size: u64,
    pub(crate) stream_size: u64,
    pub(crate) maxsize: u64,
    /// The largest message in bytes (0: no limit).
    pub(crate) max_message: u64,
}

/// Offsets of the parts of a segment of `g`, and its total size.
#[derive(Clone, Copy, Debug)]
struct Offsets {
    control: usize,
    members: usize,
    slots: usize,
    stream: usize,
    total: usize,
}

fn offsets(g: &Geometry) -> Option<Offsets> {
    let members_bytes = (g.members as usize).checked_mul(size_of::<Member>())?;
    let control = LINE;
    let members = control + size_of::<Control>();
    let slots = members.checked_add(members_bytes)?;
    let slot_bytes = usize::try_from(g.slots.checked_mul(g.slot_size)?).ok()?;
    let stream = slots.checked_add(slot_bytes)?;
    let total = stream.checked_add(usize::try_from(g.stream_size).ok()?)?;
    (total <= isize::MAX as usize).then_some(Offsets {
        control,
        members,
        slots,
        stream,
        total,
    })
}

/// Limits on what a segment may declare, so that a received header cannot make us map
/// absurd amounts or misalign anything.
pub(crate) mod limits {
    pub(crate) const MAX_MEMBERS: u32 = 4096;
    pub(crate) const MIN_SLOT: u64 = 64;
    pub(crate) const MAX_SLOT: u64 = 1 << 20;
    pub(crate) const MAX_SLOTS: u64 = 1 << 24;
    pub(crate) const MIN_STREAM: u64 = 4096;
    pub(crate) const MAX_STREAM: u64 = 1 << 30;
}

impl Geometry {
    /// Whether these sizes are within the limits this build accepts.
    pub(crate) fn is_valid(&self) -> bool {
        use limits::*;
        (1..=MAX_MEMBERS).contains(&self.members)
            && self.slots.is_power_of_two()
            && (2..=MAX_SLOTS).contains(&self.slots)
            && (MIN_SLOT..=MAX_SLOT).contains(&self.slot_size)
            && self.slot_size.is_multiple_of(LINE as u64)
            && (MIN_STREAM..=MAX_STREAM).contains(&self.stream_size)
            && self.stream_size.is_multiple_of((LANES * LINE) as u64)
            && (1..=self.slots).contains(&self.maxsize)
            && offsets(self).is_some()
    }
}

/// Why a descriptor is not a usable queue segment.
#[derive(Debug)]
pub(crate) enum BadSegment {
    /// Not a queue segment of this crate (or its header is inconsistent).
    NotAQueue,
    /// A queue of another layout version.
    Version,
    /// The system refused to read or map it.
    Os(std::io::Error),
}

/// A mapped queue segment.
#[derive(Debug)]
pub(crate) struct Raw {
    map: Mapping,
    geometry: Geometry,
    off: Offsets,
}

impl Raw {
    /// Creates a segment of geometry `g` (which must be valid): sealed, zero-filled, with the
    /// header written and every slot stamped empty for its first position.
    pub(crate) fn create(
        g: Geometry,
        empty_stamp: impl Fn(u64) -> u64,
    ) -> std::io::Result<(OwnedFd, Raw)> {
        let off = offsets(&g).filter(|_| g.is_valid()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid queue geometry")
        })?;
        let fd = memfd::memfd_growable("multiproc-queue", off.total as u64)?;
        let map = Mapping::new(&fd, off.total)?;
        let header = Header {
            magic: MAGIC,
            version: VERSION,
            members: g.members,
            slots: g.slots,
            slot_size: g.slot_size,
            stream_size: g.stream_size,
            maxsize: g.maxsize,
            total: off.total as u64,
            max_message: g.max_message,
        };
        // SAFETY: the mapping is at least 64 bytes, page-aligned, and nobody else has the
        // segment yet.
        unsafe { ptr::write(map.ptr().cast::<Header>(), header) };
        let raw = Raw {
            map,
            geometry: g,
            off,
        };
        raw.control()
            .spill_end
            .0
            .store(raw.spill_base(), std::sync::atomic::Ordering::Relaxed);
        for i in 1..g.slots {
            raw.slot(i)
                .stamp
                .store(empty_stamp(i), std::sync::atomic::Ordering::Relaxed);
        }
        Ok((fd, raw))
    }

    /// Checks the segment behind `fd` (sealed, a queue header of this version with valid sizes,
    /// exactly the size the header says), then maps it, without pre-faulting.
    pub(crate) fn attach(fd: &OwnedFd) -> Result<Raw, BadSegment> {
        if !memfd::is_sealed_against_shrinking(fd) {
            return Err(BadSegment::NotAQueue);
        }
        let mut raw = [0u8; LINE];
        if !memfd::read_exact_at(fd, &mut raw, 0).map_err(BadSegment::Os)? {
            return Err(BadSegment::NotAQueue);
        }
        // SAFETY: `raw` holds size_of::<Header>() bytes; a header is integers and a byte array,
        // valid whatever the bytes; the read is unaligned.
        let h = unsafe { ptr::read_unaligned(raw.as_ptr().cast::<Header>()) };
        if h.magic != MAGIC {
            return Err(BadSegment::NotAQueue);
        }
        if h.version != VERSION {
            return Err(BadSegment::Version);
        }
        let g = Geometry {
            members: h.members,
            slots: h.slots,
            slot_size: h.slot_size,
            stream_size: h.stream_size,
            maxsize: h.maxsize,
            max_message: h.max_message,
        };
        if !g.is_valid() {
            return Err(BadSegment::NotAQueue);
        }
        let off = offsets(&g).ok_or(BadSegment::NotAQueue)?;
        // The file may be larger: spilled messages live beyond the mapped part.
        if h.total != off.total as u64
            || memfd::size_of(fd).map_err(BadSegment::Os)? < off.total as u64
        {
            return Err(BadSegment::NotAQueue);
        }
        let map = Mapping::attach(fd.as_fd(), off.total).map_err(BadSegment::Os)?;
        Ok(Raw {
            map,
            geometry: g,
            off,
        })
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Payload bytes per slot.
    pub(crate) fn payload_size(&self) -> usize {
        self.geometry.slot_size as usize - SLOT_HEAD
    }

    pub(crate) fn control(&self) -> &Control {
        // SAFETY: the control block lies within the mapping at a 64-byte aligned offset (the
        // mapping is page-aligned); it is made of atomics only, valid whatever bytes other
        // processes leave there, and shared only through atomic operations.
        unsafe { &*self.map.ptr().add(self.off.control).cast::<Control>() }
    }

    /// Entry `i` of the process table (`i < members`).
    pub(crate) fn member(&self, i: u32) -> &Member {
        assert!(i < self.geometry.members);
        // SAFETY: in bounds (checked above, and by `offsets` at creation or attach), 64-byte
        // aligned, atomics only, as for `control`.
        unsafe {
            &*self
                .map
                .ptr()
                .add(self.off.members + i as usize * size_of::<Member>())
                .cast::<Member>()
        }
    }

    fn slot_ptr(&self, i: u64) -> *mut u8 {
        let i = (i & (self.geometry.slots - 1)) as usize;
        // SAFETY: `i < slots`, so the slot lies within the mapping (checked by `offsets`).
        unsafe {
            self.map
                .ptr()
                .add(self.off.slots + i * self.geometry.slot_size as usize)
        }
    }

    /// The head of the slot that position `pos` maps to.
    pub(crate) fn slot(&self, pos: u64) -> &SlotHead {
        // SAFETY: in bounds, aligned to 64 bytes (slot sizes are multiples of 64), atomics
        // only, as for `control`.
        unsafe { &*self.slot_ptr(pos).cast::<SlotHead>() }
    }

    /// Copies `src` into the payload of the slot of `pos`.
    ///
    /// The caller holds the slot (its stamp names this process as writer, set by a successful
    /// compare-and-swap), so no other process that follows the protocol reads or writes this
    /// payload until the caller publishes it; `src.len() <= payload_size()` is checked.
    pub(crate) fn write_payload(&self, pos: u64, offset: usize, src: &[u8]) {
        assert!(offset + src.len() <= self.payload_size());
        // SAFETY: the range is within the slot's payload (asserted), which lies within the
        // mapping; `src` is process memory, so no overlap; the protocol gives this process
        // exclusive use of the payload (see above). A process that ignores the protocol can
        // only make the bytes garbage: bytes have no invalid values and no reference into the
        // payload exists.
        unsafe {
            ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.slot_ptr(pos).add(SLOT_HEAD + offset),
                src.len(),
            )
        };
    }

    /// Appends `len` bytes of the payload of the slot of `pos`, from `offset`, to `out`.
    ///
    /// The caller holds the slot as its reader (a successful compare-and-swap of the stamp);
    /// the writer published it with a release store that the caller's swap acquired.
    pub(crate) fn read_payload(&self, pos: u64, offset: usize, len: usize, out: &mut Vec<u8>) {
        assert!(offset + len <= self.payload_size());
        out.reserve(len);
        // SAFETY: the source range is within the slot's payload (asserted); the destination is
        // the vector's spare capacity of at least `len` bytes (reserved), set as initialised
        // only after the copy. Bytes are valid whatever another process wrote.
        unsafe {
            let dst = out.as_mut_ptr().add(out.len());
            ptr::copy_nonoverlapping(self.slot_ptr(pos).add(SLOT_HEAD + offset), dst, len);
            out.set_len(out.len() + len);
        }
    }

    /// The file offset where spilled large messages begin: past the mapped part, aligned to
    /// 64 KiB (a multiple of every page size), so that each spilled message's pages can be
    /// freed on their own.
    pub(crate) fn spill_base(&self) -> u64 {
        (self.off.total as u64).next_multiple_of(SPILL_ALIGN)
    }

    /// Word `i` (8 bytes, from the start) of the payload of the slot of `pos`, as an atomic:
    /// for the reference a large message's slot holds, which its producer may complete after
    /// publishing it.
    pub(crate) fn payload_word(&self, pos: u64, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 8 <= self.payload_size());
        // SAFETY: within the slot's payload (asserted), 8-byte aligned (slots are 64-byte
        // aligned and `SLOT_HEAD` is 16); an atomic is valid whatever bytes are there, and
        // every access to these words while they hold a large message's reference is atomic.
        unsafe {
            &*self
                .slot_ptr(pos)
                .add(SLOT_HEAD + i * 8)
                .cast::<AtomicU64>()
        }
    }

    /// The size of one stream lane.
    pub(crate) fn lane_size(&self) -> u64 {
        self.geometry.stream_size / LANES as u64
    }

    fn stream_ptr(&self, lane: usize) -> *mut u8 {
        assert!(lane < LANES);
        // SAFETY: the stream area lies within the mapping (checked by `offsets`), and lane
        // `lane < LANES` is within it.
        unsafe {
            self.map
                .ptr()
                .add(self.off.stream + lane * self.lane_size() as usize)
        }
    }

    /// Copies `src` into stream lane `lane` at byte position `pos` (modulo its size, wrapping).
    ///
    /// The caller is the stream's writer (its token names this process), and the reader has
    /// consumed everything up to `pos + src.len() - stream_size`, so nobody reads these bytes
    /// until the caller's release store of the written position.
    pub(crate) fn stream_write(&self, lane: usize, pos: u64, src: &[u8]) {
        let size = self.lane_size();
        let base = self.stream_ptr(lane);
        assert!(src.len() as u64 <= size);
        let start = (pos % size) as usize;
        let first = src.len().min(size as usize - start);
        // SAFETY: `start + first <= size` and `src.len() - first <= start`, so both copies stay
        // within the lane; `src` is process memory; the protocol gives the writer
        // exclusive use of these bytes (see above).
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), base.add(start), first);
            ptr::copy_nonoverlapping(src.as_ptr().add(first), base, src.len() - first);
        }
    }

    /// Appends `len` bytes of stream lane `lane` from byte position `pos` (wrapping) to `out`.
    ///
    /// The caller is the stream's reader, and the writer's release store of a written position
    /// at least `pos + len` was acquired by the caller.
    pub(crate) fn stream_read(&self, lane: usize, pos: u64, len: usize, out: &mut Vec<u8>) {
        let size = self.lane_size();
        let base = self.stream_ptr(lane);
        assert!(len as u64 <= size);
        let start = (pos % size) as usize;
        let first = len.min(size as usize - start);
        out.reserve(len);
        // SAFETY: both source ranges are within the stream area (as in `stream_write`); the
        // destination is the vector's reserved spare capacity, marked initialised after the
        // copies. Bytes are valid whatever another process wrote.
        unsafe {
            let dst = out.as_mut_ptr().add(out.len());
            ptr::copy_nonoverlapping(base.add(start), dst, first);
            ptr::copy_nonoverlapping(base, dst.add(first), len - first);
            out.set_len(out.len() + len);
        }
    }
}
