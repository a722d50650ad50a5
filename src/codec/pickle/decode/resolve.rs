//! The final pass of the decoder: fills the holes of containers, follows memo references
//! (moving a value out for its last use, copying it within the budget for the others), checks
//! depth through them. Iterative: nesting costs heap, not call stack.

use std::mem::size_of;

use super::{CLASS_MARK, Container, Decoder, Global, Hole, Kind, Res, Slot, Val, heap_size};
use crate::codec::pickle::PickleError;
use crate::object::Object;

/// The holes of a container in the final pass: memo references, then the others.
struct Holes {
    refs: std::vec::IntoIter<(usize, usize)>,
    others: std::vec::IntoIter<Hole>,
}

impl Iterator for Holes {
    type Item = Hole;
    fn next(&mut self) -> Option<Hole> {
        match self.refs.next() {
            Some((at, slot)) => Some(Hole {
                at,
                val: Val::Ref(slot),
            }),
            None => self.others.next(),
        }
    }
}

/// Where a value stands while the final pass builds it.
enum Frame {
    Cont {
        kind: Kind,
        items: Vec<Object>,
        holes: Holes,
        /// The hole being filled.
        at: usize,
        level: usize,
        depth: usize,
    },
    Ref(usize),
    Call(Global, usize),
}

impl Decoder<'_> {
    /// Takes the value of memo slot `s` for one more reference: moved out for the last one,
    /// copied (within the budget) for the others.
    fn finish_ref(&mut self, s: usize, o: Object, depth: usize) -> Res<Object> {
        if self.uses[s] == 0 {
            self.slots[s] = Slot::Taken;
        } else {
            self.charge(size_of::<Object>() + heap_size(&o))?;
            self.slots[s] = Slot::Done(o.clone(), depth);
        }
        Ok(o)
    }

    /// The value of memo slot `s` for a use at `level`, if it is a scalar or already built
    /// (containers still to build need a frame of their own).
    fn take_ready(&mut self, s: usize, level: usize) -> Option<Res<(Object, usize)>> {
        let depth = match &self.slots[s] {
            Slot::Pending(Val::Obj(_)) => 0,
            Slot::Done(_, depth) => *depth,
            _ => return None,
        };
        if level + depth > self.max_depth {
            return Some(self.too_deep());
        }
        self.uses[s] = self.uses[s].saturating_sub(1);
        let o = match std::mem::replace(&mut self.slots[s], Slot::Busy) {
            Slot::Pending(Val::Obj(o)) | Slot::Done(o, _) => o,
            _ => return Some(self.late("memo slot changed while reading")),
        };
        Some(self.finish_ref(s, o, depth).map(|o| (o, depth)))
    }

    /// Builds the final object, filling holes and following memo references. Iterative (an
    /// explicit stack of frames), so that nesting costs heap, not call stack.
    ///
    /// `level` is the number of containers around the value being built: a value of depth `d`
    /// at level `l` needs `l + d <= max_depth`.
    pub(super) fn resolve(&mut self, root: Val) -> Res<Object> {
        // Most values are finished already: nothing to walk.
        let root = match root {
            Val::Obj(o) => return Ok(o),
            Val::Cont(c) if c.is_finished() && c.depth <= self.max_depth => {
                return self.finish(c.kind, c.items);
            }
            root => root,
        };
        let mut frames: Vec<Frame> = Vec::new();
        let mut next: Option<(Val, usize)> = Some((root, 0));
        // The value just built, with its depth.
        let mut result: Option<(Object, usize)> = None;
        let mut frames_peak = 0;
        loop {
            // Frames are memory too: each the first time the walk goes that deep.
            if frames.len() > frames_peak {
                frames_peak = frames.len();
                self.charge(size_of::<Frame>())?;
            }
            if let Some((v, level)) = next.take() {
                if level + v.depth() > self.max_depth {
                    return self.too_deep();
                }
                match v {
                    Val::Obj(o) => result = Some((o, 0)),
                    Val::Empty(kind) => result = Some((Self::empty(kind), 1)),
                    Val::Cont(c) => {
                        let Container {
                            kind,
                            items,
                            holes,
                            refs,
                            depth,
                        } = *c;
                        frames.push(Frame::Cont {
                            kind,
                            items,
                            holes: Holes {
                                refs: refs.into_iter(),
                                others: holes.into_iter(),
                            },
                            at: 0,
                            level,
                            depth,
                        });
                    }
                    Val::Ref(s) => {
                        self.uses[s] = self.uses[s].saturating_sub(1);
                        match std::mem::replace(&mut self.slots[s], Slot::Busy) {
                            Slot::Pending(v) => {
                                frames.push(Frame::Ref(s));
                                next = Some((v, level));
                                continue;
                            }
                            Slot::Done(o, depth) => {
                                if level + depth > self.max_depth {
                                    return self.too_deep();
                                }
                                result = Some((self.finish_ref(s, o, depth)?, depth));
                            }
                            Slot::Busy => {
                                return self
                                    .late("an object contains itself (recursive structure)");
                            }
                            Slot::Taken => return self.late("memo reference used up"),
                        }
                    }
                    Val::Global(Global::ProxyClass(c)) => {
                        result = Some((Object::Str(format!("{CLASS_MARK}{c}")), 0));
                    }
                    Val::Global(Global::ArrayClass) => {
                        result = Some((Object::Str(super::ARRAY_MARK.into()), 0));
                    }
                    Val::Global(g) => {
                        return Err(PickleError::Forbidden {
                            offset: self.input.len().saturating_sub(1),
                            what: format!("the callable {g:?} itself as a value"),
                        });
                    }
                    Val::Call(c) => {
                        frames.push(Frame::Call(c.global, c.offset));
                        next = Some((c.args, level));
                        continue;
                    }
                }
            }
            // Hand the finished value to the innermost frame, then ask it for more.
            let Some(frame) = frames.last_mut() else {
                return match result {
                    Some((o, _)) => Ok(o),
                    None => self.late("nothing to return"),
                };
            };
            match frame {
                Frame::Cont {
                    items,
                    holes,
                    at,
                    level,
                    depth,
                    ..
                } => {
                    if let Some((o, d)) = result.take() {
                        items[*at] = o;
                        *depth = (*depth).max(1 + d);
                    }
                    // References to scalars and to built objects go straight in; anything
                    // else needs a frame of its own.
                    for h in holes.by_ref() {
                        let Val::Ref(s) = h.val else {
                            next = Some((h.val, *level + 1));
                            *at = h.at;
                            break;
                        };
                        match self.take_ready(s, *level + 1) {
                            Some(r) => {
                                let (o, d) = r?;
                                items[h.at] = o;
                                *depth = (*depth).max(1 + d);
                            }
                            None => {
                                next = Some((Val::Ref(s), *level + 1));
                                *at = h.at;
                                break;
                            }
                        }
                    }
                    if next.is_some() {
                        continue;
                    }
                }
                Frame::Ref(_) | Frame::Call(..) => {}
            }
            // The frame is complete.
            let Some(frame) = frames.pop() else {
                return self.late("nothing to return");
            };
            result = Some(match frame {
                Frame::Cont {
                    kind, items, depth, ..
                } => (self.finish(kind, items)?, depth),
                Frame::Ref(s) => {
                    let Some((o, depth)) = result.take() else {
                        return self.late("empty memo slot");
                    };
                    (self.finish_ref(s, o, depth)?, depth)
                }
                Frame::Call(global, offset) => {
                    let Some((args, depth)) = result.take() else {
                        return self.late("missing call arguments");
                    };
                    let o = self.call(offset, global, args)?;
                    // set((x,)) holds x's items: one level less than its arguments.
                    let depth = match o {
                        Object::Set(_) | Object::FrozenSet(_) => depth.saturating_sub(1).max(1),
                        _ => 0,
                    };
                    (o, depth)
                }
            });
        }
    }
}
