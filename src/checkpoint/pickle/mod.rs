//! A pickle reader that never executes anything.
//!
//! Python's unpickler imports every global a pickle names and calls whatever `REDUCE` tells it to,
//! which is why `torch.load(weights_only=False)` on a stranger's checkpoint can run any code. This
//! reader runs the same stack machine (protocols 0–5, the opcodes `torch.save` and Lightning
//! produce) but a global stays a name: a `Global` value that is never imported. What a `REDUCE`
//! call means is decided by `Hooks::call` (the torch layer knows `_rebuild_tensor_v2`,
//! `OrderedDict` and a few other data constructors, and refuses the rest by name); instances made
//! with `NEWOBJ`/`BUILD` become inert `Object::Instance` records of their class, arguments and
//! state.
//!
//! Objects live in an arena (`Heap`) and refer to each other by index, so a pickle that builds a
//! cycle or a very deep structure through the memo costs nothing to hold or drop, and the walkers
//! that read the result only go where they expect data. Every count is bounded (`Limits`).

use std::collections::HashMap;
use std::rc::Rc;

use crate::{bail, Error, Result};

mod value;
use value::{extend_dict, extend_list, memo_put, obj_id, pairs, truncate};
pub use value::{Global, Heap, Limits, ObjId, Object, Value};

/// What a pickle's effects mean: the torch layer implements these.
pub trait Hooks {
    /// `BINPERSID`/`PERSID`: an object stored outside the pickle (torch: a tensor storage).
    fn persistent_load(&mut self, heap: &mut Heap, pid: Value) -> Result<Value>;
    /// `REDUCE`: `func(*args)`. Implementations build data for the functions they know and refuse
    /// every other global with an error that names it.
    fn call(&mut self, heap: &mut Heap, func: &Global, args: Vec<Value>) -> Result<Value>;
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else { bail!(Weights, "the pickle ends in the middle of an opcode (truncated file?)") };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| Error::Weights(format!("a pickle length of {n} bytes")))
    }
    /// A text line (protocol 0 arguments), without its newline.
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.bytes[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else { bail!(Weights, "the pickle ends inside a text argument") };
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| Error::Weights("a pickle text argument is not UTF-8".into()))
    }
}

fn utf8(b: &[u8]) -> Result<Rc<str>> {
    Ok(std::str::from_utf8(b).map_err(|_| Error::Weights("a pickled string is not valid UTF-8".into()))?.into())
}

fn global(module: &str, name: &str) -> Value {
    Value::Global(Rc::new(Global { module: module.to_string(), name: name.to_string() }))
}

