//! `fpgan generate`: one PNG per seed (and a grid), or a looping latent walk, from a trained network.
use super::parse::{parse_grid, parse_seeds};
use crate::data::Source;
use crate::eval::generate::{latent_walk, seed_latent, WalkFormat};
use crate::snapshot::Network;
use crate::util::device::parse_device;
use crate::util::files::create_output_dir;
use crate::util::{images, progress};
use anyhow::{bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A snapshot file or a run directory (its newest snapshot).
    #[arg(long)]
    pub network: PathBuf,
    /// Seeds: e.g. 0-63 or 1,5,9. Each seed gives the same image every time.
    #[arg(long, default_value = "0-63")]
    pub seeds: String,
    /// Output directory (seedNNNN.png per seed).
    #[arg(long, default_value = "out")]
    pub outdir: PathBuf,
    /// Also tile the images into grid.png, COLSxROWS (e.g. 8x8); not with --class all, which
    /// writes its own (one row per class, one column per seed), as --class K does (one row)
    /// unless --grid is given.
    #[arg(long)]
    pub grid: Option<String>,
    /// Truncation: FastGAN has no mapping network, so only `none` exists (as the reference).
    #[arg(long, default_value = "none")]
    pub trunc: String,
    /// Write a looping latent walk through the seeds instead of single images.
    #[arg(long)]
    pub interpolate: bool,
    /// Frames between consecutive seeds of the walk [default: 60].
    #[arg(long)]
    pub frames: Option<usize>,
    /// Format of the walk.
    #[arg(long, value_enum, default_value_t = WalkFormat::Gif)]
    pub format: WalkFormat,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Class of a class-conditional network (needed there, as in the official gen_images.py):
    /// an index K, or `all` for every class (files classKK-seedNNNN.png, and grid.png with one
    /// row per class and one column per seed; a latent walk takes one class).
    #[arg(long)]
    pub class: Option<ClassArg>,
}

/// `--class`: one class, or every class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClassArg {
    One(i64),
    All,
}

impl std::str::FromStr for ClassArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(ClassArg::All),
            k => match k.parse::<i64>() {
                Ok(k) if k >= 0 => Ok(ClassArg::One(k)),
                _ => Err("give a class index (0, 1, ...) or `all`".into()),
            },
        }
    }
}

pub fn run(a: GenerateArgs) -> Result<()> {
    let (seeds, grid) = check_args(&a)?;
    let device = parse_device(&a.device)?;
    let net = Network::load(&a.network, device)?;
    let classes = parse_classes(a.class, net.classes(), a.interpolate)?;
    create_output_dir(&a.outdir, "--outdir")?;
    if a.interpolate {
        // one class (check_args refused `all`)
        let out = latent_walk(&net, &seeds, classes[0], frames(&a), a.format, &a.outdir)?;
        println!(
            "generate: latent walk through {} seeds{} -> {}",
            seeds.len(),
            classes[0].map_or(String::new(), |k| format!(" of class {k}")),
            out.display()
        );
        return Ok(());
    }
    let n = seeds.len() * classes.len();
    let grid = match grid {
        Some((c, r)) if (c * r) as usize != n => {
            let cells = (c * r) as usize;
            let shown = match cells < n {
                true => format!("shows the first {cells}"),
                false => format!("holds them in {} row(s) of {c}", n.div_ceil(c as usize)),
            };
            eprintln!("warning: --grid {c}x{r} has {cells} cells for {n} images: grid.png {shown}");
            grid
        }
        Some(_) => grid,
        None if a.class.is_none() => None,
        None if n <= MAX_GRID => Some((seeds.len() as i64, classes.len() as i64)),
        None => {
            println!("generate: no grid.png for {n} images (at most {MAX_GRID}); use fewer seeds or classes");
            None
        }
    };
    let written = write_images(&net, &seeds, &classes, grid, &a.outdir)?;
    println!(
        "generate: {} from {} -> {}",
        progress::count(n as u64, "image"),
        net.source.display(),
        a.outdir.display()
    );
    let older = older_images(&a.outdir, &written);
    if older > 0 {
        println!(
            "note: {} also holds {} from before (not written now; `fpgan metrics --fake` would read them too)",
            a.outdir.display(),
            progress::count(older as u64, "other image file")
        );
    }
    Ok(())
}

/// The images in `outdir` as `fpgan metrics --fake` reads it (subfolders too, hidden files
/// not), other than the files `written`.
fn older_images(outdir: &Path, written: &[String]) -> usize {
    let Ok(mut src) = Source::open(outdir) else {
        return 0; // nothing there
    };
    src.retain_image_extensions();
    let written: std::collections::HashSet<&str> = written.iter().map(String::as_str).collect();
    (0..src.len())
        .filter(|&i| !written.contains(src.name(i)))
        .count()
}

