//! `fpgan import`: an official Projected GAN network pickle as an fpgan snapshot.
use crate::snapshot::official::OfficialSnapshot;
use crate::snapshot::snapshot_name;
use crate::train::options::{generator_flags, OPTIONS_FILE};
use crate::train::trainer::Trainer;
use crate::util::files::create_output_dir;
use crate::util::safetensors;
use anyhow::{bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "The pickle is read as data and never run: it may only name the official \
network classes (pg_modules.*), timm's and torch's modules and tensors; anything else is refused \
unread. G, G_ema, the discriminator heads and the CCM/CSM projections are copied; the \
EfficientNet trunk is fpgan's own pretrained one, as the official.\n\nThen:\n  \
fpgan generate --network OUT --seeds 0-7\n  \
fpgan metrics --network OUT --data DATASET\n  \
fpgan train --data DATASET --cfg CFG --res RES --resume OUT --resume-mode reference"
)]
pub struct ImportArgs {
    /// An official snapshot pickle (network-snapshot.pkl or best_model.pkl) of fastgan,
    /// fastgan_lite or their depthwise-separable (faster) variants.
    #[arg(long)]
    pub pkl: PathBuf,
    /// Directory for the snapshot (default: the pickle's name with -fpgan, here); not a
    /// training run's directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: ImportArgs) -> Result<()> {
    if a.pkl.is_dir() {
        bail!(
            "--pkl {} is a directory: give the pickle file in it (network-snapshot.pkl or best_model.pkl)",
            a.pkl.display()
        );
    }
    if !a.pkl.is_file() {
        bail!("--pkl {}: no such file", a.pkl.display());
    }
    let out = a.out.clone().unwrap_or_else(|| {
        let stem = a.pkl.file_stem().unwrap_or_default().to_string_lossy();
        PathBuf::from(format!("{stem}-fpgan"))
    });
    let snap = OfficialSnapshot::read(&a.pkl)?;
    let t = Trainer::from_official(&snap, &a.pkl)?;
    let file = out.join(snapshot_name(t.progress.cur_nimg));
    check_out(&out, &file)?;
    create_output_dir(&out, "--out")?;
    t.save(&file, None)?;
    let g = &snap.generator;
    let cond = match g.classes {
        0 => String::new(),
        c => format!(", {c} classes"),
    };
    println!(
        "import: {} -> {}\n  {} at {r}x{r}, ngf {}, z_dim {}{cond}; {:.3} kimg; G, G_ema, D heads and projections",
        a.pkl.display(),
        file.display(),
        g.cfg,
        g.ngf,
        g.z_dim,
        t.progress.cur_nimg as f64 / 1e3,
        r = g.resolution
    );
    let class = if g.classes > 0 { " --class all" } else { "" };
    println!(
        "  generate: fpgan generate --network {o} --seeds 0-7{class}\n  train on: fpgan train --data {} {} --resume {o} --resume-mode reference",
        snap.dataset.as_deref().unwrap_or("DATASET"),
        generator_flags(g),
        o = out.display()
    );
    Ok(())
}

/// Refuse an `--out` that is a training run's directory (an imported snapshot there would be
/// taken for the run's newest) or that holds a snapshot of this name not made by an import
/// (a training snapshot it would replace). An earlier import of the same name is replaced.
fn check_out(out: &Path, file: &Path) -> Result<()> {
    if out.join(OPTIONS_FILE).is_file() {
        bail!(
            "--out {} is a training run's directory ({OPTIONS_FILE}); import into a directory of its own",
            out.display()
        );
    }
    let imported = |m: serde_json::Value| m["imported_from"].is_string();
    if file.exists() && !safetensors::read_meta(file).is_ok_and(imported) {
        bail!(
            "--out {}: {} exists and was not written by fpgan import; import into another directory",
            out.display(),
            file.display()
        );
    }
    Ok(())
}
