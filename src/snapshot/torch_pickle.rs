//! Tensors and module state dicts inside plain pickles of PyTorch objects, rebuilt from the data
//! (`_rebuild_tensor_v2` over legacy `torch.save` storage blobs) without running any code.
use super::pickle::{read_at, Value};
use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

/// The globals a pickled tensor or parameter needs.
pub fn tensor_global(module: &str, name: &str) -> bool {
    match module {
        "torch._utils" => matches!(name, "_rebuild_tensor_v2" | "_rebuild_parameter"),
        "torch.storage" => name == "_load_from_bytes",
        "torch" => storage_kind(name).is_some(),
        "collections" => name == "OrderedDict",
        _ => false,
    }
}

/// Element kind of a legacy storage class.
fn storage_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

fn ints(v: &Value, what: &str) -> Result<Vec<i64>> {
    let Value::Tuple(xs) = v else {
        bail!("{what} is not a tuple");
    };
    xs.iter()
        .map(|x| match x {
            Value::Int(i) if *i >= 0 => Ok(*i),
            _ => bail!("{what} holds {x:?}"),
        })
        .collect()
}

/// The tensor a pickled value stands for: a tensor or a parameter (on the CPU).
pub fn tensor(v: &Value) -> Result<Tensor> {
    let Value::Call { func, args, .. } = v else {
        bail!("not a pickled tensor");
    };
    let Value::Tuple(args) = &**args else {
        bail!("tensor arguments are not a tuple");
    };
    match &**func {
        Value::Global(m, n) if m == "torch._utils" && n == "_rebuild_parameter" => {
            tensor(args.first().context("parameter without data")?)
        }
        Value::Global(m, n) if m == "torch._utils" && n == "_rebuild_tensor_v2" => {
            let [storage, offset, size, stride, ..] = args.as_slice() else {
                bail!("_rebuild_tensor_v2 with {} arguments", args.len());
            };
            let storage = legacy_storage(storage)?;
            let Value::Int(offset) = offset else {
                bail!("tensor offset {offset:?}");
            };
            let (size, stride) = (ints(size, "size")?, ints(stride, "stride")?);
            let need = size
                .iter()
                .zip(&stride)
                .map(|(n, s)| (n - 1).max(0) * s)
                .sum::<i64>()
                + offset
                + 1;
            if size.len() != stride.len()
                || (size.iter().all(|&n| n > 0) && need > storage.numel() as i64)
            {
                bail!("tensor of size {size:?} and stride {stride:?} does not fit its storage");
            }
            Ok(storage.as_strided(size, stride, *offset).contiguous())
        }
        f => bail!("{f:?} does not make a tensor"),
    }
}

/// A `_load_from_bytes(blob)` storage as a 1-D tensor.
fn legacy_storage(v: &Value) -> Result<Tensor> {
    let Value::Call { func, args, .. } = v else {
        bail!("tensor storage is not a call");
    };
    let (Value::Global(m, n), Value::Tuple(a)) = (&**func, &**args) else {
        bail!("tensor storage {func:?}");
    };
    let (true, [Value::Bytes(blob)]) = (
        m == "torch.storage" && n == "_load_from_bytes",
        a.as_slice(),
    ) else {
        bail!("tensor storage {m}.{n}");
    };
    let allowed = |m: &str, n: &str| m == "torch" && storage_kind(n).is_some();
    let mut pos = 0;
    for what in ["magic number", "protocol version", "system info"] {
        pos = read_at(blob, pos, &allowed)
            .with_context(|| format!("storage {what}"))?
            .1;
    }
    let (pid, p) = read_at(blob, pos, &allowed)?;
    let (_keys, p) = read_at(blob, p, &allowed)?;
    let Value::PersId(pid) = pid else {
        bail!("storage without a persistent id");
    };
    let Value::Tuple(t) = &*pid else {
        bail!("storage id {pid:?}");
    };
    let [Value::Str(tag), Value::Global(_, ty), _key, _location, Value::Int(numel), ..] =
        t.as_slice()
    else {
        bail!("storage id {t:?}");
    };
    let kind = storage_kind(ty).with_context(|| format!("storage type {ty}"))?;
    let size = kind.elt_size_in_bytes();
    if tag != "storage" || *numel < 0 {
        bail!("storage id {t:?}");
    }
    let head = blob.get(p..p + 8).context("storage data missing")?;
    let n = u64::from_le_bytes(head.try_into().expect("8 bytes")) as usize;
    let bytes = n.checked_mul(size).context("storage size")?;
    let data = blob
        .get(p + 8..p + 8 + bytes)
        .context("storage data truncated")?;
    if n != *numel as usize {
        bail!("storage of {numel} elements holds {n}");
    }
    Ok(Tensor::from_data_size(data, &[n as i64], kind))
}

/// The entries of a pickled dict (a dict, or an OrderedDict call with its items).
fn dict_items(v: &Value) -> Option<&[(Value, Value)]> {
    match v {
        Value::Dict(items) => Some(items),
        Value::Call { items, .. } => Some(items),
        _ => None,
    }
}

/// The value under string key `key` of a pickled dict, or of an object's state (an attribute).
pub fn entry<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let found = dict_items(v)?
        .iter()
        .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
        .map(|(_, x)| x);
    match v {
        Value::Call { state, .. } if found.is_none() => entry(state, key),
        _ => found,
    }
}

/// The state dict of a pickled `nn.Module` (names as `module.state_dict()` gives them:
/// parameters, persistent buffers, then submodules, depth first).
pub fn module_tensors(module: &Value) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    collect(module, "", &mut out, 0)?;
    Ok(out)
}

fn collect(
    module: &Value,
    prefix: &str,
    out: &mut Vec<(String, Tensor)>,
    depth: usize,
) -> Result<()> {
    if depth > 64 {
        bail!("modules nested deeper than 64 at {prefix}");
    }
    let Value::Call { state, .. } = module else {
        bail!("{prefix}: not a pickled module");
    };
    let non_persistent: Vec<&Value> = match entry(state, "_non_persistent_buffers_set") {
        Some(Value::Set(xs)) => xs.iter().collect(),
        _ => Vec::new(),
    };
    for field in ["_parameters", "_buffers"] {
        let items = entry(state, field).and_then(dict_items).unwrap_or_default();
        for (k, v) in items {
            let Value::Str(name) = k else {
                bail!("{prefix}{field}: a non-string name");
            };
            if matches!(v, Value::None) || non_persistent.contains(&k) {
                continue;
            }
            let t = tensor(v).with_context(|| format!("{prefix}{name}"))?;
            out.push((format!("{prefix}{name}"), t));
        }
    }
    for (k, v) in entry(state, "_modules")
        .and_then(dict_items)
        .unwrap_or_default()
    {
        let Value::Str(name) = k else {
            bail!("{prefix}_modules: a non-string name");
        };
        if !matches!(v, Value::None) {
            collect(v, &format!("{prefix}{name}."), out, depth + 1)?;
        }
    }
    Ok(())
}