/// The seeds and grid of `a`, once every option is known to fit the others (before any loading).
fn check_args(a: &GenerateArgs) -> Result<(Vec<u32>, Option<Grid>)> {
    if a.trunc != "none" {
        bail!("--trunc {}: FastGAN has no mapping network, so truncation does not exist; use --trunc none", a.trunc);
    }
    let seeds = parse_seeds(&a.seeds)?;
    let grid = a.grid.as_deref().map(parse_grid).transpose()?;
    if a.interpolate && grid.is_some() {
        bail!("--grid tiles single images: not with --interpolate (drop one of them)");
    }
    if a.class == Some(ClassArg::All) && grid.is_some() {
        bail!("--grid: with --class all, grid.png is one row per class and one column per seed; drop --grid");
    }
    if !a.interpolate && a.format != WalkFormat::Gif {
        bail!("--format is the latent walk's: add --interpolate, or drop --format");
    }
    if !a.interpolate && a.frames.is_some() {
        bail!("--frames is the latent walk's: add --interpolate, or drop --frames");
    }
    if a.interpolate {
        if a.class == Some(ClassArg::All) {
            bail!("--interpolate walks one class: give --class K");
        }
        if seeds.len() < 2 || frames(a) < 1 {
            bail!("--interpolate needs at least two seeds and --frames >= 1");
        }
        if seeds.len().saturating_mul(frames(a)) > MAX_FRAMES {
            bail!("--interpolate: {} seeds x --frames {} is over {MAX_FRAMES} frames; use fewer seeds or frames", seeds.len(), frames(a));
        }
        return Ok((seeds, grid)); // a walk may pass a seed twice (0,1,0)
    }
    Ok((once_each(seeds), grid))
}

/// The seeds without repeats (one file each), in the order given; a note names a repeat.
fn once_each(seeds: Vec<u32>) -> Vec<u32> {
    let mut seen = std::collections::HashSet::new();
    let (once, again): (Vec<u32>, Vec<u32>) = seeds.into_iter().partition(|&s| seen.insert(s));
    if let Some(first) = again.first() {
        println!(
            "note: --seeds names seed {first} more than once ({} repeat(s) in all): one image each",
            again.len()
        );
    }
    once
}

/// grid.png's columns and rows.
type Grid = (i64, i64);

/// Frames of a latent walk held in memory at most.
const MAX_FRAMES: usize = 20_000;

/// `seedNNNN.png` per seed (`classKK-seedNNNN.png` per class and seed of a conditional
/// network) and, with `grid`, the first COLSxROWS of them tiled into grid.png (for classes: a row
/// per class, a column per seed). Returns the names of the files written.
fn write_images(
    net: &Network,
    seeds: &[u32],
    classes: &[Option<i64>],
    grid: Option<Grid>,
    outdir: &Path,
) -> Result<Vec<String>> {
    let in_grid = grid.map_or(0, |(c, r)| (c * r) as usize);
    let pb = progress::bar((seeds.len() * classes.len()) as u64, "generating");
    let mut tiles = Vec::new();
    let mut written = Vec::new();
    for &class in classes {
        for &seed in seeds {
            let img = net.image(&seed_latent(seed, net.g.config.z_dim), class, seed as i64);
            let name = match class {
                Some(k) => format!("class{k:02}-seed{seed:04}.png"),
                None => format!("seed{seed:04}.png"),
            };
            images::save_png(&images::to_image(&img)?, &outdir.join(&name))?;
            written.push(name);
            if tiles.len() < in_grid {
                tiles.push(img);
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    if let Some((cols, _)) = grid {
        let batch = tch::Tensor::stack(&tiles, 0);
        images::save_grid(&batch, cols as usize, &outdir.join("grid.png"))?;
        written.push("grid.png".into());
    }
    Ok(written)
}

/// The classes `--class` asks for ([None] for an unconditional network; a conditional one needs
/// --class, and a `walk` one class).
fn parse_classes(class: Option<ClassArg>, classes: i64, walk: bool) -> Result<Vec<Option<i64>>> {
    match (class, classes) {
        (None, 0) => Ok(vec![None]),
        // as the official gen_images.py, which asks for a label
        (None, n) => bail!(
            "this network is class-conditional ({n} classes): give --class K (0 to {}){}",
            n - 1,
            if walk { "" } else { " or --class all" }
        ),
        (Some(_), 0) => bail!("--class: this network is unconditional; leave --class out"),
        (Some(ClassArg::All), n) => Ok((0..n).map(Some).collect()),
        (Some(ClassArg::One(k)), n) if k < n => Ok(vec![Some(k)]),
        (Some(ClassArg::One(k)), n) => {
            bail!("--class {k}: give a class from 0 to {} or `all`", n - 1)
        }
    }
}

/// Images tiled into one class grid at most.
const MAX_GRID: usize = 1024;

/// Frames between consecutive seeds of a walk: `--frames`, 60 by default.
fn frames(a: &GenerateArgs) -> usize {
    a.frames.unwrap_or(60)
}
