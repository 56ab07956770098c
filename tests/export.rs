//! `fpgan export`: the TorchScript generator, loaded by PyTorch (the project venv's python),
//! gives the images `fpgan generate` writes for the same seeds (latent and noise).
mod common;

use common::{fpgan, g_ema_snapshot, text, venv_python};
use fpgan::nets::generator::GenCfg;
use std::process::Command;

const PY: &str = r#"
import sys, numpy as np, torch
G = torch.jit.load(sys.argv[1])
for seed in (3, 5):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, 256)).float()
    torch.manual_seed(seed)
    with torch.no_grad():
        x = G(z)
    img = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()
    np.save(f"{sys.argv[2]}/py{seed}.npy", img.numpy())
"#;

#[test]
fn torchscript_generator_gives_fpgans_images_in_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("network-snapshot-000000.000.safetensors");
    g_ema_snapshot(&snap, GenCfg::Faster, 0.3); // noise on: the draws must agree too
    let (s, d) = (snap.to_str().unwrap(), tmp.path().to_str().unwrap());
    let o = fpgan(&["generate", "--network", s, "--seeds", "3,5", "--outdir", d]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pt = tmp.path().join("G.pt");
    let o = fpgan(&["export", "--network", s, "--out", pt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = Command::new(venv_python())
        .args(["-c", PY, pt.to_str().unwrap(), d])
        .output()
        .expect("the project venv's python (make setup)");
    assert!(o.status.success(), "{}", text(&o.stderr));
    for seed in [3, 5] {
        let ours = image::open(tmp.path().join(format!("seed{seed:04}.png")))
            .unwrap()
            .to_rgb8();
        let py = tch::Tensor::read_npy(tmp.path().join(format!("py{seed}.npy"))).unwrap();
        let py = Vec::<u8>::try_from(py.flatten(0, -1)).unwrap();
        let worst = ours
            .as_raw()
            .iter()
            .zip(&py)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert_eq!(
            worst,
            Some(0),
            "seed {seed}: PyTorch's image differs from fpgan's"
        );
    }
    // a path that cannot be written is refused before any work
    let o = fpgan(&["export", "--network", s, "--out", "/nonexistent/dir/G.pt"]);
    assert!(!o.status.success() && text(&o.stderr).contains("--out"));
}
