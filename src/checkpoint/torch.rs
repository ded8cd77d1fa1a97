//! PyTorch's two checkpoint containers around the pickle, read without running it.
//!
//! - **zip** (torch ≥ 1.6, the default): `PREFIX/data.pkl` is the object's pickle, each tensor
//!   storage is the stored (uncompressed) entry `PREFIX/data/KEY`, `PREFIX/byteorder` says
//!   `little` or `big`. PREFIX is `archive` in recent versions and the file's stem in older ones.
//! - **legacy** (`_use_new_zipfile_serialization=False`, and everything before torch 1.6): five
//!   pickles in a row (a magic number, the protocol version 1001, a `sys_info` dict, the object,
//!   the sorted list of storage keys), then each storage as a little-endian i64 element count and
//!   its raw bytes, in the order of that list.
//!
//! In both, a tensor is a `REDUCE` of `torch._utils._rebuild_tensor_v2(storage, offset, size,
//! stride, …)` whose storage is a persistent id `('storage', torch.FloatStorage, KEY, 'cpu',
//! numel)`. `TorchHooks` turns those into `TensorRecord`s and refuses every function it does not
//! know by name, so a pickle that would call `os.system` fails before anything is read from it.

use std::collections::HashMap;

use super::pickle::{self, Global, Heap, Hooks, Limits, Object, Value};
use crate::{bail, Error, Result};

/// The element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" | "UntypedStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
}

/// A storage a tensor views: its key in the container, element type and length.
#[derive(Debug, Clone)]
pub struct StorageRecord {
    pub key: String,
    pub dtype: DType,
    pub numel: u64,
    /// legacy storage views: (offset in elements) into the root storage
    pub view_offset: u64,
}

/// A tensor as the pickle describes it; its bytes are gathered by `Checkpoint::tensor`.
#[derive(Debug, Clone)]
pub struct TensorRecord {
    pub storage: StorageRecord,
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
}

/// Largest tensor a checkpoint may describe (elements): VideoGPT's largest is 2.4 M.
const MAX_TENSOR_ELEMENTS: u64 = 1 << 31;

/// The functions a checkpoint may "call": each builds plain data here, and nothing else runs.
#[derive(Default)]
struct TorchHooks {
    /// legacy format: the element type each storage key was declared with
    storages: HashMap<String, DType>,
}

fn custom<T: 'static>(heap: &mut Heap, t: T) -> Result<Value> {
    heap.alloc(Object::Custom(Box::new(t)))
}

pub fn as_tensor<'h>(heap: &'h Heap, v: &Value) -> Option<&'h TensorRecord> {
    match heap.get(v)? {
        Object::Custom(c) => c.downcast_ref::<TensorRecord>(),
        _ => None,
    }
}

fn as_storage<'h>(heap: &'h Heap, v: &Value) -> Option<&'h StorageRecord> {
    match heap.get(v)? {
        Object::Custom(c) => c.downcast_ref::<StorageRecord>(),
        _ => None,
    }
}

fn int(heap: &Heap, v: &Value, what: &str) -> Result<u64> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        _ => bail!(Weights, "a tensor's {what} is {} instead of a non-negative integer", heap.describe(v)),
    }
}

fn ints(heap: &Heap, v: &Value, what: &str) -> Result<Vec<u64>> {
    let Some(items) = heap.sequence(v) else { bail!(Weights, "a tensor's {what} is {} instead of a tuple", heap.describe(v)) };
    if items.len() > 16 {
        bail!(Weights, "a tensor with {} dimensions (at most 16)", items.len());
    }
    items.iter().map(|x| int(heap, x, what)).collect()
}

impl Hooks for TorchHooks {
    fn persistent_load(&mut self, heap: &mut Heap, pid: Value) -> Result<Value> {
        let Some(t) = heap.sequence(&pid).map(<[Value]>::to_vec) else {
            bail!(Weights, "a persistent id that is {} (torch writes a tuple)", heap.describe(&pid))
        };
        match t.as_slice() {
            [Value::Str(tag), Value::Global(class), key, _location, numel, rest @ ..] if &**tag == "storage" => {
                let Some(dtype) = DType::from_storage_class(&class.name).filter(|_| class.module == "torch") else {
                    bail!(Weights, "a tensor storage of type {class}, which has no weights this engine reads")
                };
                let key = match key {
                    Value::Str(s) => s.to_string(),
                    Value::Int(i) => i.to_string(),
                    other => bail!(Weights, "a storage key that is {}", heap.describe(other)),
                };
                let numel = int(heap, numel, "storage length")?;
                let mut view_offset = 0;
                // legacy storage views: (view_key, offset, view_size)
                if let Some(Value::Obj(_)) = rest.first() {
                    let view = heap.sequence(&rest[0]).map(<[Value]>::to_vec).unwrap_or_default();
                    if let [_, offset, _] = view.as_slice() {
                        view_offset = int(heap, offset, "storage view offset")?;
                    }
                }
                if let Some(old) = self.storages.insert(key.clone(), dtype) {
                    if old != dtype {
                        bail!(Weights, "storage {key} is declared as both {old:?} and {dtype:?}");
                    }
                }
                custom(heap, StorageRecord { key, dtype, numel, view_offset })
            }
            _ => bail!(Weights, "a persistent id that is not a torch storage record"),
        }
    }

