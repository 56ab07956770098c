//! Checkpoint files: safetensors (readable by any safetensors reader) whose header also carries
//! the training metadata as JSON under `__metadata__.fpgan`.
use super::atomic::atomic_write;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

fn dtype(kind: Kind) -> Result<(&'static str, usize)> {
    Ok(match kind {
        Kind::Float => ("F32", 4),
        Kind::Double => ("F64", 8),
        Kind::Int64 => ("I64", 8),
        Kind::Int => ("I32", 4),
        Kind::Uint8 => ("U8", 1),
        Kind::Half => ("F16", 2),
        Kind::BFloat16 => ("BF16", 2),
        Kind::Bool => ("BOOL", 1),
        k => bail!("cannot store tensors of kind {k:?}"),
    })
}

fn kind(dtype: &str) -> Option<(Kind, usize)> {
    Some(match dtype {
        "F32" => (Kind::Float, 4),
        "F64" => (Kind::Double, 8),
        "I64" => (Kind::Int64, 8),
        "I32" => (Kind::Int, 4),
        "U8" => (Kind::Uint8, 1),
        "F16" => (Kind::Half, 2),
        "BF16" => (Kind::BFloat16, 2),
        "BOOL" => (Kind::Bool, 1),
        _ => return None,
    })
}

/// Save `tensors` (any device) and `meta` as one safetensors file, written to a temporary file,
/// fsynced and renamed, so a crash or a full disk never leaves a half-written checkpoint under
/// the final name.
pub fn save(path: &Path, tensors: &[(String, Tensor)], meta: &Value) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::json!({ "fpgan": meta.to_string() }),
    );
    let mut offset = 0usize;
    let mut cpu = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let (dt, size) = dtype(t.kind())?;
        let bytes = t.numel() * size;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dt, "shape": t.size(), "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
        cpu.push((t, bytes));
    }
    let mut head = serde_json::to_vec(&Value::Object(header))?;
    head.resize(head.len().div_ceil(8) * 8, b' ');
    atomic_write(path, |w| {
        w.write_all(&(head.len() as u64).to_le_bytes())?;
        w.write_all(&head)?;
        let mut buf = Vec::new();
        for (t, bytes) in &cpu {
            buf.resize(*bytes, 0);
            t.copy_data_u8(&mut buf, t.numel());
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// A file of another kind: not named `*.safetensors` and not beginning as one does (a file so
/// named is a damaged one instead).
#[derive(Debug, thiserror::Error)]
#[error("{0} is not a safetensors file (as fpgan's snapshots are)")]
pub struct NotSafetensors(pub String);

/// Read a file written by [`save`]: its tensors (on the CPU) and metadata. Every offset is
/// checked, so a truncated or corrupt file gives a clear error ([`NotSafetensors`] for a file
/// of another kind).
pub fn load(path: &Path) -> Result<(BTreeMap<String, Tensor>, Value)> {
    let corrupt = |why: &str| anyhow::anyhow!("{} is truncated or corrupt ({why})", path.display());
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    if bytes.len() < 8 {
        return Err(corrupt("shorter than a header"));
    }
    let named = path.extension().is_some_and(|e| e == "safetensors");
    if !named && bytes.get(8).is_some_and(|&b| b != b'{') {
        return Err(NotSafetensors(path.display().to_string()).into());
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    if n > bytes.len() - 8 {
        return Err(corrupt("header runs past the end"));
    }
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|_| corrupt("unreadable header"))?;
    let data = &bytes[8 + n..];
    let mut meta = Value::Null;
    let mut tensors = BTreeMap::new();
    for (name, info) in header {
        if name == "__metadata__" {
            if let Some(s) = info.get("fpgan").and_then(|v| v.as_str()) {
                meta = serde_json::from_str(s).map_err(|_| corrupt("unreadable metadata"))?;
            }
            continue;
        }
        let (k, size) = info["dtype"]
            .as_str()
            .and_then(kind)
            .ok_or_else(|| corrupt("unknown dtype"))?;
        let shape: Vec<i64> =
            serde_json::from_value(info["shape"].clone()).map_err(|_| corrupt("bad shape"))?;
        let off: Vec<usize> = serde_json::from_value(info["data_offsets"].clone())
            .map_err(|_| corrupt("bad offsets"))?;
        let bytes = shape
            .iter()
            .try_fold(size, |acc, &d| usize::try_from(d).ok()?.checked_mul(acc))
            .ok_or_else(|| corrupt(&format!("tensor {name} has a bad shape")))?;
        if off.len() != 2 || off[1] > data.len() || off[1] < off[0] || off[1] - off[0] != bytes {
            return Err(corrupt(&format!("tensor {name} lies outside the file")));
        }
        tensors.insert(
            name,
            Tensor::from_data_size(&data[off[0]..off[1]], &shape, k),
        );
    }
    Ok((tensors, meta))
}

/// The variables of `vs` (parameters and buffers) under `prefix`.
pub fn export(vs: &nn::VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (format!("{prefix}{n}"), t))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Copy `tensors[prefix + name]` into every variable of `vs` whose name passes `filter`;
/// all of them must be present with the right shape.
pub fn import(
    vs: &nn::VarStore,
    prefix: &str,
    tensors: &BTreeMap<String, Tensor>,
    filter: impl Fn(&str) -> bool,
    source: &Path,
) -> Result<()> {
    let missing = "not a snapshot of this configuration";
    import_by(
        vs,
        |n| filter(n).then(|| format!("{prefix}{n}")),
        tensors,
        source,
        missing,
    )
    .map(|_| ())
}

/// Copy `tensors[key(name)]` into every variable of `vs` for which `key` gives a name; every such
/// tensor must exist (else the error says `missing_hint`) with the variable's shape. Returns how
/// many variables were filled.
pub fn import_by(
    vs: &nn::VarStore,
    key: impl Fn(&str) -> Option<String>,
    tensors: &BTreeMap<String, Tensor>,
    source: &Path,
    missing_hint: &str,
) -> Result<usize> {
    tch::no_grad(|| {
        let mut copied = 0;
        for (name, mut var) in vs.variables() {
            let Some(k) = key(&name) else { continue };
            let t = tensors
                .get(&k)
                .with_context(|| format!("{} lacks {k}: {missing_hint}", source.display()))?;
            if t.size() != var.size() {
                bail!(
                    "{}: {k} has shape {:?} but {name} needs {:?}",
                    source.display(),
                    t.size(),
                    var.size()
                );
            }
            var.copy_(t);
            copied += 1;
        }
        Ok(copied)
    })
}
