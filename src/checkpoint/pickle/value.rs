//! What a pickle builds: values, and the arena (`Heap`) its containers and instances live in.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::{bail, Result};

/// A class or function a pickle names (`module.name`); never imported, never called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub module: String,
    pub name: String,
}

impl Global {
    pub fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }
}

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

pub type ObjId = usize;

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Global(Rc<Global>),
    Obj(ObjId),
}

#[derive(Debug)]
pub enum Object {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// An object of a class this reader does not construct: the class, the arguments it would
    /// have been built from, the items a dict or list subclass received, and its `BUILD` state.
    Instance {
        class: Rc<Global>,
        args: Vec<Value>,
        items: Vec<(Value, Value)>,
        list: Vec<Value>,
        state: Option<Value>,
    },
    /// Whatever the `Hooks` made (a storage or tensor record for torch).
    Custom(Box<dyn std::any::Any>),
}

/// Bounds on what one pickle may build; each is named in its error.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_stack: usize,
    pub max_marks: usize,
    pub max_memo: usize,
    pub max_objects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A VideoGPT-size Lightning checkpoint needs a few thousand of each.
        Limits { max_stack: 100_000, max_marks: 10_000, max_memo: 1 << 20, max_objects: 1 << 22 }
    }
}

#[derive(Default)]
pub struct Heap {
    pub objects: Vec<Object>,
    pub(super) max_objects: usize,
}

impl Heap {
    pub fn alloc(&mut self, object: Object) -> Result<Value> {
        if self.objects.len() >= self.max_objects {
            bail!(Weights, "the pickle builds more than {} objects (limit max_objects)", self.max_objects);
        }
        self.objects.push(object);
        Ok(Value::Obj(self.objects.len() - 1))
    }

    pub fn get(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Obj(id) => self.objects.get(*id),
            _ => None,
        }
    }

    /// The entries of a dict, an OrderedDict, or a dict-like instance (Lightning's AttributeDict,
    /// `argparse.Namespace`'s state).
    pub fn dict_items(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match self.get(v)? {
            Object::Dict(items) => Some(items),
            Object::Instance { state: Some(state), items, .. } if items.is_empty() => self.dict_items(state),
            Object::Instance { items, .. } => Some(items),
            _ => None,
        }
    }

    /// `dict[key]` for a string key (the last entry wins, as in Python).
    pub fn lookup<'a>(&'a self, v: &Value, key: &str) -> Option<&'a Value> {
        self.dict_items(v)?.iter().rev().find(|(k, _)| matches!(k, Value::Str(s) if &**s == key)).map(|(_, v)| v)
    }

    pub fn sequence(&self, v: &Value) -> Option<&[Value]> {
        match self.get(v)? {
            Object::List(items) | Object::Tuple(items) | Object::Set(items) => Some(items),
            _ => None,
        }
    }

    /// A short description for error messages (never recursive).
    pub fn describe(&self, v: &Value) -> String {
        match v {
            Value::None => "None".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::BigInt(_) => "a large integer".into(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => format!("{:?}", truncate(s, 40)),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Global(g) => g.to_string(),
            Value::Obj(_) => match self.get(v) {
                Some(Object::List(l)) => format!("a list of {}", l.len()),
                Some(Object::Tuple(l)) => format!("a tuple of {}", l.len()),
                Some(Object::Dict(d)) => format!("a dict of {}", d.len()),
                Some(Object::Set(s)) => format!("a set of {}", s.len()),
                Some(Object::Instance { class, .. }) => format!("a {class} object"),
                Some(Object::Custom(_)) => "a tensor or storage".into(),
                None => "nothing".into(),
            },
        }
    }
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

// --- what the machine does to the arena and the memo ---

pub(super) fn obj_id(v: &Value) -> ObjId {
    match v {
        Value::Obj(id) => *id,
        _ => usize::MAX,
    }
}

pub(super) fn memo_put(memo: &mut HashMap<u32, Value>, i: u32, v: Value, limits: Limits) -> Result<()> {
    if memo.len() >= limits.max_memo && !memo.contains_key(&i) {
        bail!(Weights, "the pickle's memo grows past {} entries (limit max_memo)", limits.max_memo);
    }
    memo.insert(i, v);
    Ok(())
}

pub(super) fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        bail!(Weights, "the pickle sets a dict item without a value (corrupt file)");
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

pub(super) fn extend_list(heap: &mut Heap, target: &Value, items: Vec<Value>) -> Result<()> {
    match heap.objects.get_mut(obj_id(target)) {
        Some(Object::List(l)) => l.extend(items),
        Some(Object::Instance { list, .. }) => list.extend(items),
        _ => bail!(Weights, "the pickle appends to something that is not a list (corrupt file)"),
    }
    Ok(())
}

pub(super) fn extend_dict(heap: &mut Heap, target: &Value, new: Vec<(Value, Value)>) -> Result<()> {
    match heap.objects.get_mut(obj_id(target)) {
        Some(Object::Dict(d)) => d.extend(new),
        Some(Object::Instance { items, .. }) => items.extend(new),
        _ => bail!(Weights, "the pickle sets items on something that is not a dict (corrupt file)"),
    }
    Ok(())
}