    fn call(&mut self, heap: &mut Heap, f: &Global, args: Vec<Value>) -> Result<Value> {
        let m = f.module.as_str();
        match (m, f.name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") if args.len() >= 4 => {
                let Some(storage) = as_storage(heap, &args[0]).cloned() else {
                    bail!(Weights, "a tensor rebuilt from {} instead of a storage", heap.describe(&args[0]))
                };
                let offset = int(heap, &args[1], "storage offset")?;
                let size = ints(heap, &args[2], "size")?;
                let stride = ints(heap, &args[3], "stride")?;
                if size.len() != stride.len() {
                    bail!(Weights, "a tensor with {} sizes and {} strides", size.len(), stride.len());
                }
                custom(heap, TensorRecord { storage, offset, size, stride })
            }
            // nn.Parameter around a tensor: the tensor
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") if !args.is_empty() => Ok(args[0].clone()),
            // a tensor subclass: rebuild the tensor with the inner function (it is checked here too)
            ("torch._tensor", "_rebuild_from_type_v2") if args.len() >= 3 => {
                let Value::Global(func) = &args[0] else { bail!(Weights, "_rebuild_from_type_v2 without a function") };
                let inner = heap.sequence(&args[2]).map(<[Value]>::to_vec).unwrap_or_default();
                self.call(heap, &func.clone(), inner)
            }
            ("collections", "OrderedDict") | ("builtins", "dict") => {
                let mut items = Vec::new();
                if let Some(pairs) = args.first().and_then(|a| heap.sequence(a)).map(<[Value]>::to_vec) {
                    for p in pairs {
                        match heap.sequence(&p) {
                            Some([k, v]) => items.push((k.clone(), v.clone())),
                            _ => bail!(Weights, "an OrderedDict built from {}", heap.describe(&p)),
                        }
                    }
                }
                heap.alloc(Object::Dict(items))
            }
            ("builtins", "set" | "frozenset" | "list" | "tuple") => {
                let items = args.first().and_then(|a| heap.sequence(a)).map(<[Value]>::to_vec).unwrap_or_default();
                heap.alloc(if f.name == "list" {
                    Object::List(items)
                } else if f.name == "tuple" {
                    Object::Tuple(items)
                } else {
                    Object::Set(items)
                })
            }
            ("torch", "Size") => Ok(args.first().cloned().unwrap_or(Value::None)),
            // protocol 2 writes `bytes` as _codecs.encode(text, 'latin1')
            ("_codecs", "encode") => match args.as_slice() {
                [Value::Str(s), Value::Str(enc)] if &**enc == "latin1" || &**enc == "latin-1" => {
                    let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                    Ok(Value::Bytes(bytes.ok_or_else(|| Error::Weights("latin1 bytes out of range".into()))?.into()))
                }
                _ => bail!(Weights, "the checkpoint's pickle calls _codecs.encode with unexpected arguments; refused (nothing was run)"),
            },
            // plain data that checkpoints carry beside the weights (numpy scalars in callback
            // states, argparse.Namespace, devices, old-style objects): kept as inert records
            ("copyreg", "_reconstructor")
            | ("argparse", "Namespace")
            | ("torch", "device")
            | ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar" | "_reconstruct")
            | ("numpy", "dtype" | "ndarray") => {
                let class = match (m, args.first()) {
                    ("copyreg", Some(Value::Global(g))) => g.clone(),
                    _ => std::rc::Rc::new(f.clone()),
                };
                heap.alloc(Object::Instance { class, args, items: Vec::new(), list: Vec::new(), state: None })
            }
            _ => bail!(Weights, "the checkpoint's pickle would call {f}; refused, nothing was run (a weights file never needs to call it)"),
        }
    }
}

/// A checkpoint's object tree and where each storage's bytes are.
pub struct Checkpoint<'a> {
    pub heap: Heap,
    pub root: Value,
    storages: HashMap<String, &'a [u8]>,
    big_endian: bool,
    pub format: &'static str,
}

pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// The legacy format starts with the pickled magic number 0x1950a86a20f9469cfc6c (protocol 2).
pub fn is_legacy(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19])
}

impl<'a> Checkpoint<'a> {
    pub fn read(bytes: &'a [u8]) -> Result<Self> {
        if is_zip(bytes) {
            Self::read_zip(bytes)
        } else if is_legacy(bytes) {
            Self::read_legacy(bytes)
        } else {
            bail!(Weights, "not a PyTorch checkpoint (neither torch's zip format nor its legacy format)")
        }
    }

