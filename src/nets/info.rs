//! `fpgan info`: a readable summary of the networks of one configuration, module by module, with
//! totals for G, the frozen feature network and the (trainable) discriminator heads.
use super::discriminator::Discriminator;
use super::features::FeatureNetwork;
use super::generator::{Generator, GeneratorConfig};
use super::summary::{self, Record};
use std::collections::HashMap;
use std::fmt::Write;
use tch::{nn, Device, Kind, Tensor};

/// One row of the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub name: String,
    pub shape: Vec<i64>,
    pub params: i64,
    pub macs: i64,
}

/// A network's rows and totals.
#[derive(Clone, Debug)]
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
    pub params: i64,
    pub macs: i64,
}

/// Group trace records by `key(name)` (in first-seen order); parameters are the elements of
/// the variables whose names start with the group's prefix (running stats, conditional BN's
/// stored stats and SN u/v excluded).
fn section(
    title: &str,
    records: &[Record],
    vars: &HashMap<String, Tensor>,
    key: impl Fn(&str) -> String,
) -> Section {
    let mut rows: Vec<Row> = Vec::new();
    for r in records {
        let k = key(&r.name);
        match rows.iter_mut().find(|row| row.name == k) {
            Some(row) => {
                row.shape = r.shape.clone();
                row.macs += r.macs;
            }
            None => rows.push(Row {
                name: k,
                shape: r.shape.clone(),
                params: 0,
                macs: r.macs,
            }),
        }
    }
    let counted = |n: &str| {
        !(n.contains("running_")
            || n.contains("stored_")
            || n.ends_with("weight_u")
            || n.ends_with("weight_v"))
    };
    for row in &mut rows {
        row.params = vars
            .iter()
            .filter(|(n, _)| counted(n) && key(n) == row.name)
            .map(|(_, t)| t.numel() as i64)
            .sum();
    }
    Section {
        title: title.to_string(),
        params: vars
            .iter()
            .filter(|(n, _)| counted(n))
            .map(|(_, t)| t.numel() as i64)
            .sum(),
        macs: rows.iter().map(|r| r.macs).sum(),
        rows,
    }
}

/// The first `n` dot-separated components of `name`.
fn prefix(name: &str, n: usize) -> String {
    name.split('.').take(n).collect::<Vec<_>>().join(".")
}

/// PG feature stage of a trunk variable or record name.
fn feature_group(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("pretrained._blocks.") {
        let block: usize = rest
            .split('.')
            .next()
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        let layer = match block {
            0..=2 => 0,
            3..=4 => 1,
            5..=10 => 2,
            _ => 3,
        };
        return format!("pretrained.layer{layer}");
    }
    if name.starts_with("pretrained.") {
        return "pretrained.layer0".into(); // stem and its BN
    }
    prefix(name, 2)
}

/// Build the three networks of `config` on CPU with random weights and trace one image: a row per
/// module with its output shape, parameter count and multiply-accumulates per image.
pub fn summarize(config: &GeneratorConfig) -> anyhow::Result<Vec<Section>> {
    let _guard = tch::no_grad_guard();
    let gvs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(&gvs.root(), config)?;
    let z = Tensor::randn([1, config.z_dim], (Kind::Float, Device::Cpu));
    let (img, g_rec) = summary::trace(|| g.forward_t(&z, false));

    let fvs = nn::VarStore::new(Device::Cpu);
    let f = FeatureNetwork::new(&fvs.root(), config.resolution, 0);
    let (feats, f_rec) = summary::trace(|| f.forward(&img));

    let dvs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(&dvs.root(), config.classes);
    let (_, d_rec) = summary::trace(|| d.heads_t(&feats, None, false));

    Ok(vec![
        section(
            &format!("Generator {} (trainable)", config.cfg),
            &g_rec,
            &gvs.variables(),
            |n| prefix(n, 2),
        ),
        section(
            "Feature network (frozen: EfficientNet-Lite0 stages + CCM/CSM)",
            &f_rec,
            &fvs.variables(),
            feature_group,
        ),
        section(
            "Discriminator heads (trainable)",
            &d_rec,
            &dvs.variables(),
            |n| prefix(n, 3),
        ),
    ])
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary as text.
pub fn render(config: &GeneratorConfig, sections: &[Section]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fpgan {} at {}x{} (ngf {}, z {}{}); shapes for one image, MACs per image",
        config.cfg,
        config.resolution,
        config.resolution,
        config.ngf,
        config.z_dim,
        match config.classes {
            0 => String::new(),
            c => format!(", conditional on {c} classes"),
        }
    );
    for sec in sections {
        let _ = writeln!(s, "\n{}", sec.title);
        let _ = writeln!(
            s,
            "  {:<28} {:>18} {:>14} {:>9}",
            "module", "output", "params", "GMAC"
        );
        for r in &sec.rows {
            let shape = r
                .shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x");
            let _ = writeln!(
                s,
                "  {:<28} {:>18} {:>14} {:>9.3}",
                r.name,
                shape,
                thousands(r.params),
                r.macs as f64 / 1e9
            );
        }
        let _ = writeln!(
            s,
            "  {:<28} {:>18} {:>14} {:>9.3}",
            "total",
            "",
            thousands(sec.params),
            sec.macs as f64 / 1e9
        );
    }
    let d_call: i64 = sections[1..].iter().map(|s| s.macs).sum();
    let _ = writeln!(
        s,
        "\nOne D call (features + heads): {:.2} GMAC per image; G: {:.2} GMAC per image.",
        d_call as f64 / 1e9,
        sections[0].macs as f64 / 1e9
    );
    s
}
