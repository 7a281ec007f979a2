//! A pickle reader that never executes anything: it interprets the opcodes a torch
//! state dict uses (protocols 2 to 5) into plain values, knows a short allow-list of
//! globals (`collections.OrderedDict`, torch's tensor rebuilders, storage types and
//! dtypes) and refuses every other global or opcode by name, with where it was.
//!
//! Values live in an arena and the stack and memo hold their indices, so a memoized
//! container mutated later is seen mutated (as in Python) and nothing is ever copied:
//! the work is linear in the input, whatever it is.
//!
//! ```
//! use petal_interop::pickle::Pickle;
//! // {"w": 1} written by Python's pickle, protocol 2, refuses nothing...
//! let ok: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01K\x01s.";
//! assert!(Pickle::parse(&mut &ok[..]).is_ok());
//! // ...while `os.system("...")` is refused before anything could run.
//! let evil: &[u8] = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.";
//! let error = Pickle::parse(&mut &evil[..]).unwrap_err();
//! assert!(error.to_string().contains("refusing pickle global posix.system"));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;

use crate::storage::{Dtype, View};

/// The longest module or attribute name a GLOBAL may spell.
const MAX_GLOBAL_NAME: usize = 256;

/// Why a pickle could not be read: what, at which byte, and (when the pickle was
/// building a dict entry) under which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// The offset of the opcode in the pickle.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// The dict key whose value was being built, if any (`conv.weight`).
    pub key: Option<String>,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(key) = &self.key {
            write!(f, " in {key}")?;
        }
        write!(f, " (pickle byte {})", self.offset)
    }
}

impl std::error::Error for PickleError {}

/// A tensor as a checkpoint describes it: a view of a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// The storage's key (`data/<key>` in a zip checkpoint).
    pub storage: String,
    /// The storage's element type.
    pub dtype: Dtype,
    /// Which of the storage's elements the tensor holds.
    pub view: View,
}

/// An index into the arena of values.
type Id = usize;

/// A callable or type from the allow-list.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildParameter,
    /// A storage class or a dtype.
    Dtype(Dtype),
}

/// One value of the pickle.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage { key: String, dtype: Dtype },
    Tensor(TensorSpec),
}

impl Value {
    /// What the value is, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class or function",
            Value::Storage { .. } => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }
}

/// A parsed pickle: its values and the one STOP returned.
#[derive(Debug)]
pub struct Pickle {
    values: Vec<Value>,
    root: Id,
    storages: BTreeMap<String, Dtype>,
}

impl Pickle {
    /// Reads one pickle from `reader`, up to and including its STOP opcode (a legacy
    /// checkpoint holds several pickles in a row). Nothing in it is executed.
    pub fn parse(reader: &mut impl Read) -> Result<Pickle, PickleError> {
        Machine::default().run(reader)
    }

    /// Whether the pickled value is the integer `value`.
    pub fn is_int(&self, value: i128) -> bool {
        self.values[self.root] == Value::Int(value)
    }

    /// Every storage a persistent id named, with its element type.
    pub fn storages(&self) -> &BTreeMap<String, Dtype> {
        &self.storages
    }

    /// The strings of the list (or tuple) the pickle holds (a legacy checkpoint's
    /// storage keys).
    pub fn strings(&self) -> Result<Vec<String>, String> {
        let (Value::List(items) | Value::Tuple(items)) = &self.values[self.root] else {
            return Err(format!(
                "expected a list of strings, found {}",
                self.values[self.root].kind()
            ));
        };
        items
            .iter()
            .map(|&id| match &self.values[id] {
                Value::Str(s) => Ok(s.clone()),
                other => Err(format!("expected a string, found {}", other.kind())),
            })
            .collect()
    }

