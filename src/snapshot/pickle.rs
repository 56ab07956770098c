//! A pickle reader that never runs code: plain data rebuilt, globals, calls and object states kept
//! as data, any global an allow-list does not name refused (network pickles are code).
use anyhow::{bail, Context, Result};

/// A value of a pickle, with calls and objects kept as data.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// `module.name`, an allowed global.
    Global(String, String),
    /// `func(*args)` (REDUCE) or `cls.__new__(cls, *args)` (NEWOBJ), with the state BUILD gave
    /// it (None if none) and the items SETITEMS/APPENDS added (an OrderedDict's, a list
    /// subclass's).
    Call {
        func: Box<Value>,
        args: Box<Value>,
        state: Box<Value>,
        items: Vec<(Value, Value)>,
        appended: Vec<Value>,
    },
    /// A persistent id (torch's storages).
    PersId(Box<Value>),
    /// A reference back to an enclosing object (e.g. a module's hook that holds the module),
    /// not followed.
    Cycle,
}

/// Objects live in an arena so that memoized containers filled later are seen filled.
#[derive(Clone, Debug)]
enum Node {
    Leaf(Value),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    Call(Box<CallNode>),
    PersId(usize),
}

#[derive(Clone, Debug)]
struct CallNode {
    func: usize,
    args: usize,
    state: Option<usize>,
    items: Vec<(usize, usize)>,
    appended: Vec<usize>,
}

impl CallNode {
    fn node(func: usize, args: usize) -> Node {
        Node::Call(Box::new(CallNode {
            func,
            args,
            state: None,
            items: vec![],
            appended: vec![],
        }))
    }
}

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 256;
/// Most values built from one pickle: shared references are copied out, so a small hostile
/// pickle could otherwise expand exponentially.
const MAX_VALUES: usize = 5_000_000;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u32, usize>,
    allowed: &'a dyn Fn(&str, &str) -> bool,
    /// Values built so far by `value`.
    built: std::cell::Cell<usize>,
    /// The nodes `value` is inside of (a reference to one of them is a cycle).
    open: std::cell::RefCell<std::collections::HashSet<usize>>,
}

/// Read the pickle `data`; `allowed(module, name)` says which globals may appear.
pub fn read(data: &[u8], allowed: &dyn Fn(&str, &str) -> bool) -> Result<Value> {
    Ok(read_at(data, 0, allowed)?.0)
}

