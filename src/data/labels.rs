//! Class labels of a dataset (conditional training): from the first folder level under the
//! source (`--labels folders`) or from a file in the reference's `dataset.json` format, checked,
//! and written into the output's `dataset.json` in that format.
use super::source::{has_image_extension, Source};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Where the labels come from.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelSource {
    /// The first folder under the source names the class (sorted names -> 0..C-1).
    Folders,
    /// `{"labels": [["relative/name.png", class], ...]}`, names relative to the source.
    File(PathBuf),
}

impl std::str::FromStr for LabelSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "folders" => Ok(LabelSource::Folders),
            "" => Err("give `folders` or a dataset.json-style FILE".into()),
            f => Ok(LabelSource::File(PathBuf::from(f))),
        }
    }
}

/// The class of every file of a source, and the class names (folder names, or the indices).
#[derive(Clone, Debug, PartialEq)]
pub struct Labeling {
    pub classes: Vec<String>,
    /// Class index of source file i; None for a file without an image extension that has no
    /// class (a README, say: skipped as unreadable, or refused if it decodes).
    pub of_file: Vec<Option<i64>>,
    /// Where they came from.
    pub origin: LabelOrigin,
}

/// Where a [`Labeling`] came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LabelOrigin {
    /// `--labels folders`.
    Folders,
    /// `--labels FILE.json`.
    File,
    /// The source's own dataset.json, carried over without `--labels` (the reference's rule).
    Carried,
}

impl Labeling {
    /// Labels of the files of `src` from `spec`; every file with an image extension needs one.
    pub fn of(src: &Source, spec: &LabelSource) -> Result<Self> {
        match spec {
            LabelSource::Folders => from_folders(src),
            LabelSource::File(f) => from_file(src, f),
        }
    }

    /// Without `--labels`: the labels of the source's own dataset.json when it labels every
    /// image, as the reference's dataset_tool.py carries them over (else none, as there), with
    /// a note either way.
    pub fn carried(src: &Source, source: &Path) -> Result<Option<Labeling>> {
        let Some(json) = src.dataset_json()? else {
            return Ok(None);
        };
        if !json["labels"].is_array() {
            return Ok(None);
        }
        let origin = format!("{}'s dataset.json", source.display());
        let labeling = from_json(src, &json, &origin, LabelOrigin::Carried)?;
        match &labeling {
            Some(l) => eprintln!(
                "note: the labels of {origin} carried over ({}), as the official dataset_tool.py does; --labels gives others",
                crate::util::progress::count(l.classes.len() as u64, "class")
            ),
            None => eprintln!(
                "note: {origin} does not label every image: written without labels, as the official dataset_tool.py does (--labels FILE gives them)"
            ),
        }
        Ok(labeling)
    }

    /// Every class of labels given with `--labels` must keep at least one of the `written`
    /// labels (skipped files, or the `--max-images` cut when `capped`, may empty one); carried
    /// labels are kept as they are, as the reference keeps them.
    pub fn check_every_class_used(&self, written: &[i64], capped: bool) -> Result<()> {
        let used: BTreeSet<i64> = written.iter().copied().collect();
        if self.origin == LabelOrigin::Carried {
            return Ok(());
        }
        if let Some(k) = (0..self.classes.len() as i64).find(|k| !used.contains(k)) {
            let fix = match (capped, self.origin) {
                (true, _) => "raise --max-images (it stopped before this class's images)",
                (false, LabelOrigin::Folders) => {
                    "add readable images to its folder or remove the folder"
                }
                (false, _) => "add images to it or renumber the classes",
            };
            bail!(
                "class {k} ({}) has no usable image; {fix}",
                self.classes[k as usize]
            );
        }
        Ok(())
    }

    /// The output's `dataset.json`: the reference's `labels` ([name, class] per image, in the
    /// output's names) and fpgan's `class_names` (which the reference ignores).
    pub fn dataset_json(&self, written: &[(String, i64)]) -> serde_json::Value {
        serde_json::json!({ "labels": written, "class_names": self.classes })
    }
}

/// The labels of a dataset's images as an int64 tensor on `device` (to draw classes from),
/// checked against a model's `classes`.
pub fn class_table(labels: &[i64], classes: i64, device: tch::Device) -> Result<tch::Tensor> {
    if labels.is_empty() {
        bail!("the dataset has no labels to draw classes from");
    }
    if let Some(bad) = labels.iter().find(|&&l| !(0..classes).contains(&l)) {
        bail!("the dataset has label {bad} but the model has {classes} classes (0..{classes}); give the dataset it was trained on");
    }
    Ok(tch::Tensor::from_slice(labels).to_device(device))
}

/// `n` classes drawn (torch's RNG) from a [`class_table`]: each the class of a random dataset
/// image, as the reference draws G's labels.
pub fn draw_classes(table: &tch::Tensor, n: i64) -> tch::Tensor {
    let idx = tch::Tensor::randint(table.size()[0], [n], (tch::Kind::Int64, table.device()));
    table.index_select(0, &idx)
}

/// One entry of the reference's `labels`, `["dir/name.png", class]`, as (name with `/`, class).
/// A label vector `["dir/name.png", [v0, v1, ...]]` gives its first largest entry's index, the
/// class the reference's conditional networks read from it (`c.argmax(1)`).
pub fn label_entry(e: &serde_json::Value) -> Option<(String, i64)> {
    let name = e[0].as_str()?.replace('\\', "/");
    let class = match &e[1] {
        serde_json::Value::Array(v) => argmax(v)?,
        c => c.as_i64()?,
    };
    Some((name, class))
}