    fn read_zip(bytes: &'a [u8]) -> Result<Self> {
        let entries = super::zip::entries(bytes)?;
        let pickles: Vec<&String> = entries.keys().filter(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1).collect();
        let [pkl] = pickles.as_slice() else {
            bail!(Weights, "a zip file without exactly one PREFIX/data.pkl: not a torch.save checkpoint ({} found)", pickles.len())
        };
        let prefix = pkl.trim_end_matches("data.pkl").to_string();
        let big_endian = match entries.get(&format!("{prefix}byteorder")) {
            Some(b) if *b == b"big" => true,
            Some(b) if *b == b"little" => false,
            Some(_) => bail!(Weights, "the checkpoint's byteorder record is neither `little` nor `big`"),
            None => false,
        };
        let mut heap = Heap::default();
        let mut hooks = TorchHooks::default();
        let data = entries[*pkl];
        let mut pos = 0;
        let root = pickle::load(data, &mut pos, &mut heap, &mut hooks, Limits::default())?;
        let storages = entries
            .iter()
            .filter_map(|(name, data)| name.strip_prefix(&prefix).and_then(|n| n.strip_prefix("data/")).map(|k| (k.to_string(), *data)))
            .collect();
        Ok(Checkpoint { heap, root, storages, big_endian, format: "zip" })
    }

    fn read_legacy(bytes: &'a [u8]) -> Result<Self> {
        let mut heap = Heap::default();
        let mut hooks = TorchHooks::default();
        let mut pos = 0;
        let limits = Limits::default();
        pickle::load(bytes, &mut pos, &mut heap, &mut hooks, limits)?; // the magic number, checked by is_legacy
        match pickle::load(bytes, &mut pos, &mut heap, &mut hooks, limits)? {
            Value::Int(1001) => {}
            v => bail!(Weights, "legacy checkpoint protocol {} (this reader knows 1001)", heap.describe(&v)),
        }
        let sys_info = pickle::load(bytes, &mut pos, &mut heap, &mut hooks, limits)?;
        let big_endian = matches!(heap.lookup(&sys_info, "little_endian"), Some(Value::Bool(false)));
        let root = pickle::load(bytes, &mut pos, &mut heap, &mut hooks, limits)?;
        let keys = pickle::load(bytes, &mut pos, &mut heap, &mut hooks, limits)?;
        let Some(keys) = heap.sequence(&keys).map(<[Value]>::to_vec) else { bail!(Weights, "the legacy checkpoint's storage list is not a list") };
        let mut storages = HashMap::new();
        for k in keys {
            let Value::Str(k) = k else { bail!(Weights, "a legacy storage key that is not a string") };
            let Some(&dtype) = hooks.storages.get(&*k) else { bail!(Weights, "legacy storage {k} is listed but no tensor declares it") };
            let Some(head) = bytes.get(pos..pos + 8) else { bail!(Weights, "the checkpoint ends before storage {k} (truncated file?)") };
            let numel = u64::from_le_bytes(head.try_into().unwrap());
            let len = numel.checked_mul(dtype.size() as u64).and_then(|n| usize::try_from(n).ok());
            let end = len.and_then(|n| (pos + 8).checked_add(n)).filter(|&e| e <= bytes.len());
            let Some(end) = end else { bail!(Weights, "storage {k} says {numel} elements, past the end of the file (truncated?)") };
            storages.insert(k.to_string(), &bytes[pos + 8..end]);
            pos = end;
        }
        Ok(Checkpoint { heap, root, storages, big_endian, format: "legacy" })
    }

    /// The tensor's elements, contiguous, little-endian, in its own dtype.
    pub fn tensor(&self, t: &TensorRecord) -> Result<Vec<u8>> {
        let s = &t.storage;
        let Some(data) = self.storages.get(&s.key) else { bail!(Weights, "storage {} is missing from the checkpoint", s.key) };
        let esize = s.dtype.size();
        let have = (data.len() / esize) as u64;
        let numel = t.size.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_TENSOR_ELEMENTS);
        let Some(numel) = numel else { bail!(Weights, "a tensor of shape {:?} is past the size limit ({MAX_TENSOR_ELEMENTS} elements)", t.size) };
        let mut out = Vec::with_capacity(numel as usize * esize);
        if numel > 0 {
            // the last element it reads must lie inside the storage
            let last = t
                .size
                .iter()
                .zip(&t.stride)
                .try_fold(s.view_offset.checked_add(t.offset), |a, (&d, &st)| Some(a.and_then(|a| (d - 1).checked_mul(st).and_then(|x| a.checked_add(x)))));
            match last.flatten() {
                Some(l) if l < have => {}
                _ => bail!(Weights, "a tensor of shape {:?} reads past the end of storage {} ({have} elements)", t.size, s.key),
            }
            let mut index = vec![0u64; t.size.len()];
            for _ in 0..numel {
                let at = s.view_offset + t.offset + index.iter().zip(&t.stride).map(|(i, st)| i * st).sum::<u64>();
                let at = at as usize * esize;
                let el = &data[at..at + esize];
                if self.big_endian {
                    out.extend(el.iter().rev());
                } else {
                    out.extend_from_slice(el);
                }
                for d in (0..index.len()).rev() {
                    index[d] += 1;
                    if index[d] < t.size[d] {
                        break;
                    }
                    index[d] = 0;
                }
            }
        }
        Ok(out)
    }
}
