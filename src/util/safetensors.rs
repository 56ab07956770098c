//! Checkpoint files: safetensors (readable by any safetensors reader) whose header also carries
//! the training metadata as JSON under `__metadata__.fpgan`.
use super::atomic::atomic_write;
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The safetensors dtype of each tensor kind fpgan stores, both ways.
const DTYPES: [(Kind, Dtype); 8] = [
    (Kind::Float, Dtype::F32),
    (Kind::Double, Dtype::F64),
    (Kind::Int64, Dtype::I64),
    (Kind::Int, Dtype::I32),
    (Kind::Uint8, Dtype::U8),
    (Kind::Half, Dtype::F16),
    (Kind::BFloat16, Dtype::BF16),
    (Kind::Bool, Dtype::BOOL),
];

fn dtype(kind: Kind) -> Result<Dtype> {
    let found = DTYPES.iter().find(|(k, _)| *k == kind);
    found
        .map(|&(_, d)| d)
        .ok_or_else(|| anyhow!("cannot store tensors of kind {kind:?}"))
}

fn kind(dtype: Dtype) -> Option<Kind> {
    DTYPES.iter().find(|(_, d)| *d == dtype).map(|&(k, _)| k)
}

/// Save `tensors` (any device) and `meta` as one safetensors file, written to a temporary file,
/// fsynced and renamed, so a crash or a full disk never leaves a half-written checkpoint under
/// the final name. The header is the `safetensors` crate's; the data is streamed tensor by tensor.
pub fn save(path: &Path, tensors: &[(String, Tensor)], meta: &Value) -> Result<()> {
    let cpu: Vec<Tensor> = tensors
        .iter()
        .map(|(_, t)| t.detach().to_device(Device::Cpu).contiguous())
        .collect();
    let mut infos = Vec::with_capacity(tensors.len());
    let mut names = HashSet::new();
    let mut offset = 0;
    for ((name, _), t) in tensors.iter().zip(&cpu) {
        if !names.insert(name) {
            bail!("cannot write {}: tensor {name} given twice", path.display());
        }
        let dtype = dtype(t.kind())?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        let data_offsets = (offset, offset + t.numel() * dtype.bitsize() / 8);
        offset = data_offsets.1;
        infos.push((
            name.clone(),
            TensorInfo {
                dtype,
                shape,
                data_offsets,
            },
        ));
    }
    let fpgan = HashMap::from([("fpgan".to_string(), meta.to_string())]);
    let header = Metadata::new(Some(fpgan), infos.clone())
        .map_err(|e| anyhow!("cannot describe {}: {e}", path.display()))?;
    let mut head = serde_json::to_vec(&header)?;
    head.resize(head.len().next_multiple_of(8), b' ');
    atomic_write(path, |w| {
        w.write_all(&(head.len() as u64).to_le_bytes())?;
        w.write_all(&head)?;
        let mut buf = Vec::new();
        for (t, (_, info)) in cpu.iter().zip(&infos) {
            buf.resize(info.data_offsets.1 - info.data_offsets.0, 0);
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

/// Read a file written by [`save`]: its tensors (on the CPU) and metadata. The `safetensors`
/// crate checks every offset, so a truncated or corrupt file gives a clear error
/// ([`NotSafetensors`] for a file of another kind).
pub fn load(path: &Path) -> Result<(BTreeMap<String, Tensor>, Value)> {
    let corrupt =
        |why: &dyn std::fmt::Display| anyhow!("{} is truncated or corrupt ({why})", path.display());
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    check_kind(path, &bytes)?;
    let (n, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(&e))?;
    let data = &bytes[8 + n..];
    let mut tensors = BTreeMap::new();
    for (name, info) in header.tensors() {
        let k = kind(info.dtype).with_context(|| {
            let known: Vec<String> = DTYPES.iter().map(|(_, d)| format!("{d:?}")).collect();
            format!(
                "{}: tensor {name} is {:?}, which fpgan does not read ({})",
                path.display(),
                info.dtype,
                known.join(", ")
            )
        })?;
        // a dimension past i64 turns negative, which libtorch refuses as it refuses any shape
        // it cannot hold (below)
        let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        let (from, to) = info.data_offsets;
        let t = Tensor::f_from_data_size(&data[from..to], &shape, k)
            .map_err(|e| corrupt(&format!("{name}: {}", first_line(&e))))?;
        tensors.insert(name, t);
    }
    let meta = match header.metadata().as_ref().and_then(|m| m.get("fpgan")) {
        Some(s) => serde_json::from_str(s).map_err(|_| corrupt(&"unreadable metadata"))?,
        None => Value::Null,
    };
    Ok((tensors, meta))
}

/// Refuse as [`NotSafetensors`] a file not named `*.safetensors` that does not begin as one
/// (`head`: at least its first 9 bytes, when it has them).
fn check_kind(path: &Path, head: &[u8]) -> Result<()> {
    let named = path.extension().is_some_and(|e| e == "safetensors");
    if !named && head.get(8) != Some(&b'{') {
        return Err(NotSafetensors(path.display().to_string()).into());
    }
    Ok(())
}

/// The metadata of a file written by [`save`], read from its header alone: the crate checks
/// the header's offsets, and they must reach the file's end (the tensors themselves are not
/// read: [`load`] does that). Errors as [`load`]'s.
pub fn read_meta(path: &Path) -> Result<Value> {
    use std::io::{Read, Seek, SeekFrom};
    let corrupt =
        |why: &dyn std::fmt::Display| anyhow!("{} is truncated or corrupt ({why})", path.display());
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let mut head = Vec::with_capacity(9);
    (&mut f)
        .take(9)
        .read_to_end(&mut head)
        .map_err(|e| corrupt(&e))?;
    check_kind(path, &head)?;
    let len = f.metadata().map_err(|e| corrupt(&e))?.len();
    let n = match head.get(..8) {
        Some(b) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
        None => return Err(corrupt(&"shorter than a header")),
    };
    // the safetensors crate's own bound on a header
    if n < 2 || n > len.saturating_sub(8) || n > 100_000_000 {
        return Err(corrupt(&"header length out of the file"));
    }
    let mut header = vec![0u8; n as usize];
    f.seek(SeekFrom::Start(8))
        .and_then(|_| f.read_exact(&mut header))
        .map_err(|e| corrupt(&e))?;
    let header: Metadata = serde_json::from_slice(&header).map_err(|e| corrupt(&e))?;
    if 8 + n + header.data_len() as u64 != len {
        return Err(corrupt(&"its tensors do not fill the file"));
    }
    match header.metadata().as_ref().and_then(|m| m.get("fpgan")) {
        Some(s) => serde_json::from_str(s).map_err(|_| corrupt(&"unreadable metadata")),
        None => Ok(Value::Null),
    }
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One small tensor of every kind fpgan stores, with distinct values, and an empty and a
    /// zero-dimensional one.
    fn one_of_each() -> Vec<(String, Tensor)> {
        let base = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]) - 2.5;
        let mut all: Vec<(String, Tensor)> = DTYPES
            .iter()
            .map(|&(k, d)| (format!("t.{d:?}"), base.to_kind(k)))
            .collect();
        all.push((
            "empty".into(),
            Tensor::zeros([0, 3], (Kind::Float, Device::Cpu)),
        ));
        all.push(("scalar".into(), Tensor::from(7i64)));
        all
    }

    /// A file of `head` (JSON) and `data`, as a writer of safetensors lays them out.
    fn raw_file(path: &Path, head: &str, data: &[u8]) {
        let bytes = [
            &(head.len() as u64).to_le_bytes()[..],
            head.as_bytes(),
            data,
        ]
        .concat();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_saved_file_reads_back_here_and_in_libtorch_s_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let meta = serde_json::json!({"kimg": 1.5, "note": "a \"quoted\" word"});
        let saved = one_of_each();
        save(&path, &saved, &meta).unwrap();

        let (ours, read_meta) = load(&path).unwrap();
        assert_eq!(read_meta, meta);
        let theirs: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(ours.len(), saved.len());
        for (name, t) in &saved {
            for read in [&ours[name], &theirs[name]] {
                assert_eq!(read.kind(), t.kind(), "{name}");
                assert!(read.equal(t), "{name}: {read} != {t}");
            }
        }
    }

    #[test]
    fn an_empty_tensor_with_a_dimension_past_i64_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        // past i64, and within it but with strides past it (libtorch refuses those)
        for shape in [
            format!("0,{}", u64::MAX),
            format!("0,{},{}", 1u64 << 62, 1u64 << 62),
        ] {
            let head =
                format!(r#"{{"t":{{"dtype":"F32","shape":[{shape}],"data_offsets":[0,0]}}}}"#);
            raw_file(&path, &head, &[]);
            let e = load(&path).unwrap_err().to_string();
            assert!(e.contains("x.safetensors is truncated or corrupt"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn files_of_the_earlier_writer_load() {
        // its header keys sorted (metadata among them), its data in the order it was given
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.safetensors");
        let head = r#"{"__metadata__":{"fpgan":"{\"kimg\":2}"},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  "#;
        let data = [1f32.to_le_bytes(), 2f32.to_le_bytes()].concat();
        raw_file(&path, head, &data);
        let (t, meta) = load(&path).unwrap();
        assert_eq!(meta, serde_json::json!({"kimg": 2}));
        assert_eq!(t["a"].double_value(&[0]), 2.0);
        assert_eq!(t["b"].double_value(&[0]), 1.0);
    }

    #[test]
    fn a_name_given_twice_is_refused_and_a_kind_not_read_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let t = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        let twice = [("w".to_string(), t.shallow_clone()), ("w".to_string(), t)];
        let e = save(&path, &twice, &Value::Null).unwrap_err().to_string();
        assert!(e.contains("tensor w given twice"), "{e}");
        assert!(!path.exists());
        raw_file(
            &path,
            r#"{"h":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}"#,
            &[0; 4],
        );
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("tensor h is I16, which fpgan does not read (F32,"),
            "{e}"
        );
    }

    #[test]
    fn a_file_cut_short_is_named_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        save(&path, &one_of_each(), &Value::Null).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for keep in [0, 7, 20, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let e = load(&path).unwrap_err().to_string();
            assert!(
                e.contains("x.safetensors is truncated or corrupt"),
                "{keep}: {e}"
            );
        }
    }

    /// The header alone gives the metadata `load` gives; a header cut short or a file of
    /// another kind is an error as in `load` (a cut in the data is `load`'s to find).
    #[test]
    fn the_metadata_reads_from_the_header_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let meta = serde_json::json!({"format": "fpgan-snapshot", "n": [1, 2]});
        save(&path, &one_of_each(), &meta).unwrap();
        assert_eq!(read_meta(&path).unwrap(), meta);
        assert_eq!(read_meta(&path).unwrap(), load(&path).unwrap().1);
        let bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for keep in [0, 7, 8, 20, 8 + n - 1, 8 + n, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let e = read_meta(&path).unwrap_err().to_string();
            assert!(
                e.contains("x.safetensors is truncated or corrupt"),
                "{keep}: {e}"
            );
        }
        let png = dir.path().join("img.png");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\n0000000000").unwrap();
        assert!(read_meta(&png).unwrap_err().is::<NotSafetensors>());
        // a file too short to be one, not named as one: of another kind, not a damaged one
        let empty = dir.path().join("empty.pkl");
        std::fs::write(&empty, b"").unwrap();
        assert!(read_meta(&empty).unwrap_err().is::<NotSafetensors>());
        assert!(load(&empty).unwrap_err().is::<NotSafetensors>());
    }
}