    /// The dict of tensors at `key_path` (keys separated by `/`; `None`: the pickle's
    /// own value), as (name, tensor) in the file's order. Any entry that is not a
    /// tensor is an error naming it; at the top level it lists the nested dicts a key
    /// path could pick.
    pub fn tensors(&self, key_path: Option<&str>) -> Result<Vec<(String, TensorSpec)>, String> {
        let mut id = self.root;
        for part in key_path.into_iter().flat_map(|p| p.split('/')) {
            let entries = self.dict(id).ok_or_else(|| {
                format!(
                    "cannot open key {part:?}: the value there is {}, not a dict",
                    self.values[id].kind()
                )
            })?;
            id = entries
                .iter()
                .find(|(k, _)| matches!(&self.values[*k], Value::Str(s) if s == part))
                .map(|&(_, v)| v)
                .ok_or_else(|| {
                    format!(
                        "no key {part:?} in the checkpoint (its keys: {})",
                        self.keys(entries).join(", ")
                    )
                })?;
        }
        let entries = self.dict(id).ok_or_else(|| {
            format!(
                "the checkpoint holds {}, not a dict of tensors",
                self.values[id].kind()
            )
        })?;
        entries
            .iter()
            .map(|&(k, v)| {
                let name = match &self.values[k] {
                    Value::Str(s) => s.clone(),
                    other => return Err(format!("a key is {}, not a string", other.kind())),
                };
                match &self.values[v] {
                    Value::Tensor(spec) => Ok((name, spec.clone())),
                    other => Err(self.not_a_tensor(&name, other, entries, key_path.is_none())),
                }
            })
            .collect()
    }

    fn not_a_tensor(
        &self,
        name: &str,
        value: &Value,
        entries: &[(Id, Id)],
        top_level: bool,
    ) -> String {
        let mut text = format!("entry {name:?} is {}, not a tensor", value.kind());
        let nested: Vec<String> = entries
            .iter()
            .filter(|(_, v)| self.dict(*v).is_some())
            .filter_map(|(k, _)| match &self.values[*k] {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        if top_level && !nested.is_empty() {
            text += &format!(
                "; a nested checkpoint? open one of its dicts by key: {}",
                nested.join(", ")
            );
        }
        text
    }

    fn dict(&self, id: Id) -> Option<&[(Id, Id)]> {
        match &self.values[id] {
            Value::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    fn keys(&self, entries: &[(Id, Id)]) -> Vec<String> {
        entries
            .iter()
            .map(|(k, _)| match &self.values[*k] {
                Value::Str(s) => s.clone(),
                other => format!("<{}>", other.kind()),
            })
            .collect()
    }
}

/// The pickle machine: the arena, the stack, the marks and the memo.
#[derive(Default)]
struct Machine {
    values: Vec<Value>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    storages: BTreeMap<String, Dtype>,
}

/// The input with the count of bytes read.
struct Input<'a, R> {
    reader: &'a mut R,
    offset: u64,
}

impl<R: Read> Input<'_, R> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut bytes = [0u8; N];
        self.reader
            .read_exact(&mut bytes)
            .map_err(|e| truncated(&e))?;
        self.offset += N as u64;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u64, String> {
        Ok(u32::from_le_bytes(self.array()?) as u64)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// `len` bytes, read as they come (a huge claimed length costs only what is there).
    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        let read = self
            .reader
            .by_ref()
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| truncated(&e))?;
        self.offset += read as u64;
        if (read as u64) < len {
            return Err(format!(
                "truncated: {len} bytes announced, {read} before the end"
            ));
        }
        Ok(bytes)
    }

    fn string(&mut self, len: u64) -> Result<String, String> {
        String::from_utf8(self.bytes(len)?).map_err(|_| "a string is not UTF-8".to_string())
    }

    /// A newline-terminated name (GLOBAL's arguments).
    fn line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        loop {
            match self.byte()? {
                b'\n' => break,
                _ if line.len() >= MAX_GLOBAL_NAME => {
                    return Err("a GLOBAL name is too long".to_string())
                }
                byte => line.push(byte),
            }
        }
        String::from_utf8(line).map_err(|_| "a GLOBAL name is not UTF-8".to_string())
    }
}

fn truncated(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        "truncated: the pickle ends before its STOP opcode".to_string()
    } else {
        format!("read failed: {error}")
    }
}

/// A signed little-endian integer of `bytes` (LONG1/LONG4), up to 16 bytes.
fn long(bytes: &[u8]) -> Result<i128, String> {
    if bytes.len() > 16 {
        return Err(format!("a {}-byte integer is too large", bytes.len()));
    }
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let mut full = [if negative { 0xff } else { 0 }; 16];
    full[..bytes.len()].copy_from_slice(bytes);
    Ok(i128::from_le_bytes(full))
}

impl Machine {
    fn run(mut self, reader: &mut impl Read) -> Result<Pickle, PickleError> {
        let mut input = Input { reader, offset: 0 };
        loop {
            let at = input.offset;
            let step = input.byte().and_then(|op| self.step(op, &mut input));
            match step {
                Ok(false) => {}
                Ok(true) => {
                    let root = self.pop().map_err(|reason| self.error(at, reason))?;
                    return Ok(Pickle {
                        values: self.values,
                        root,
                        storages: self.storages,
                    });
                }
                Err(reason) => return Err(self.error(at, reason)),
            }
        }
    }