/// The index of the first largest number of `v` (None when empty or not all numbers).
fn argmax(v: &[serde_json::Value]) -> Option<i64> {
    let nums: Option<Vec<f64>> = v.iter().map(serde_json::Value::as_f64).collect();
    let nums = nums?;
    let best = nums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    nums.iter().position(|&x| x == best).map(|k| k as i64)
}

/// The length of the label vectors of `entries` (the reference's `c_dim` for them), None for
/// class indices; an error naming the first entry whose vector length differs.
pub fn label_vector_len(entries: &[serde_json::Value]) -> Result<Option<i64>, String> {
    let mut len = None;
    for e in entries {
        if let Some(v) = e[1].as_array() {
            match len {
                None => len = Some(v.len() as i64),
                Some(n) if n != v.len() as i64 => {
                    return Err(format!(
                        "entry {e} has a label vector of {} values, the first one {n}",
                        v.len()
                    ))
                }
                Some(_) => {}
            }
        }
    }
    Ok(len)
}

fn from_folders(src: &Source) -> Result<Labeling> {
    let top = |i: usize| src.name(i).split_once('/').map(|(t, _)| t);
    let mut classes = BTreeSet::new();
    for i in (0..src.len()).filter(|&i| has_image_extension(src.name(i))) {
        match top(i) {
            Some(t) => classes.insert(t.to_string()),
            None => bail!(
                "{} is not inside a class folder; with --labels folders every image sits in a \
                 folder named after its class (source/<class>/...)",
                src.display_name(i)
            ),
        };
    }
    let classes: Vec<String> = classes.into_iter().collect();
    if let [only] = classes.as_slice() {
        eprintln!(
            "warning: --labels folders found one class, {only}: every image sits under {only}/ (a zip of the folder that holds the class folders?); the classes are the first folder level under the source"
        );
    }
    let index: HashMap<&str, i64> = classes
        .iter()
        .enumerate()
        .map(|(k, c)| (c.as_str(), k as i64))
        .collect();
    let of_file = (0..src.len())
        .map(|i| top(i).and_then(|t| index.get(t).copied()))
        .collect();
    Ok(Labeling {
        classes,
        of_file,
        origin: LabelOrigin::Folders,
    })
}

fn from_file(src: &Source, file: &Path) -> Result<Labeling> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read labels file {}", file.display()))?;
    let bad = || {
        format!(
            "{}: not a labels file; expected {{\"labels\": [[\"relative/name.png\", 0], ...]}} as the reference's dataset.json",
            file.display()
        )
    };
    let json: serde_json::Value = serde_json::from_str(&text).with_context(bad)?;
    json["labels"].as_array().with_context(bad)?;
    let origin = file.display().to_string();
    let labeling = from_json(src, &json, &origin, LabelOrigin::File)?;
    Ok(labeling.expect("a file's labels are all given or refused"))
}

/// The labels of `json` (the reference's dataset.json format, from `origin`) for the files of
/// `src`. Given with `--labels` (`LabelOrigin::File`) an image without a label or one labelled
/// twice is an error; carried over, the first gives None and the last label of the second wins,
/// as the reference's tool has it.
fn from_json(
    src: &Source,
    json: &serde_json::Value,
    origin: &str,
    kind: LabelOrigin,
) -> Result<Option<Labeling>> {
    let strict = kind != LabelOrigin::Carried;
    let entries = json["labels"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut by_name = HashMap::new();
    for e in entries {
        let Some((name, label)) = label_entry(e) else {
            bail!(
                "{origin}: entry {e} is not [\"name\", class] with a class of 0 or more (or [\"name\", [label vector]])"
            );
        };
        if label < 0 {
            bail!("{origin}: {name} has class {label}; classes are 0, 1, 2, ...");
        }
        let was = by_name.insert(name.clone(), label);
        if let Some(was) = was.filter(|&w| strict && w != label) {
            bail!("{origin}: {name} is labelled twice, {was} and {label}; keep one entry");
        }
    }
    let mut of_file = Vec::with_capacity(src.len());
    for i in 0..src.len() {
        let label = by_name.get(src.name(i)).copied();
        if label.is_none() && has_image_extension(src.name(i)) {
            if !strict {
                return Ok(None);
            }
            bail!(
                "{} has no label in {origin}; add it there or remove the image",
                src.display_name(i)
            );
        }
        of_file.push(label);
    }
    let width = label_vector_len(entries).map_err(|m| anyhow::anyhow!("{origin}: {m}"))?;
    let n = of_file
        .iter()
        .flatten()
        .max()
        .map_or(0, |m| m + 1)
        .max(width.unwrap_or(0));
    // the class names of an fpgan dataset.json given back (one per class), else the indices
    let names: Option<Vec<String>> = json["class_names"]
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
        .filter(|v: &Vec<String>| v.len() as i64 == n);
    let classes = names.unwrap_or_else(|| (0..n).map(|k| k.to_string()).collect());
    Ok(Some(Labeling {
        classes,
        of_file,
        origin: kind,
    }))
}
