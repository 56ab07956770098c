//! `fpgan export`: a trained generator (G_ema) as TorchScript, for use from PyTorch.
use crate::eval::export::export_torchscript;
use crate::eval::export::TORCHSCRIPT_FILE;
use crate::snapshot::Network;
use crate::util::device::parse_device;
use crate::util::files::check_writable_file;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "In Python:\n  G = torch.jit.load(\"G.pt\")\n  \
z = torch.from_numpy(np.random.RandomState(seed).randn(1, 256)).float()\n  \
torch.manual_seed(seed); img = G(z)   # (1, 3, R, R) in [-1, 1]\n\
gives the image `fpgan generate --seeds <seed>` writes, as uint8 clamp(img*127.5+128).\n\
G takes a batch too: G(torch.randn(16, 256)) gives 16 images (other noise than one at a time).\n\
A class-conditional generator takes the class one-hot, as the official G(z, c):\n  \
c = torch.nn.functional.one_hot(torch.tensor([k]), num_classes).float(); img = G(z, c)\n\
gives `fpgan generate --seeds <seed> --class k`.")]
pub struct ExportArgs {
    /// A snapshot file or a run directory (its newest snapshot).
    #[arg(long)]
    pub network: PathBuf,
    /// Output TorchScript file.
    #[arg(long, default_value = "G.pt")]
    pub out: PathBuf,
    /// Device the module is traced and saved on: cpu (portable), cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    check_writable_file(&a.out, "--out", &TORCHSCRIPT_FILE)?;
    let net = Network::load(&a.network, device)?;
    export_torchscript(&net, &a.out)?;
    let r = net.g.config.resolution;
    let c = match net.classes() {
        0 => String::new(),
        n => format!(", c one-hot (B, {n})"),
    };
    println!(
        "export: G_ema of {} -> {} (TorchScript; z (B, {}){c} -> images (B, 3, {r}, {r}) in [-1, 1])",
        net.source.display(),
        a.out.display(),
        net.g.config.z_dim
    );
    Ok(())
}