    fn error(&self, offset: u64, reason: String) -> PickleError {
        PickleError {
            offset,
            reason,
            key: self.key_being_built(),
        }
    }

    /// The dict key whose value is under construction: after the topmost dict on the
    /// stack come finished key, value, key, ... items up to the next mark; an odd count
    /// means the last key's value is being built above that mark.
    fn key_being_built(&self) -> Option<String> {
        let dict = self
            .stack
            .iter()
            .rposition(|&id| matches!(self.values[id], Value::Dict(_)))?;
        let end = self
            .marks
            .iter()
            .copied()
            .find(|&mark| mark > dict + 1)
            .unwrap_or(self.stack.len());
        let items = &self.stack[dict + 1..end];
        if items.len() % 2 == 1 {
            if let Value::Str(key) = &self.values[*items.last()?] {
                return Some(key.clone());
            }
        }
        None
    }

    fn push(&mut self, value: Value) {
        self.values.push(value);
        self.stack.push(self.values.len() - 1);
    }

    fn pop(&mut self) -> Result<Id, String> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err("stack underflow (popping past a MARK)".to_string());
        }
        self.stack
            .pop()
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn top(&self) -> Result<Id, String> {
        match self.stack.last() {
            Some(&id) if self.marks.last() != Some(&self.stack.len()) => Ok(id),
            _ => Err("stack underflow".to_string()),
        }
    }

    /// The items above the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, String> {
        let mark = self.marks.pop().ok_or("no MARK on the stack")?;
        Ok(self.stack.split_off(mark))
    }

    fn pop_value(&mut self) -> Result<Value, String> {
        let id = self.pop()?;
        Ok(self.values[id].clone())
    }

    fn memo_put(&mut self, index: u64) -> Result<(), String> {
        let id = self.top()?;
        self.memo.insert(index, id);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Result<(), String> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| format!("memo entry {index} was never stored"))?;
        self.stack.push(id);
        Ok(())
    }

    /// Executes one opcode; `Ok(true)` at STOP.
    fn step(&mut self, op: u8, input: &mut Input<'_, impl Read>) -> Result<bool, String> {
        match op {
            0x80 => {
                let protocol = input.byte()?;
                if !(2..=5).contains(&protocol) {
                    return Err(format!("unsupported pickle protocol {protocol}"));
                }
            }
            0x95 => {
                input.u64()?; // FRAME: a length hint only
            }
            b'.' => return Ok(true),
            b'(' => self.marks.push(self.stack.len()),
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(input.array()?);
                self.push(Value::Int(v.into()))
            }
            b'K' => {
                let v = input.byte()?;
                self.push(Value::Int(v.into()))
            }
            b'M' => {
                let v = u16::from_le_bytes(input.array()?);
                self.push(Value::Int(v.into()))
            }
            0x8a | 0x8b => {
                let len = if op == 0x8a {
                    input.byte()?.into()
                } else {
                    input.u32()?
                };
                if len > 16 {
                    return Err(format!("a {len}-byte integer is too large"));
                }
                let v = long(&input.bytes(len)?)?;
                self.push(Value::Int(v))
            }
            b'G' => {
                let v = f64::from_be_bytes(input.array()?);
                self.push(Value::Float(v))
            }
            0x8c | b'X' | 0x8d | b'U' | b'T' => {
                let len = match op {
                    0x8c | b'U' => input.byte()?.into(),
                    0x8d => input.u64()?,
                    _ => input.u32()?,
                };
                let s = input.string(len)?;
                self.push(Value::Str(s))
            }
            b'C' | b'B' | 0x8e => {
                let len = match op {
                    b'C' => input.byte()?.into(),
                    b'B' => input.u32()?,
                    _ => input.u64()?,
                };
                let b = input.bytes(len)?;
                self.push(Value::Bytes(b))
            }
            b')' => self.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items))
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < n + self.marks.last().copied().unwrap_or(0) {
                    return Err("stack underflow".to_string());
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(Value::Tuple(items))
            }
            b']' => self.push(Value::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Value::List(items))
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![self.pop()?]
                } else {
                    self.pop_mark()?
                };
                let list = self.top()?;
                match &mut self.values[list] {
                    Value::List(existing) => existing.extend(items),
                    other => return Err(format!("APPEND to {}, not a list", other.kind())),
                }
            }
            b'}' => self.push(Value::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark()?;
                let pairs = pairs(&items)?;
                self.push(Value::Dict(pairs))
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    vec![key, value]
                } else {
                    self.pop_mark()?
                };
                let pairs = pairs(&items)?;
                let dict = self.top()?;
                match &mut self.values[dict] {
                    Value::Dict(existing) => existing.extend(pairs),
                    other => return Err(format!("SETITEM on {}, not a dict", other.kind())),
                }
            }
            b'q' => {
                let index = input.byte()?.into();
                self.memo_put(index)?
            }
            b'r' => {
                let index = input.u32()?;
                self.memo_put(index)?
            }
            0x94 => self.memo_put(self.memo.len() as u64)?,
            b'h' => {
                let index = input.byte()?.into();
                self.memo_get(index)?
            }
            b'j' => {
                let index = input.u32()?;
                self.memo_get(index)?
            }
            b'c' => {
                let module = input.line()?;
                let name = input.line()?;
                self.push_global(&module, &name)?
            }
            0x93 => {
                let (Value::Str(name), Value::Str(module)) = (self.pop_value()?, self.pop_value()?)
                else {
                    return Err("STACK_GLOBAL of values that are not strings".to_string());
                };
                self.push_global(&module, &name)?
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop_value()?;
                let value = self.call(callable, args)?;
                self.values.push(value);
                self.stack.push(self.values.len() - 1);
            }
            b'b' => {
                self.pop()?; // the state: attributes (an OrderedDict's `_metadata`), unused
                let target = self.top()?;
                if !matches!(self.values[target], Value::Dict(_)) {
                    return Err(format!(
                        "BUILD of {}: only dicts take a state here",
                        self.values[target].kind()
                    ));
                }
            }
            b'Q' => {
                let pid = self.pop_value()?;
                let storage = self.storage(pid)?;
                self.push(storage)
            }
            other => return Err(unsupported(other)),
        }
        Ok(false)
    }

    fn push_global(&mut self, module: &str, name: &str) -> Result<(), String> {
        let global = match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch", name) if Dtype::from_torch_name(name).is_some() => {
                Global::Dtype(Dtype::from_torch_name(name).expect("just checked"))
            }
            _ => return Err(format!("refusing pickle global {module}.{name}")),
        };
        self.push(Value::Global(global));
        Ok(())
    }

    /// REDUCE / NEWOBJ of an allowed callable: its value, computed here in Rust.
    fn call(&self, callable: Value, args: Id) -> Result<Value, String> {
        let Value::Tuple(args) = &self.values[args] else {
            return Err(format!(
                "call with {} for arguments",
                self.values[args].kind()
            ));
        };
        match callable {
            Value::Global(Global::OrderedDict) if args.is_empty() => Ok(Value::Dict(Vec::new())),
            Value::Global(Global::RebuildTensor) => self.rebuild_tensor(args),
            Value::Global(Global::RebuildParameter) => match args.first() {
                Some(&id) => match &self.values[id] {
                    tensor @ Value::Tensor(_) => Ok(tensor.clone()),
                    other => Err(format!("a parameter of {}, not a tensor", other.kind())),
                },
                None => Err("a parameter without its tensor".to_string()),
            },
            other => Err(format!(
                "refusing to call {} with {} arguments",
                other.kind(),
                args.len()
            )),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, ...)`.
    fn rebuild_tensor(&self, args: &[Id]) -> Result<Value, String> {
        let [storage, offset, size, stride, ..] = args else {
            return Err(format!(
                "_rebuild_tensor_v2 with {} arguments, not at least 4",
                args.len()
            ));
        };
        let Value::Storage { key, dtype } = &self.values[*storage] else {
            return Err("_rebuild_tensor_v2 of something that is not a storage".to_string());
        };
        let shape = self.usizes(*size)?;
        let stride = self.usizes(*stride)?;
        if shape.len() != stride.len() {
            return Err(format!("a tensor of size {shape:?} with stride {stride:?}"));
        }
        Ok(Value::Tensor(TensorSpec {
            storage: key.clone(),
            dtype: *dtype,
            view: View {
                offset: self.usize(*offset)?,
                shape,
                stride,
            },
        }))
    }

    /// A persistent id `('storage', type, key, location, numel[, view])`.
    fn storage(&mut self, pid: Value) -> Result<Value, String> {
        let Value::Tuple(items) = pid else {
            return Err(format!("a persistent id that is {}", pid.kind()));
        };
        let parts: Vec<&Value> = items.iter().map(|&id| &self.values[id]).collect();
        let (tag, dtype, key) = match parts.as_slice() {
            [Value::Str(tag), Value::Global(Global::Dtype(dtype)), Value::Str(key), _, _, rest @ ..]
                if rest.iter().all(|v| **v == Value::None) && rest.len() <= 1 =>
            {
                (tag, *dtype, key.clone())
            }
            _ => {
                return Err(
                    "a persistent id that is not ('storage', type, key, location, size)"
                        .to_string(),
                )
            }
        };
        if tag != "storage" {
            return Err(format!("a persistent id of kind {tag:?}, not a storage"));
        }
        if let Some(previous) = self.storages.insert(key.clone(), dtype) {
            if previous != dtype {
                return Err(format!("storage {key} is both {previous:?} and {dtype:?}"));
            }
        }
        Ok(Value::Storage { key, dtype })
    }

    fn usize(&self, id: Id) -> Result<usize, String> {
        match &self.values[id] {
            Value::Int(v) => {
                usize::try_from(*v).map_err(|_| format!("{v} is not a valid size or offset"))
            }
            other => Err(format!("expected an integer, found {}", other.kind())),
        }
    }

    fn usizes(&self, id: Id) -> Result<Vec<usize>, String> {
        match &self.values[id] {
            Value::Tuple(items) | Value::List(items) => {
                items.iter().map(|&item| self.usize(item)).collect()
            }
            other => Err(format!(
                "expected a tuple of integers, found {}",
                other.kind()
            )),
        }
    }
}

/// Items `k0, v0, k1, v1, ...` as pairs.
fn pairs(items: &[Id]) -> Result<Vec<(Id, Id)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err("a dict with a key and no value".to_string());
    }
    Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// The error for an opcode this reader does not interpret, with its name when it is a
/// pickle opcode.
fn unsupported(op: u8) -> String {
    let name = match op {
        b'i' => "INST",
        b'o' => "OBJ",
        0x82..=0x84 => "EXT",
        b'P' => "PERSID",
        0x92 => "NEWOBJ_EX",
        0x96 => "BYTEARRAY8",
        0x97 | 0x98 => "out-of-band buffer",
        b'0' | b'1' | b'2' => "POP/DUP",
        b'I' | b'L' | b'F' | b'S' | b'V' | b'g' | b'p' => "text-protocol opcode",
        0x8f..=0x91 => "set opcode",
        _ => "unknown opcode",
    };
    format!("unsupported pickle opcode 0x{op:02x} ({name})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Pickle, PickleError> {
        Pickle::parse(&mut &bytes[..])
    }

    #[test]
    fn memoized_containers_are_shared_not_copied() {
        // d = {}; l = [d]; then d["a"] = 1 through the memo: the list sees the key.
        let bytes = b"\x80\x02]q\x00}q\x01ah\x01X\x01\x00\x00\x00aK\x01s.";
        let pickle = parse(bytes).unwrap();
        assert_eq!(pickle.values[0], Value::List(vec![pickle.root]));
        assert!(matches!(&pickle.values[pickle.root], Value::Dict(d) if d.len() == 1));
    }

    #[test]
    fn integers_and_errors_say_where() {
        // LONG1 of torch's 10-byte legacy magic number.
        let magic = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
        assert!(parse(magic).unwrap().is_int(0x1950a86a20f9469cfc6c));
        let error = parse(b"\x80\x02K\x01i").unwrap_err();
        assert_eq!(error.offset, 4);
        assert!(error.reason.contains("0x69 (INST)"), "{error}");
        let error = parse(b"\x80\x02X\xff\xff\xff\x00ab").unwrap_err();
        assert!(error.reason.contains("truncated"), "{error}");
        assert!(parse(b"\x80\x02a.").is_err());
        assert!(parse(b"\x80\x02(.").is_err());
    }

    #[test]
    fn refused_globals_name_the_key_being_built() {
        // {"conv.weight": builtins.eval(...)}
        let bytes = b"\x80\x02}(X\x0b\x00\x00\x00conv.weightcbuiltins\neval\n";
        let error = parse(bytes).unwrap_err();
        assert_eq!(error.reason, "refusing pickle global builtins.eval");
        assert_eq!(error.key.as_deref(), Some("conv.weight"));
        assert!(error
            .to_string()
            .starts_with("refusing pickle global builtins.eval in conv.weight"));
    }
}
