//! How far apart the CPU's own kernel families put `fpgan check`'s losses and gradients: the
//! yardstick for its tolerances (`--grad-tol`). Run it under two kernel settings, then compare:
//!
//! ```sh
//! L=.venv/libtorch/lib; E=target/release/examples/kernel_spread   # cargo build --release --examples
//! LD_LIBRARY_PATH=$L ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=AVX2 $E a.safetensors
//! LD_LIBRARY_PATH=$L ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=ALL MKL_CBWR=AUTO $E b.safetensors
//! LD_LIBRARY_PATH=$L $E a.safetensors b.safetensors
//! ```
use anyhow::{bail, Result};
use fpgan::nets::generator::GenCfg;
use fpgan::train::devcheck::{compare_network, phase_grads};
use fpgan::train::options::TrainOptions;
use fpgan::train::trainer::Trainer;
use tch::{Device, Kind, Tensor};

/// `fpgan check`'s defaults: faster at 256, ngf 128, batch 4, its seed and inputs.
fn write(out: &str) -> Result<()> {
    let mut opts = TrainOptions::without_data("check", GenCfg::Faster, 256);
    (opts.ngf, opts.batch, opts.batch_gpu) = (128, 4, 4);
    let mut t = Trainer::new(&opts, Device::Cpu)?;
    tch::manual_seed(opts.seed as i64);
    let z = Tensor::randn([4, t.g.config.z_dim], (Kind::Float, Device::Cpu));
    let real = Tensor::rand([4, 3, 256, 256], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let (lg, ld, mut grads) = phase_grads(&mut t, &z, &real)?;
    grads.push(("loss".into(), Tensor::from_slice(&[lg, ld])));
    Ok(Tensor::write_safetensors(&grads, out)?)
}

fn compare(a: &str, b: &str) -> Result<()> {
    let read = |f: &str| -> Result<Vec<(String, Tensor)>> {
        let mut v = Tensor::read_safetensors(f)?;
        v.sort_by(|x, y| x.0.cmp(&y.0));
        Ok(v)
    };
    let (a, b) = (read(a)?, read(b)?);
    let loss = |v: &[(String, Tensor)]| v.iter().find(|(n, _)| n == "loss").map(|(_, t)| t.copy());
    let (Some(la), Some(lb)) = (loss(&a), loss(&b)) else {
        bail!("not written by kernel_spread: no losses");
    };
    let rel = ((&la - &lb).abs() / la.abs()).max().double_value(&[]);
    println!("losses {rel:.2e}");
    for net in ["G.", "D."] {
        let (err, worst) = compare_network(net, &a, &b);
        println!("{net} gradients {err:.2e} (most apart: {worst})");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [out] => write(out),
        [a, b] => compare(a, b),
        _ => bail!(
            "usage: kernel_spread OUT.safetensors | kernel_spread A.safetensors B.safetensors"
        ),
    }
}
