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
//! and updates. Measured on an Intel Xeon, AVX2 against AVX-512 kernels, 2026-12-06: one phase's
//! losses 4.9e-6 apart, gradients G 3.7e-3 and D 9.2e-4; over six iterations the losses drift
//! from 3.6e-7 to 1.6e-1 apart and the updates 117 % (G) and 66 % (D); the same kernels twice: 0.
use anyhow::{bail, Result};
use fpgan::nets::generator::GenCfg;
use fpgan::train::devcheck::{
    check_inputs, compare_network, network_error, phase_grads, train_steps,
};
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

/// `fpgan check`'s six training iterations (its `--cuda-graphs` comparison; eager here):
/// every loss, and the parameters before and after.
fn write_steps(out: &str) -> Result<()> {
    let run = train_steps(&check_options(), Device::Cpu, false)?;
    let mut v = vec![("losses".to_string(), Tensor::from_slice(&run.losses))];
    for (i, net) in ["G", "D"].iter().enumerate() {
        for (j, (b, a)) in run.before[i].iter().zip(&run.after[i]).enumerate() {
            v.push((format!("{net}.before.{j:04}"), b.shallow_clone()));
            v.push((format!("{net}.after.{j:04}"), a.shallow_clone()));
        }
    }
    Ok(Tensor::write_safetensors(&v, out)?)
}

type Named = std::collections::BTreeMap<String, Tensor>;

/// The tensors of `net` ("G" or "D") named `<net>.<what>.*`, in order.
fn pick(m: &Named, net: &str, what: &str) -> Vec<Tensor> {
    let pre = format!("{net}.{what}.");
    let mine = m.iter().filter(|(n, _)| n.starts_with(&pre));
    mine.map(|(_, t)| t.shallow_clone()).collect()
}

fn compare_steps(a: &str, b: &str) -> Result<()> {
    let read =
        |f: &str| -> Result<Named> { Ok(Tensor::read_safetensors(f)?.into_iter().collect()) };
    let (a, b) = (read(a)?, read(b)?);
    let rel = ((&a["losses"] - &b["losses"]).abs() / a["losses"].abs()).max();
    println!("losses over the iterations {:.2e}", rel.double_value(&[]));
    for net in ["G", "D"] {
        let updates = |m: &Named| -> Vec<Tensor> {
            let pairs = pick(m, net, "after")
                .into_iter()
                .zip(pick(m, net, "before"));
            pairs.map(|(x, y)| x - y).collect()
        };
        let params = network_error(&pick(&a, net, "after"), &pick(&b, net, "after")).0;
        let upd = network_error(&updates(&a), &updates(&b)).0;
        println!("{net} parameters {params:.2e}, updates {upd:.2e}");
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
