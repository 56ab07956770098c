//! How far apart the CPU's own kernel families put `fpgan check`'s losses and gradients: the
//! yardstick for its tolerances (`--grad-tol`). Run it under two kernel settings, then compare:
//!
//! ```sh
//! L=.venv/libtorch/lib; E=target/release/examples/kernel_spread   # cargo build --release --examples
//! LD_LIBRARY_PATH=$L ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=AVX2 $E a.safetensors
//! LD_LIBRARY_PATH=$L ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=ALL MKL_CBWR=AUTO $E b.safetensors
//! LD_LIBRARY_PATH=$L $E a.safetensors b.safetensors
//! ```
//!
//! With `steps` first (`$E steps a.safetensors`, ...) the same for check's six training
//! iterations (its `--cuda-graphs` comparison, eager): every loss, and G's and D's parameters
//! and updates. Measured on an Intel Xeon, AVX2 against AVX-512 kernels, 2026-12-06 (again
//! after the deterministic CUDA operators): one phase's losses 4.9e-6 apart, gradients G 3.7e-3
//! and D 9.2e-4; over six iterations the losses drift from 3.6e-7 to 2.4e-1 apart and the
//! updates 116 % (G) and 66 % (D); the same kernels twice: 0.
use anyhow::{bail, Context, Result};
use fpgan::nets::generator::GenCfg;
use fpgan::train::devcheck::{check_inputs, compare_network, phase_grads, train_steps};
use fpgan::train::options::TrainOptions;
use fpgan::train::trainer::Trainer;
use tch::{Device, Tensor};

/// `fpgan check`'s defaults: faster at 256, ngf 128, batch 4.
fn check_options() -> TrainOptions {
    let mut opts = TrainOptions::without_data("check", GenCfg::Faster, 256);
    (opts.ngf, opts.batch, opts.batch_gpu) = (128, 4, 4);
    opts
}

/// `fpgan check`'s losses and gradients of one G and one D phase, from its seed and inputs.
fn write(out: &str) -> Result<()> {
    let opts = check_options();
    let mut t = Trainer::new(&opts, Device::Cpu)?;
    let (z, real) = check_inputs(&opts, t.g.config.z_dim);
    let (lg, ld, mut grads) = phase_grads(&mut t, &z, &real)?;
    grads.push(("loss".into(), Tensor::from_slice(&[lg, ld])));
    Ok(Tensor::write_safetensors(&grads, out)?)
}

/// A file of this example's, sorted by name (safetensors reads back in no fixed order).
fn read(f: &str) -> Result<Vec<(String, Tensor)>> {
    let mut v = Tensor::read_safetensors(f)?;
    v.sort_by(|x, y| x.0.cmp(&y.0));
    Ok(v)
}

/// The tensor named `name`.
fn named(v: &[(String, Tensor)], name: &str) -> Result<Tensor> {
    let found = v.iter().find(|(n, _)| n == name).map(|(_, t)| t.copy());
    found.with_context(|| format!("not written by kernel_spread: no '{name}'"))
}

/// Largest relative difference of the losses stored as `name`.
fn losses_apart(a: &[(String, Tensor)], b: &[(String, Tensor)], name: &str) -> Result<f64> {
    let (la, lb) = (named(a, name)?, named(b, name)?);
    Ok(((&la - &lb).abs() / la.abs()).max().double_value(&[]))
}

fn compare(a: &str, b: &str) -> Result<()> {
    let (a, b) = (read(a)?, read(b)?);
    println!("losses {:.2e}", losses_apart(&a, &b, "loss")?);
    for net in ["G.", "D."] {
        let (err, worst) = compare_network(net, &a, &b);
        println!("{net} gradients {err:.2e} (most apart: {worst})");
    }
    Ok(())
}

/// `fpgan check`'s six training iterations (its `--cuda-graphs` comparison; eager here):
/// every loss, and G's and D's parameters after them and their updates.
fn write_steps(out: &str) -> Result<()> {
    let run = train_steps(&check_options(), Device::Cpu, false)?;
    let mut v = vec![("losses".to_string(), Tensor::from_slice(&run.losses))];
    let updates = run.updates();
    for (i, net) in ["G", "D"].iter().enumerate() {
        for (j, (p, u)) in run.after[i].iter().zip(&updates[i]).enumerate() {
            v.push((format!("{net}.param.{j:04}"), p.shallow_clone()));
            v.push((format!("{net}.update.{j:04}"), u.shallow_clone()));
        }
    }
    Ok(Tensor::write_safetensors(&v, out)?)
}

fn compare_steps(a: &str, b: &str) -> Result<()> {
    let (a, b) = (read(a)?, read(b)?);
    let over = losses_apart(&a, &b, "losses")?;
    println!("losses over the iterations {over:.2e}");
    for net in ["G", "D"] {
        let (params, _) = compare_network(&format!("{net}.param."), &a, &b);
        let (updates, _) = compare_network(&format!("{net}.update."), &a, &b);
        println!("{net} parameters {params:.2e}, updates {updates:.2e}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["steps", out] => write_steps(out),
        ["steps", a, b] => compare_steps(a, b),
        [out] => write(out),
        [a, b] => compare(a, b),
        _ => bail!("usage: kernel_spread [steps] OUT.safetensors | kernel_spread [steps] A.safetensors B.safetensors"),
    }
}
