//! The opcodes: each reads its arguments and acts on the decoder's stack, marks and memo.

use super::{CallVal, Decoder, Kind, Res, SeqKind, Slot, Val, raw_unicode_escape};
use crate::codec::pickle::op;
use crate::object::{BigInt, Object};

impl Decoder<'_> {
    fn decimal(&self, at: usize, text: &str) -> Res<Object> {
        match text.trim().parse::<BigInt>() {
            Ok(b) => Ok(Object::from(b)),
            Err(e) => self.invalid(at, format!("integer literal: {e}")),
        }
    }

    /// The memo key of a `PUT`/`GET` (decimal text), `BINPUT`/`BINGET` (a byte) or
    /// `LONG_BINPUT`/`LONG_BINGET` (four bytes).
    fn memo_key(&mut self, at: usize, code: u8) -> Res<u64> {
        match code {
            op::PUT | op::GET => match self.text_line(at)?.parse::<u64>() {
                Ok(k) => Ok(k),
                Err(_) => self.invalid(at, "invalid memo key"),
            },
            op::BINPUT | op::BINGET => Ok(self.byte()?.into()),
            _ => Ok(u32::from_le_bytes(self.array()?).into()),
        }
    }

    /// Pushes a global, noting a proxy class (which may stand only as `RebuildProxy`'s first
    /// argument: the final value is checked for it).
    fn push_global(&mut self, g: Val) -> Res<()> {
        if matches!(
            g,
            Val::Global(super::Global::ProxyClass(_) | super::Global::ArrayClass)
        ) {
            self.classes = true;
        }
        self.push(g)
    }

    pub(in crate::codec::pickle) fn run(&mut self) -> Res<Object> {
        loop {
            let at = self.pos;
            let code = self.byte()?;
            match code {
                op::PROTO => {
                    let v = self.byte()?;
                    if v > 5 {
                        return self.invalid(at, format!("unsupported pickle protocol {v}"));
                    }
                }
                op::FRAME => {
                    // Frames only help buffered readers; the whole pickle is already here.
                    self.array::<8>()?;
                }
                op::STOP => {
                    let v = self.pop(at)?;
                    if self.pos != self.input.len() {
                        return self.invalid(
                            self.pos,
                            format!("{} bytes after STOP", self.input.len() - self.pos),
                        );
                    }
                    // What is left on the stack is never used.
                    self.stack = Vec::new();
                    return self.resolve(v);
                }
                op::MARK => self.push_mark()?,
                op::POP => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop(at)?;
                    }
                }
                op::POP_MARK => {
                    let m = self.close_mark(at)?;
                    self.stack.truncate(m);
                }
                op::DUP if self.no_memo => return Err(self.memo_needed()),
                op::DUP => {
                    let slot = self.share_top(at)?;
                    self.uses[slot] += 1;
                    self.push(Val::Ref(slot))?;
                }
                op::NONE => self.push(Val::Obj(Object::None))?,
                op::NEWTRUE => self.push(Val::Obj(Object::Bool(true)))?,
                op::NEWFALSE => self.push(Val::Obj(Object::Bool(false)))?,
                op::BININT => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Val::Obj(Object::Int(v.into())))?;
                }
                op::BININT1 => {
                    let v = self.byte()?;
                    self.push(Val::Obj(Object::Int(v.into())))?;
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Val::Obj(Object::Int(v.into())))?;
                }
                op::LONG1 | op::LONG4 => {
                    let n = if code == op::LONG1 {
                        usize::from(self.byte()?)
                    } else {
                        let n = i32::from_le_bytes(self.array()?);
                        match usize::try_from(n) {
                            Ok(n) => n,
                            Err(_) => return self.invalid(at, "negative LONG4 length"),
                        }
                    };
                    let b = BigInt::from_signed_bytes_le(self.take(n)?);
                    self.push_scalar(Object::from(b), n)?;
                }
                op::INT => {
                    let text = self.text_line(at)?;
                    let o = match text {
                        "01" => Object::Bool(true),
                        "00" => Object::Bool(false),
                        t => self.decimal(at, t)?,
                    };
                    self.push_scalar(o, text.len())?;
                }
                op::LONG => {
                    let text = self.text_line(at)?;
                    let o = self.decimal(at, text.strip_suffix('L').unwrap_or(text))?;
                    self.push_scalar(o, text.len())?;
                }
                op::FLOAT => {
                    let text = self.text_line(at)?;
                    match text.trim().parse::<f64>() {
                        Ok(x) => self.push(Val::Obj(Object::Float(x)))?,
                        Err(_) => return self.invalid(at, "invalid float literal"),
                    }
                }
                op::BINFLOAT => {
                    let x = f64::from_be_bytes(self.array()?);
                    self.push(Val::Obj(Object::Float(x)))?;
                }
                op::SHORT_BINUNICODE | op::BINUNICODE | op::BINUNICODE8 => {
                    let n = match code {
                        op::SHORT_BINUNICODE => usize::from(self.byte()?),
                        op::BINUNICODE => u32::from_le_bytes(self.array()?) as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?;
                    let o = self.utf8(at, bytes)?;
                    self.push_scalar(o, n)?;
                }
                op::UNICODE => {
                    let line = self.line()?;
                    let s = raw_unicode_escape(line).or_else(|e| self.invalid(at, e))?;
                    let n = s.len();
                    self.push_scalar(Object::Str(s), n)?;
                }
                op::SHORT_BINSTRING | op::BINSTRING => {
                    let n = if code == op::SHORT_BINSTRING {
                        usize::from(self.byte()?)
                    } else {
                        match usize::try_from(i32::from_le_bytes(self.array()?)) {
                            Ok(n) => n,
                            Err(_) => return self.invalid(at, "negative BINSTRING length"),
                        }
                    };
                    let bytes = self.take(n)?;
                    if !bytes.is_ascii() {
                        return self.invalid(at, "Python 2 str is not ASCII");
                    }
                    let o = self.utf8(at, bytes)?;
                    self.push_scalar(o, n)?;
                }
                op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = match code {
                        op::SHORT_BINBYTES => usize::from(self.byte()?),
                        op::BINBYTES => u32::from_le_bytes(self.array()?) as usize,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.push_scalar(Object::Bytes(bytes), n)?;
                }
                op::EMPTY_LIST => self.push(Val::Empty(Kind::Seq(SeqKind::List)))?,
                op::EMPTY_TUPLE => self.push(Val::Empty(Kind::Seq(SeqKind::Tuple)))?,
                op::EMPTY_SET => self.push(Val::Empty(Kind::Seq(SeqKind::Set)))?,
                op::EMPTY_DICT => self.push(Val::Empty(Kind::Dict))?,
                op::LIST | op::TUPLE | op::FROZENSET => {
                    let m = self.close_mark(at)?;
                    let kind = match code {
                        op::LIST => SeqKind::List,
                        op::TUPLE => SeqKind::Tuple,
                        _ => SeqKind::FrozenSet,
                    };
                    let v = self.container_from(at, Kind::Seq(kind), m)?;
                    self.push(v)?;
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1) + 1;
                    if self.stack.len() < self.floor() + n {
                        return self.invalid(at, "stack underflow");
                    }
                    let from = self.stack.len() - n;
                    let v = self.container_from(at, Kind::Seq(SeqKind::Tuple), from)?;
                    self.push(v)?;
                }
                op::DICT => {
                    let m = self.close_mark(at)?;
                    let v = self.container_from(at, Kind::Dict, m)?;
                    self.push(v)?;
                }
                op::APPEND => {
                    if self.stack.len() <= self.floor() {
                        return self.invalid(at, "stack underflow");
                    }
                    self.extend(at, Kind::Seq(SeqKind::List), self.stack.len() - 1)?;
                }
                op::APPENDS => {
                    let m = self.close_mark(at)?;
                    self.extend(at, Kind::Seq(SeqKind::List), m)?;
                }
                op::ADDITEMS => {
                    let m = self.close_mark(at)?;
                    self.extend(at, Kind::Seq(SeqKind::Set), m)?;
                }
                op::SETITEM => {
                    if self.stack.len() < self.floor() + 2 {
                        return self.invalid(at, "stack underflow");
                    }
                    self.extend(at, Kind::Dict, self.stack.len() - 2)?;
                }
                op::SETITEMS => {
                    let m = self.close_mark(at)?;
                    self.extend(at, Kind::Dict, m)?;
                }
                op::PUT | op::BINPUT | op::LONG_BINPUT => {
                    let k = self.memo_key(at, code)?;
                    self.put(at, k)?;
                }
                op::MEMOIZE => {
                    let k = self.memo.len;
                    self.put(at, k)?;
                }
                op::GET | op::BINGET | op::LONG_BINGET => {
                    let k = self.memo_key(at, code)?;
                    self.get(at, k)?;
                }
                op::GLOBAL => {
                    let module = self.text_line(at)?;
                    let name = self.text_line(at)?;
                    let g = self.global(at, module, name)?;
                    self.push_global(g)?;
                }
                op::STACK_GLOBAL => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let g = match (self.scalar(&module), self.scalar(&name)) {
                        (Some(Object::Str(m)), Some(Object::Str(n))) => self.global(at, m, n)?,
                        _ => return self.invalid(at, "STACK_GLOBAL needs two str"),
                    };
                    self.push_global(g)?;
                }
                op::REDUCE => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let global = match &callable {
                        Val::Global(g) => *g,
                        Val::Ref(s) => match &self.slots[*s] {
                            Slot::Pending(Val::Global(g)) => *g,
                            _ => return self.forbidden(at, "a call of something not a global"),
                        },
                        _ => return self.forbidden(at, "a call of something not a global"),
                    };
                    // The arguments are a tuple (directly, or through the memo): a call never
                    // nests in another call's arguments without a tuple around it, so the
                    // depth below bounds the whole chain.
                    match &args {
                        Val::Cont(c) if c.kind == Kind::Seq(SeqKind::Tuple) => {}
                        Val::Empty(Kind::Seq(SeqKind::Tuple)) | Val::Ref(_) => {}
                        _ => return self.invalid(at, "REDUCE arguments are not a tuple"),
                    }
                    let depth = args.depth().max(1);
                    self.check_depth(depth)?;
                    self.charge(size_of::<CallVal>())?;
                    self.push(Val::Call(Box::new(CallVal {
                        global,
                        args,
                        offset: at,
                        depth,
                    })))?;
                }
                op::PERSID | op::BINPERSID => return self.forbidden(at, "a persistent id"),
                op::BUILD => self.build_token(at)?,
                op::NEWOBJ => self.new_token(at)?,
                op::INST | op::OBJ | op::NEWOBJ_EX => {
                    return self.forbidden(at, "an object instance");
                }
                op::EXT1 | op::EXT2 | op::EXT4 => {
                    return self.forbidden(at, "an extension registry code");
                }
                op::NEXT_BUFFER | op::READONLY_BUFFER => {
                    return self.invalid(at, "out-of-band buffers are not supported");
                }
                op::STRING => {
                    return self.invalid(at, "Python 2 quoted STRING is not supported");
                }
                other => return self.invalid(at, format!("unknown opcode 0x{other:02x}")),
            }
        }
    }
}
