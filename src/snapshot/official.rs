//! An official Projected GAN network pickle (`network-snapshot.pkl`, `best_model.pkl`) read as
//! data: what it may hold, the generator configuration it was trained with, and its tensors.
use super::pickle::{read, Value};
use super::torch_pickle::{entry, module_tensors, tensor, tensor_global};
use crate::nets::generator::{GenCfg, Generator, GeneratorConfig};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn::VarStore, Device, Tensor};

/// Named tensors of one network, as its `state_dict()` names them.
pub type Tensors = Vec<(String, Tensor)>;

/// What an official snapshot pickle holds that fpgan uses.
pub struct OfficialSnapshot {
    pub generator: GeneratorConfig,
    pub g: Tensors,
    pub g_ema: Tensors,
    /// The whole discriminator: heads (`discriminator.*`), projections
    /// (`feature_network.scratch.*`) and the frozen trunk (`feature_network.pretrained.*`).
    pub d: Tensors,
    /// Images shown so far (`progress.cur_nimg`; `network-snapshot.pkl` has it, `best_model.pkl`
    /// not).
    pub cur_nimg: Option<i64>,
    /// `training_set_kwargs.path`: the dataset it was trained on.
    pub dataset: Option<String>,
}

/// The globals an official snapshot may name: its own network classes, timm's EfficientNet
/// modules, torch's modules, spectral-norm hooks and tensors. Anything else is refused unread.
pub fn allowed(module: &str, name: &str) -> bool {
    const MODULES: [&str; 4] = [
        "pg_modules.",
        "timm.models.",
        "torch.nn.modules.",
        "torch.ao.nn.quantized.modules.",
    ];
    tensor_global(module, name)
        || MODULES.iter().any(|m| module.starts_with(m))
        || module == "torch.nn.utils.spectral_norm"
        || (module == "torch.nn.quantized.modules.functional_modules" && name == "FloatFunctional")
}

impl OfficialSnapshot {
    pub fn read(path: &Path) -> Result<Self> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        // protocols 2 to 5 (what the official code's pickle.dump writes) begin with PROTO
        if data.first() != Some(&0x80) {
            bail!(
                "{} is not a Python pickle; give a .pkl the official train.py wrote (network-snapshot-*.pkl, best_model.pkl)",
                path.display()
            );
        }
        let top = read(&data, &allowed).with_context(|| {
            format!(
                "{} is not an official Projected GAN snapshot that fpgan can import",
                path.display()
            )
        })?;
        let ctx = |what: &str| format!("{}: {what}", path.display());
        let net = |key: &str| {
            entry(&top, key).with_context(|| {
                ctx(&format!(
                    "no '{key}' network (not a Projected GAN snapshot pickle?)"
                ))
            })
        };
        let (g, g_ema, d) = (net("G")?, net("G_ema")?, net("D")?);
        let tensors = |v: &Value, key: &str| module_tensors(v).with_context(|| ctx(key));
        let ema_tensors = tensors(g_ema, "G_ema")?;
        let generator = generator_config(g_ema, &ema_tensors).with_context(|| ctx("G_ema"))?;
        let cur_nimg = entry(&top, "progress")
            .and_then(|p| entry(p, "cur_nimg"))
            .and_then(|v| tensor(v).ok())
            .and_then(|t| t.f_int64_value(&[0]).ok());
        let dataset = match entry(&top, "training_set_kwargs").and_then(|k| entry(k, "path")) {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        };
        Ok(OfficialSnapshot {
            generator,
            g: tensors(g, "G")?,
            g_ema: ema_tensors,
            d: tensors(d, "D")?,
            cur_nimg,
            dataset,
        })
    }
}

fn int_attr(module: &Value, name: &str) -> Result<i64> {
    match entry(module, name) {
        Some(Value::Int(i)) => Ok(*i),
        v => bail!("attribute {name} is {v:?}, not an integer"),
    }
}

/// The generator configuration of a pickled official `Generator` (resolution, latent size and
/// classes from its attributes, the rest from its `tensors`).
fn generator_config(g: &Value, tensors: &Tensors) -> Result<GeneratorConfig> {
    let shapes = tensors
        .iter()
        .filter(|(n, _)| !n.ends_with(".num_batches_tracked"))
        .map(|(n, t)| (n.clone(), t.size()))
        .collect();
    detect_generator(
        &shapes,
        int_attr(g, "img_resolution")?,
        int_attr(g, "z_dim")?,
        int_attr(g, "c_dim")?,
    )
}

/// The configuration whose generator has exactly these names and shapes (those of
/// `state_dict()` without BN's num_batches_tracked), at `resolution` with latent size `z_dim` and
/// `classes` classes (0: unconditional): ngf from the init layer, then the one of fpgan's four
/// configurations that matches.
pub fn detect_generator(
    ours: &BTreeMap<String, Vec<i64>>,
    resolution: i64,
    z_dim: i64,
    classes: i64,
) -> Result<GeneratorConfig> {
    let init = ours
        .get("synthesis.init.init.0.weight_orig")
        .context("no synthesis.init.init.0.weight_orig: not a FastGAN generator")?;
    let ngf = init[1] / 32;
    let mut tried = Vec::new();
    for cfg in GenCfg::ALL {
        let config = GeneratorConfig {
            ngf,
            z_dim,
            classes,
            ..GeneratorConfig::new(cfg, resolution)
        };
        config.validate()?;
        let names = state_shapes(&config)?;
        if &names == ours {
            return Ok(config);
        }
        let missing = ours.keys().filter(|k| !names.contains_key(*k)).count();
        let other = names
            .iter()
            .filter(|(k, s)| ours.get(*k) != Some(s))
            .count();
        tried.push(format!(
            "{cfg}: {missing} names unknown, {other} missing or shaped otherwise"
        ));
    }
    bail!(
        "its generator (resolution {resolution}, ngf {ngf}, z_dim {z_dim}) is none of fpgan's configurations ({})",
        tried.join("; ")
    )
}

/// The names and shapes of fpgan's generator for `config` (the official state_dict names).
pub fn state_shapes(config: &GeneratorConfig) -> Result<BTreeMap<String, Vec<i64>>> {
    let vs = VarStore::new(Device::Cpu);
    let _g = Generator::new(&vs.root(), config)?;
    Ok(vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect())
}