/// Read the pickle starting at `pos` of `data` (several may follow one another); the value
/// and the position after its STOP.
pub fn read_at(
    data: &[u8],
    pos: usize,
    allowed: &dyn Fn(&str, &str) -> bool,
) -> Result<(Value, usize)> {
    let mut m = Machine {
        data,
        pos,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Default::default(),
        allowed,
        built: std::cell::Cell::new(0),
        open: Default::default(),
    };
    let root = m.run()?;
    Ok((m.value(root, 0)?, m.pos))
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.context("truncated pickle")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .context("truncated pickle")?;
        let s = String::from_utf8(rest[..n].to_vec()).context("non-UTF-8 global name")?;
        self.pos += n + 1;
        Ok(s)
    }
    fn push(&mut self, n: Node) {
        self.nodes.push(n);
        self.stack.push(self.nodes.len() - 1);
    }
    fn pop(&mut self) -> Result<usize> {
        self.stack.pop().context("pickle stack underflow")
    }
    fn pop_mark(&mut self) -> Result<Vec<usize>> {
        let m = self.marks.pop().context("pickle mark missing")?;
        if m > self.stack.len() {
            bail!("bad pickle mark");
        }
        Ok(self.stack.split_off(m))
    }
    fn global(&mut self, module: String, name: String) -> Result<()> {
        if !(self.allowed)(&module, &name) {
            bail!("the pickle refers to {module}.{name}, which is not on the allow-list of what a network pickle may hold; it is refused unread");
        }
        self.push(Node::Leaf(Value::Global(module, name)));
        Ok(())
    }
    fn text(&mut self, n: usize) -> Result<()> {
        let s = String::from_utf8(self.take(n)?.to_vec()).context("bad UTF-8 in pickle")?;
        self.push(Node::Leaf(Value::Str(s)));
        Ok(())
    }
    fn bytes(&mut self, n: usize) -> Result<()> {
        let b = self.take(n)?.to_vec();
        self.push(Node::Leaf(Value::Bytes(b)));
        Ok(())
    }
    fn long(&mut self, n: usize) -> Result<()> {
        let b = self.take(n)?;
        if n > 8 {
            let big = Value::BigInt(b.to_vec());
            self.push(Node::Leaf(big));
            return Ok(());
        }
        let mut v: i64 = 0;
        for (i, &x) in b.iter().enumerate() {
            v |= (x as i64) << (8 * i);
        }
        if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
            v -= 1i64 << (8 * n);
        }
        self.push(Node::Leaf(Value::Int(v)));
        Ok(())
    }
    fn size(&mut self, bytes: usize) -> Result<usize> {
        let mut b = [0u8; 8];
        b[..bytes].copy_from_slice(self.take(bytes)?);
        usize::try_from(u64::from_le_bytes(b)).context("pickle length")
    }
    fn memo_put(&mut self, key: u32) -> Result<()> {
        let top = *self.stack.last().context("memo of an empty stack")?;
        self.memo.insert(key, top);
        Ok(())
    }
    fn memo_get(&mut self, key: u32) -> Result<()> {
        let i = *self
            .memo
            .get(&key)
            .context("pickle refers to an unknown memo entry")?;
        self.stack.push(i);
        Ok(())
    }

    fn run(&mut self) -> Result<usize> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                } // PROTO
                0x95 => {
                    self.take(8)?;
                } // FRAME
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = *self.stack.last().context("DUP of an empty stack")?;
                    self.stack.push(t);
                }
                b'N' => self.push(Node::Leaf(Value::None)),
                0x88 => self.push(Node::Leaf(Value::Bool(true))),
                0x89 => self.push(Node::Leaf(Value::Bool(false))),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Node::Leaf(Value::Int(v as i64)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Node::Leaf(Value::Int(v as i64)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Node::Leaf(Value::Int(v as i64)));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    self.long(n)?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Node::Leaf(Value::Float(v)));
                }
                0x8c => {
                    let n = self.size(1)?;
                    self.text(n)?;
                }
                b'X' => {
                    let n = self.size(4)?;
                    self.text(n)?;
                }
                0x8d => {
                    let n = self.size(8)?;
                    self.text(n)?;
                }
                b'C' => {
                    let n = self.size(1)?;
                    self.bytes(n)?;
                }
                b'B' => {
                    let n = self.size(4)?;
                    self.bytes(n)?;
                }
                0x8e | 0x96 => {
                    let n = self.size(8)?;
                    self.bytes(n)?;
                }
                op => self.container_op(op)?,
            }
        }
    }

    fn container_op(&mut self, op: u8) -> Result<()> {
        match op {
            b')' => self.push(Node::Tuple(vec![])),
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    bail!("pickle stack underflow");
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(Node::Tuple(items));
            }
            b']' => self.push(Node::List(vec![])),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items));
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![self.pop()?]
                } else {
                    self.pop_mark()?
                };
                let t = *self.stack.last().context("APPEND to nothing")?;
                match &mut self.nodes[t] {
                    Node::List(v) | Node::Set(v) => v.extend(items),
                    Node::Call(c) => c.appended.extend(items),
                    _ => bail!("APPEND to something that is not a list"),
                }
            }
            b'}' => self.push(Node::Dict(vec![])),
            0x8f => self.push(Node::Set(vec![])),
            b'd' | b's' | b'u' => {
                let items = match op {
                    b's' => {
                        let v = self.pop()?;
                        vec![self.pop()?, v]
                    }
                    _ => self.pop_mark()?,
                };
                if items.len() % 2 != 0 {
                    bail!("odd number of dict items in pickle");
                }
                let pairs = items.chunks(2).map(|p| (p[0], p[1]));
                if op == b'd' {
                    let pairs = pairs.collect();
                    self.push(Node::Dict(pairs));
                } else {
                    let t = *self.stack.last().context("SETITEM on nothing")?;
                    match &mut self.nodes[t] {
                        Node::Dict(v) => v.extend(pairs),
                        Node::Call(c) => c.items.extend(pairs),
                        _ => bail!("SETITEM on something that is not a dict"),
                    }
                }
            }
            0x90 | 0x91 => {
                let items = self.pop_mark()?;
                if op == 0x91 {
                    self.push(Node::Set(items));
                } else {
                    let t = *self.stack.last().context("ADDITEMS on nothing")?;
                    match &mut self.nodes[t] {
                        Node::Set(v) => v.extend(items),
                        _ => bail!("ADDITEMS on something that is not a set"),
                    }
                }
            }
            op => self.object_op(op)?,
        }
        Ok(())
    }

    fn object_op(&mut self, op: u8) -> Result<()> {
        match op {
            b'q' => {
                let k = self.u8()? as u32;
                self.memo_put(k)?;
            }
            b'r' => {
                let k = u32::from_le_bytes(self.le()?);
                self.memo_put(k)?;
            }
            0x94 => {
                let k = self.memo.len() as u32;
                self.memo_put(k)?;
            }
            b'h' => {
                let k = self.u8()? as u32;
                self.memo_get(k)?;
            }
            b'j' => {
                let k = u32::from_le_bytes(self.le()?);
                self.memo_get(k)?;
            }
            b'c' => {
                let (module, name) = (self.line()?, self.line()?);
                self.global(module, name)?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Node::Leaf(Value::Str(m)), Node::Leaf(Value::Str(n))) =
                    (self.nodes[module].clone(), self.nodes[name].clone())
                else {
                    bail!("STACK_GLOBAL of non-strings");
                };
                self.global(m, n)?;
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let func = self.pop()?;
                self.push(CallNode::node(func, args));
            }
            0x92 => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let both = self.nodes.len();
                self.nodes.push(Node::Tuple(vec![args, kwargs]));
                self.push(CallNode::node(cls, both));
            }
            b'b' => {
                let state = self.pop()?;
                let t = *self.stack.last().context("BUILD on nothing")?;
                match &mut self.nodes[t] {
                    Node::Call(c) => c.state = Some(state),
                    _ => bail!("BUILD on something that is not an object"),
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                self.push(Node::PersId(pid));
            }
            op => bail!(
                "pickle opcode 0x{op:02x} is not supported (Python 3's protocols 3 to 5 are read)"
            ),
        }
        Ok(())
    }

    /// The owned value of node `i` (a reference back to a node it is inside of: `Cycle`).
    fn value(&self, i: usize, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            bail!("pickle nested deeper than {MAX_DEPTH}");
        }
        if !self.open.borrow_mut().insert(i) {
            return Ok(Value::Cycle);
        }
        let v = self.value_inside(i, depth);
        self.open.borrow_mut().remove(&i);
        v
    }

    fn value_inside(&self, i: usize, depth: usize) -> Result<Value> {
        self.built.set(self.built.get() + 1);
        if self.built.get() > MAX_VALUES {
            bail!("pickle expands to more than {MAX_VALUES} values; refused");
        }
        let v = |j: usize| self.value(j, depth + 1);
        let all = |js: &[usize]| js.iter().map(|&j| v(j)).collect::<Result<Vec<_>>>();
        Ok(match &self.nodes[i] {
            Node::Leaf(x) => x.clone(),
            Node::List(js) => Value::List(all(js)?),
            Node::Tuple(js) => Value::Tuple(all(js)?),
            Node::Set(js) => Value::Set(all(js)?),
            Node::Dict(ps) => Value::Dict(
                ps.iter()
                    .map(|&(k, x)| Ok((v(k)?, v(x)?)))
                    .collect::<Result<_>>()?,
            ),
            Node::Call(c) => Value::Call {
                func: Box::new(v(c.func)?),
                args: Box::new(v(c.args)?),
                state: Box::new(match c.state {
                    Some(s) => v(s)?,
                    None => Value::None,
                }),
                items: c
                    .items
                    .iter()
                    .map(|&(k, x)| Ok((v(k)?, v(x)?)))
                    .collect::<Result<_>>()?,
                appended: all(&c.appended)?,
            },
            Node::PersId(p) => Value::PersId(Box::new(v(*p)?)),
        })
    }
}