/// Runs one pickle from `bytes[*pos..]` to its `STOP` and returns the value it leaves, with `*pos`
/// just past the `STOP` (the legacy torch format is several pickles in a row).
pub fn load(bytes: &[u8], pos: &mut usize, heap: &mut Heap, hooks: &mut dyn Hooks, limits: Limits) -> Result<Value> {
    heap.max_objects = limits.max_objects;
    let mut r = Reader { bytes, pos: *pos };
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();

    macro_rules! pop {
        () => {
            match stack.pop() {
                Some(v) => v,
                None => bail!(Weights, "the pickle pops from an empty stack (corrupt file)"),
            }
        };
    }
    // the items above the last MARK, which is removed
    macro_rules! pop_mark {
        () => {{
            let Some(m) = marks.pop() else { bail!(Weights, "the pickle has no MARK where one is needed (corrupt file)") };
            if m > stack.len() {
                bail!(Weights, "the pickle's MARK is above its stack (corrupt file)");
            }
            stack.split_off(m)
        }};
    }
    macro_rules! top {
        () => {
            match stack.last() {
                Some(v) => v.clone(),
                None => bail!(Weights, "the pickle reads an empty stack (corrupt file)"),
            }
        };
    }

    loop {
        if stack.len() > limits.max_stack {
            bail!(Weights, "the pickle's stack grows past {} entries (limit max_stack)", limits.max_stack);
        }
        let op = r.u8()?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    bail!(Weights, "pickle protocol {proto} is newer than this reader (protocols 0–5)");
                }
            }
            0x95 => {
                r.u64()?; // FRAME: a length hint
            }
            b'.' => break,
            b'(' => {
                if marks.len() >= limits.max_marks {
                    bail!(Weights, "the pickle nests more than {} MARKs (limit max_marks)", limits.max_marks);
                }
                marks.push(stack.len());
            }
            b'0' => {
                pop!();
            }
            b'1' => {
                let _ = pop_mark!();
            }
            b'2' => stack.push(top!()),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'J' => stack.push(Value::Int(r.u32()? as i32 as i64)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(r.u16()? as i64)),
            0x8a | 0x8b => {
                let n = if op == 0x8a { r.u8()? as usize } else { r.u32()? as usize };
                let b = r.take(n)?;
                stack.push(if n <= 8 {
                    let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) { 0xff } else { 0 };
                    let mut w = [fill; 8];
                    w[..n].copy_from_slice(b);
                    Value::Int(i64::from_le_bytes(w))
                } else {
                    Value::BigInt(b.into())
                });
            }
            b'I' | b'L' => {
                let line = r.line()?;
                let t = line.trim_end_matches('L');
                stack.push(match t {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    _ => Value::Int(t.parse().map_err(|_| Error::Weights(format!("a pickled integer {:?} does not fit 64 bits", truncate(t, 30))))?),
                });
            }
            b'G' => stack.push(Value::Float(f64::from_be_bytes(r.take(8)?.try_into().unwrap()))),
            b'F' => {
                let line = r.line()?;
                stack.push(Value::Float(line.parse().map_err(|_| Error::Weights("a pickled float is not a number".into()))?));
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(utf8(r.take(n)?)?));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(utf8(r.take(n)?)?));
            }
            0x8d => {
                let n = r.len64()?;
                stack.push(Value::Str(utf8(r.take(n)?)?));
            }
            // Python 2 strings (BINSTRING, SHORT_BINSTRING): bytes that were text; kept as text when they are UTF-8
            b'T' | b'U' => {
                let n = if op == b'T' { r.u32()? as usize } else { r.u8()? as usize };
                let b = r.take(n)?;
                stack.push(match std::str::from_utf8(b) {
                    Ok(s) => Value::Str(s.into()),
                    Err(_) => Value::Bytes(b.into()),
                });
            }
            b'B' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.into()));
            }
            b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.into()));
            }
            0x8e | 0x96 => {
                let n = r.len64()?;
                stack.push(Value::Bytes(r.take(n)?.into()));
            }
            b')' => stack.push(heap.alloc(Object::Tuple(Vec::new()))?),
            0x85 => {
                let a = pop!();
                stack.push(heap.alloc(Object::Tuple(vec![a]))?);
            }
            0x86 => {
                let b = pop!();
                let a = pop!();
                stack.push(heap.alloc(Object::Tuple(vec![a, b]))?);
            }
            0x87 => {
                let c = pop!();
                let b = pop!();
                let a = pop!();
                stack.push(heap.alloc(Object::Tuple(vec![a, b, c]))?);
            }
            b't' => {
                let items = pop_mark!();
                stack.push(heap.alloc(Object::Tuple(items))?);
            }
            b']' => stack.push(heap.alloc(Object::List(Vec::new()))?),
            b'l' => {
                let items = pop_mark!();
                stack.push(heap.alloc(Object::List(items))?);
            }
            b'}' => stack.push(heap.alloc(Object::Dict(Vec::new()))?),
            b'd' => {
                let items = pop_mark!();
                stack.push(heap.alloc(Object::Dict(pairs(items)?))?);
            }
            0x8f => stack.push(heap.alloc(Object::Set(Vec::new()))?),
            0x91 => {
                let items = pop_mark!();
                stack.push(heap.alloc(Object::Set(items))?);
            }
            b'a' => {
                let v = pop!();
                extend_list(heap, &top!(), vec![v])?;
            }
            b'e' => {
                let items = pop_mark!();
                extend_list(heap, &top!(), items)?;
            }
            0x90 => {
                let items = pop_mark!();
                match heap.objects.get_mut(obj_id(&top!())) {
                    Some(Object::Set(s)) => s.extend(items),
                    _ => bail!(Weights, "the pickle adds set items to something that is not a set (corrupt file)"),
                }
            }
            b's' => {
                let v = pop!();
                let k = pop!();
                extend_dict(heap, &top!(), vec![(k, v)])?;
            }
            b'u' => {
                let items = pop_mark!();
                extend_dict(heap, &top!(), pairs(items)?)?;
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                stack.push(global(&module, &name));
            }
            0x93 => {
                let name = pop!();
                let module = pop!();
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(global(&m, &n)),
                    _ => bail!(Weights, "the pickle's STACK_GLOBAL names are not strings (corrupt file)"),
                }
            }
            b'R' => {
                let args = pop!();
                let func = pop!();
                let Value::Global(g) = func else { bail!(Weights, "the pickle calls {}, which is not a named function", heap.describe(&func)) };
                let args = match heap.sequence(&args) {
                    Some(a) => a.to_vec(),
                    None => bail!(Weights, "the pickle calls {g} with {} instead of an argument tuple", heap.describe(&args)),
                };
                let v = hooks.call(heap, &g, args)?;
                stack.push(v);
            }
            0x81 | 0x92 => {
                if op == 0x92 {
                    pop!(); // keyword arguments
                }
                let args = pop!();
                let class = pop!();
                let Value::Global(class) = class else { bail!(Weights, "the pickle instantiates {}, which is not a class", heap.describe(&class)) };
                let args = heap.sequence(&args).map(<[Value]>::to_vec).unwrap_or_default();
                stack.push(heap.alloc(Object::Instance { class, args, items: Vec::new(), list: Vec::new(), state: None })?);
            }
            b'o' => {
                let mut items = pop_mark!();
                if items.is_empty() {
                    bail!(Weights, "the pickle's OBJ has no class (corrupt file)");
                }
                let Value::Global(class) = items.remove(0) else { bail!(Weights, "the pickle instantiates something that is not a class") };
                stack.push(heap.alloc(Object::Instance { class, args: items, items: Vec::new(), list: Vec::new(), state: None })?);
            }
            b'i' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                let args = pop_mark!();
                let class = Rc::new(Global { module, name });
                stack.push(heap.alloc(Object::Instance { class, args, items: Vec::new(), list: Vec::new(), state: None })?);
            }
            b'b' => {
                let state = pop!();
                let target = top!();
                if let Value::Obj(id) = target {
                    if let Some(Object::Instance { state: s, .. }) = heap.objects.get_mut(id) {
                        *s = Some(state);
                    }
                    // BUILD on a dict (an OrderedDict's `_metadata`) or a tensor: attributes the
                    // weights do not need
                }
            }
            b'Q' => {
                let pid = pop!();
                let v = hooks.persistent_load(heap, pid)?;
                stack.push(v);
            }
            b'P' => {
                let pid = Value::Str(r.line()?.into());
                let v = hooks.persistent_load(heap, pid)?;
                stack.push(v);
            }
            b'p' => {
                let i = r.line()?.parse::<u32>().map_err(|_| Error::Weights("a pickle memo index is not a number".into()))?;
                memo_put(&mut memo, i, top!(), limits)?;
            }
            b'q' => {
                let i = r.u8()? as u32;
                memo_put(&mut memo, i, top!(), limits)?;
            }
            b'r' => {
                let i = r.u32()?;
                memo_put(&mut memo, i, top!(), limits)?;
            }
            0x94 => {
                let i = memo.len() as u32;
                memo_put(&mut memo, i, top!(), limits)?;
            }
            b'g' | b'h' | b'j' => {
                let i = match op {
                    b'g' => r.line()?.parse::<u32>().map_err(|_| Error::Weights("a pickle memo index is not a number".into()))?,
                    b'h' => r.u8()? as u32,
                    _ => r.u32()?,
                };
                match memo.get(&i) {
                    Some(v) => stack.push(v.clone()),
                    None => bail!(Weights, "the pickle reads memo entry {i}, which was never written (corrupt file)"),
                }
            }
            0x82..=0x84 => bail!(Weights, "the pickle uses the copyreg extension registry (EXT opcodes), which checkpoints never need"),
            0x97 | 0x98 => bail!(Weights, "the pickle refers to out-of-band buffers (protocol 5), which a file cannot carry"),
            b'S' | b'V' => bail!(Weights, "the pickle uses protocol 0 text strings, which torch.save never writes"),
            other => bail!(Weights, "unknown pickle opcode 0x{other:02x} at byte {} (not a pickle, or corrupt)", r.pos - 1),
        }
    }
    *pos = r.pos;
    match stack.pop() {
        Some(v) if stack.is_empty() => Ok(v),
        _ => bail!(Weights, "the pickle stops with {} values on its stack instead of 1 (corrupt file)", stack.len() + 1),
    }
}
