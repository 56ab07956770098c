//! fpgan's networks against the OFFICIAL Projected GAN code (autonomousvision/projected-gan):
//! tests/fixtures/official.safetensors is made by scripts/fixtures/make_official_fixture.py,
//! which imports the official modules (timm 0.4.12, patched in-process only) and runs them.
//!
//! Parameters of G and of the D heads follow a closed formula (`common::formula_weight`, the same in the script)
//! set into the official modules through their state-dict names; every buffer (the official
//! spectral-norm u/v, BN running stats) and the official CCM/CSM weights are stored. The
//! EfficientNet-Lite0 trunk is the project's converted file, loaded by the script into timm's
//! tf_efficientnet_lite0. fp32 on the CPU throughout.
mod common;

use common::{formula_weight, name_salt};
use fpgan::nets::diffaug::diff_augment;
use fpgan::nets::discriminator::Discriminator;
use fpgan::nets::features::FeatureNetwork;
use fpgan::nets::generator::{GenCfg, Generator, GeneratorConfig};
use fpgan::train::options::TrainOptions;
use fpgan::train::trainer::Trainer;
use fpgan::util::home;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use tch::{nn, Device, Kind, Tensor};

/// The tests share libtorch's global generator (noise draws, u/v init at construction): one at a
/// time.
static RNG: Mutex<()> = Mutex::new(());

const SEED_TRAIN: i64 = 1234;
const SEED_EVAL: i64 = 4321;
const SEED_AUG: i64 = 777;

/// Tolerance of every check on values (outputs, logits, buffers, losses, parameters), relative
/// to the official value's largest element. fpgan runs the official operations in the official
/// order, so on the processor that made the fixture it gives the official bits (measured: 0 for
/// G's and D's outputs; `docs/networks.md`). On another processor libtorch's CPU kernels round
/// differently, even held to AVX2 as `cargo test` holds them (.cargo/config.toml; presumably
/// oneDNN's blocking, sized by the processor's caches): the official code against itself differs by
/// up to 4.3e-5 in D's logits and the trunk's BN statistics (an Intel Xeon's AVX-512 kernels
/// against its AVX2 ones; an AMD EPYC against the Xeon, both held to AVX2: 3.0e-5). 2e-4 allows
/// about five times that and still fails a LeakyReLU slope of 0.201 for 0.2 (D's logits 6.3e-4
/// off) or a BN momentum of 0.101 for 0.1 (1.1e-3).
const TOL: f64 = 2e-4;

/// The fixture made by scripts/fixtures/make_official_fixture.py.
fn fixture() -> HashMap<String, Tensor> {
    common::fixture("official.safetensors")
}

/// max |a - b| / max |b| (max |a - b| where b is all zeros)
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let d = (a - b).abs().max().double_value(&[]);
    let m = b.abs().max().double_value(&[]);
    if m == 0.0 {
        d
    } else {
        d / m
    }
}

fn check(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> f64 {
    let e = rel_err(a, b);
    println!("{what}: relative error {e:.3e}");
    assert!(e <= tol, "{what}: relative error {e:.3e} > {tol:.0e}");
    e
}

/// The script's name_salt: sum of (position + 1) * byte, mod 1000, / 10.
/// The script's test_image: sin(0.37 i + salt), f64 then f32.
fn test_image(shape: &[i64], salt: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let i = Tensor::arange(n, (Kind::Double, Device::Cpu));
    (i * 0.37 + salt).sin().to_kind(Kind::Float).reshape(shape)
}

/// The script's `sub`: every `cstep`-th channel, rows/cols round(i (n - 1) / 15), i = 0..15.
fn sub(t: &Tensor, cstep: i64) -> Tensor {
    let (_, c, h, w) = t.size4().unwrap();
    let idx = |n: i64| {
        let v: Vec<i64> = (0..16).map(|i| (2 * i * (n - 1) + 15) / 30).collect();
        Tensor::from_slice(&v)
    };
    t.slice(1, 0, c, cstep)
        .index_select(2, &idx(h))
        .index_select(3, &idx(w))
}

/// Fill the variables of `vs` under `prefix` as the script filled the official modules:
/// buffers from `fx[buf + name]`, parameters from the formula. Checks that fpgan has exactly the
/// official names (parameters `fx[param + name]` with their shapes, and buffers).
fn load_official(
    vs: &nn::VarStore,
    fx: &HashMap<String, Tensor>,
    buf: &str,
    param: &str,
    salt_prefix: &str,
    only: &str,
) {
    let official: BTreeMap<String, Vec<i64>> = fx
        .iter()
        .filter_map(|(k, v)| {
            if let Some(n) = k.strip_prefix(buf) {
                Some((n.to_string(), v.size()))
            } else {
                k.strip_prefix(param)
                    .map(|n| (n.to_string(), Vec::<i64>::try_from(v).unwrap()))
            }
        })
        .filter(|(n, _)| n.starts_with(only))
        .collect();
    let vars: BTreeMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .filter(|(n, _)| n.starts_with(only))
        .collect();
    let ours: BTreeMap<String, Vec<i64>> =
        vars.iter().map(|(n, t)| (n.clone(), t.size())).collect();
    let a: BTreeSet<_> = official.keys().collect();
    let b: BTreeSet<_> = ours.keys().collect();
    assert_eq!(
        a.difference(&b).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "official names missing in fpgan"
    );
    assert_eq!(
        b.difference(&a).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "fpgan names not in the official state dict"
    );
    assert_eq!(official, ours, "shapes differ");
    tch::no_grad(|| {
        for (n, t) in &vars {
            let v = match fx.get(&format!("{buf}{n}")) {
                Some(b) => b.shallow_clone(),
                None => formula_weight(&t.size(), name_salt(&format!("{salt_prefix}{n}"))),
            };
            t.shallow_clone().copy_(&v);
        }
    });
}

fn generator(
    fx: &HashMap<String, Tensor>,
    cfg: GenCfg,
    res: i64,
    p: &str,
) -> (nn::VarStore, Generator) {
    let vs = nn::VarStore::new(Device::Cpu);
    let mut c = GeneratorConfig::new(cfg, res);
    c.ngf = 16;
    let g = Generator::new(&vs.root(), &c).unwrap();
    load_official(&vs, fx, &format!("{p}buf."), &format!("{p}param."), "", "");
    (vs, g)
}

/// The noise fpgan's NoiseInjection draws (Tensor::randn (B,1,H,W) from libtorch's global
/// generator) must be the official draws (torch.randn from the same generator): the first draw
/// and the sum of every draw, in forward order, after the same seed.
fn check_noise_draws(fx: &HashMap<String, Tensor>, p: &str, res: i64) {
    let Some(first) = fx.get(&format!("{p}noise_first")) else {
        return;
    };
    let sums = &fx[&format!("{p}noise_sums")];
    tch::manual_seed(SEED_TRAIN);
    let mut got = Vec::new();
    let mut size = 8;
    while size <= res {
        for k in 0..2 {
            let n = Tensor::randn([2, 1, size, size], (Kind::Float, Device::Cpu));
            if got.is_empty() && k == 0 {
                assert!(n.equal(first), "{p}: first noise draw differs from torch's");
            }
            got.push(n.sum(Kind::Double).double_value(&[]));
        }
        size *= 2;
    }
    let want = Vec::<f32>::try_from(sums).unwrap();
    assert_eq!(got.len(), want.len(), "{p}: number of noise draws");
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        // float64 sums (their order may differ) stored as float32
        let b = *b as f64;
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{p}: noise draw {i} differs from torch's (sum {a} vs {b})"
        );
    }
}

fn check_generator(cfg: GenCfg, res: i64) {
    let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    let p = format!("g.{}.{res}.", cfg.name());
    let (vs, g) = generator(&fx, cfg, res, &p);
    check_noise_draws(&fx, &p, res);
    let z = &fx[&format!("{p}z")];
    tch::manual_seed(SEED_TRAIN);
    let out = tch::no_grad(|| g.forward_t(z, true));
    let out = if res == 128 { out } else { sub(&out, 1) };
    // Same operations in the same order as the official modules.
    check(
        &format!("{p}out_train"),
        &out,
        &fx[&format!("{p}out_train")],
        TOL,
    );
    // buffers after the train-mode forward: u/v after one power iteration, BN running stats
    let vars = vs.variables();
    let mut worst: f64 = 0.0;
    for (k, want) in &fx {
        if let Some(n) = k.strip_prefix(&format!("{p}after.")) {
            let e = rel_err(&vars[n], want);
            assert!(e <= TOL, "{p}{n} after the forward: relative error {e:.3e}");
            worst = worst.max(e);
        }
    }
    println!("{p}buffers after the train forward: worst relative error {worst:.3e}");
    if let Some(want) = fx.get(&format!("{p}out_eval")) {
        tch::manual_seed(SEED_EVAL);
        let out = tch::no_grad(|| g.forward_t(z, false));
        check(&format!("{p}out_eval"), &sub(&out, 1), want, TOL);
    }
}

#[test]
fn generator_fastgan_matches_official() {
    let _rng = common::torch_rng();
    check_generator(GenCfg::Fastgan, 128);
}

#[test]
fn generator_fastgan_lite_matches_official() {
    let _rng = common::torch_rng();
    check_generator(GenCfg::FastganLite, 128);
}

#[test]
fn generator_faster_matches_official() {
    let _rng = common::torch_rng();
    check_generator(GenCfg::Faster, 128);
}

#[test]
fn generator_faster_lite_matches_official() {
    let _rng = common::torch_rng();
    check_generator(GenCfg::FasterLite, 128);
}

#[test]
fn generator_fastgan_256_matches_official() {
    let _rng = common::torch_rng();
    check_generator(GenCfg::Fastgan, 256);
}

/// fpgan's feature network (its own construction pass included) with the official CCM/CSM
/// weights.
fn feature_network(fx: &HashMap<String, Tensor>, res: i64) -> (nn::VarStore, FeatureNetwork) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = FeatureNetwork::new(&vs.root(), res, 0);
    let weights = home::weight_file(home::EFFNET_FILE).unwrap();
    net.load_pretrained(&vs, "", &weights).unwrap();
    let vars = vs.variables();
    let mut n = 0;
    tch::no_grad(|| {
        for (k, v) in fx {
            if let Some(name) = k.strip_prefix("d.w.feature_network.") {
                vars[name].shallow_clone().copy_(v);
                n += 1;
            }
        }
    });
    let ours = vars.keys().filter(|k| k.starts_with("scratch.")).count();
    assert_eq!(n, ours, "official CCM/CSM tensors vs fpgan's");
    (vs, net)
}

fn discriminator(fx: &HashMap<String, Tensor>) -> (nn::VarStore, Discriminator) {
    let vs = nn::VarStore::new(Device::Cpu);
    let mut d = Discriminator::new(&vs.root(), 0);
    d.diffaug = false;
    load_official(&vs, fx, "d.w.", "d.param.", "", "discriminator.");
    (vs, d)
}

fn check_discriminator(res: i64) {
    let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    let p = format!("d.{res}.");
    let (_fvs, fnet) = feature_network(&fx, res);
    assert_eq!(fnet.interp224, res < 224);
    let x = test_image(&[2, 3, res, res], res as f64);
    let trunk = tch::no_grad(|| fnet.trunk(&fnet.resize_input(&x)));
    let ccm = tch::no_grad(|| fnet.ccm(&trunk));
    let proj = tch::no_grad(|| fnet.forward(&x));
    for i in 0..4 {
        // The trunk is the same arithmetic (TF-same padding by an explicit pad, then conv; BN in
        // eval).
        check(
            &format!("{p}trunk{i}"),
            &sub(&trunk[i], 4),
            &fx[&format!("{p}trunk{i}")],
            TOL,
        );
        check(
            &format!("{p}ccm{i}"),
            &sub(&ccm[i], 4),
            &fx[&format!("{p}ccm{i}")],
            TOL,
        );
        check(
            &format!("{p}proj{i}"),
            &sub(&proj[i], 4),
            &fx[&format!("{p}proj{i}")],
            TOL,
        );
    }
    // heads (train mode: batch statistics, one power iteration) on fpgan's own features
    let (dvs, d) = discriminator(&fx);
    let logits = tch::no_grad(|| d.heads_t(&proj, None, true));
    let per_head = logits.size()[1] / 4;
    for i in 0..4 {
        check(
            &format!("{p}logits{i}"),
            &logits.narrow(1, i * per_head, per_head),
            &fx[&format!("{p}logits{i}")],
            TOL,
        );
    }
    let vars = dvs.variables();
    for (k, want) in &fx {
        if let Some(n) = k.strip_prefix(&format!("{p}after.")) {
            let e = rel_err(&vars[&format!("discriminator.{n}")], want);
            assert!(e <= TOL, "{p}{n} after the forward: relative error {e:.3e}");
        }
    }
    // the whole D(x), DiffAugment off, from the initial buffers again
    let (_dvs, d) = discriminator(&fx);
    let full = tch::no_grad(|| d.forward_t(&fnet, &x, true));
    check(
        &format!("{p}logits"),
        &full,
        &fx[&format!("{p}logits")],
        TOL,
    );
    // and with DiffAugment on: the same draws after the same seed, the same logits
    let (_dvs, mut d) = discriminator(&fx);
    d.diffaug = true;
    tch::manual_seed(SEED_AUG);
    let full = tch::no_grad(|| d.forward_t(&fnet, &x, true));
    check(
        &format!("{p}logits_aug"),
        &full,
        &fx[&format!("{p}logits_aug")],
        TOL,
    );
}

#[test]
fn discriminator_128_matches_official() {
    let _rng = common::torch_rng();
    check_discriminator(128);
}

#[test]
fn discriminator_256_matches_official() {
    let _rng = common::torch_rng();
    check_discriminator(256);
}

/// The official F_RandomProj moves every trunk BN's running statistics once at construction
/// (`calc_channels` runs zeros(1, 3, 224, 224) through the trunk in train mode); fpgan makes the
/// same pass, so its trunk statistics are the official ones (to `TOL`: the batch statistics of
/// the trunk's convolutions, which round by the processor).
#[test]
fn trunk_bn_statistics_match_official() {
    let _rng = common::torch_rng();
    let fx = fixture();
    let (vs, _) = feature_network(&fx, 256);
    let vars = vs.variables();
    let mut n = 0;
    for (k, want) in &fx {
        if let Some(name) = k.strip_prefix("d.trunk_bn.") {
            let ours = &vars[&format!("pretrained.{name}")];
            let e = rel_err(ours, want);
            assert!(e <= TOL, "{name}: relative error {e:.3e}");
            n += 1;
        }
    }
    let running = vars
        .keys()
        .filter(|k| k.starts_with("pretrained.") && k.contains("running_"))
        .count();
    assert_eq!(n, running, "every trunk BN statistic is compared");
}

/// The official DiffAugment's seven draws, in its order, from libtorch's generator after `seed`:
/// brightness, saturation and contrast factors, translation H/W, cutout offsets H/W.
fn official_draws(shape: &[i64], seed: i64) -> Tensor {
    let (b, h, w) = (shape[0], shape[2], shape[3]);
    let scaled = |n: i64, r: f64| (n as f64 * r + 0.5) as i64;
    let (th, tw) = (scaled(h, 0.125), scaled(w, 0.125));
    let (ch, cw) = (scaled(h, 0.2), scaled(w, 0.2));
    let f = (Kind::Float, Device::Cpu);
    let i = (Kind::Int64, Device::Cpu);
    tch::manual_seed(seed);
    let draws = [
        Tensor::rand([b], f),
        Tensor::rand([b], f),
        Tensor::rand([b], f),
        Tensor::randint_low(-th, th + 1, [b], i),
        Tensor::randint_low(-tw, tw + 1, [b], i),
        Tensor::randint_low(0, h + (1 - ch % 2), [b], i),
        Tensor::randint_low(0, w + (1 - cw % 2), [b], i),
    ];
    Tensor::cat(&draws.map(|t| t.to_kind(Kind::Float)), 0)
}

/// DiffAugment('color,translation,cutout') = the official module's, draw for draw: the official
/// draws (recorded by the script) are libtorch's after the same seed, and the augmented images
/// agree (1e-6: the same element-wise arithmetic; translation and cutout move or zero pixels).
#[test]
fn diffaugment_matches_official() {
    let _rng = common::torch_rng();
    let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    for (name, shape) in [("a", [4, 3, 64, 64]), ("b", [3, 3, 40, 56])] {
        let draws = official_draws(&shape, SEED_AUG);
        assert!(
            draws.equal(&fx[&format!("aug.{name}.draws")]),
            "libtorch's draws after manual_seed differ from the official DiffAugment's"
        );
        let x = test_image(&shape, 3.0);
        tch::manual_seed(SEED_AUG);
        let out = diff_augment(&x);
        check(
            &format!("aug.{name}.out"),
            &out,
            &fx[&format!("aug.{name}.out")],
            1e-6,
        );
    }
}

const STEP_SEED: i64 = 2024;

/// The script's fingerprint: up to 128 elements at a stride over the flat tensor, then the sum.
fn fingerprint(t: &Tensor) -> Tensor {
    let flat = t.detach().flatten(0, -1);
    let n = flat.numel() as i64;
    let step = ((n + 127) / 128).max(1);
    let sum = flat.to_kind(Kind::Double).sum(Kind::Double);
    Tensor::cat(
        &[
            flat.slice(0, 0, n, step).to_kind(Kind::Float),
            sum.to_kind(Kind::Float).reshape([1]),
        ],
        0,
    )
}

/// The strided elements of a fingerprint (without its sum).
fn elems(f: &Tensor) -> Tensor {
    f.narrow(0, 0, f.numel() as i64 - 1)
}

/// Largest |a - b| over the elements of two fingerprints, and the difference of their sums.
fn fingerprint_diff(ours: &Tensor, want: &Tensor) -> (f64, f64) {
    let f = fingerprint(ours);
    let n = f.numel() as i64;
    let d = (elems(&f) - elems(want)).abs().max().double_value(&[]);
    let d_sum = (f.double_value(&[n - 1]) - want.double_value(&[n - 1])).abs();
    (d, d_sum)
}

/// `ours` against an official fingerprint: elements to `tol` relative to `scale`, the sum to
/// `tol` relative to `scale` times the number of elements. Returns the larger error.
fn check_scaled(what: &str, ours: &Tensor, want: &Tensor, scale: f64, tol: f64) -> f64 {
    let (d, d_sum) = fingerprint_diff(ours, want);
    let e = (d / scale).max(d_sum / (scale * ours.numel() as f64));
    assert!(
        e <= tol,
        "{what}: error {e:.3e} (relative to {scale:.3e}) > {tol:.0e}"
    );
    e
}

/// `ours` against an official fingerprint relative to the official tensor's largest element, or
/// to `FINGERPRINT_FLOOR` where that is smaller: BN running means of activations near zero are
/// sums that cancel, and across processors one 3e-4 small differs by 8e-8, 2.8e-4 of its size.
fn check_fingerprint(what: &str, ours: &Tensor, want: &Tensor, tol: f64) -> f64 {
    const FINGERPRINT_FLOOR: f64 = 1e-2;
    let scale = elems(want)
        .abs()
        .max()
        .double_value(&[])
        .max(FINGERPRINT_FLOOR);
    check_scaled(what, ours, want, scale, tol)
}

/// A parameter after Adam's step against the official one. Where the official gradient element
/// is at the level of rounding (below `floor`), Adam's normalisation turns the sign of that
/// rounding into a whole step of +-lr, in the official code as in fpgan (biases before a
/// train-mode BN have a zero gradient up to rounding; so does the direction of W in a
/// spectral-normalised conv with one output), so there the two may differ by up to 2 lr; every
/// other element must agree to `tol` relative to the tensor's largest element. The first step
/// is lr g / (|g| + eps): near eps it moves with the gradient's rounding, so `floor` is also at
/// least a hundred eps (`adam_floor`).
fn check_param(
    what: &str,
    ours: &Tensor,
    want: &Tensor,
    grad: &Tensor,
    floor: f64,
    lr: f64,
    tol: f64,
) -> f64 {
    let f = elems(&fingerprint(ours));
    let (w, g) = (elems(want), elems(grad));
    let scale = w.abs().max().double_value(&[]);
    let d = (&f - &w).abs();
    let meaningful = g.abs().ge(floor);
    let e = d
        .where_self(&meaningful, &d.zeros_like())
        .max()
        .double_value(&[])
        / scale;
    let noise = d
        .where_self(&meaningful.logical_not(), &d.zeros_like())
        .max()
        .double_value(&[]);
    assert!(
        e <= tol,
        "{what}: error {e:.3e} > {tol:.0e} where the gradient is {floor:.1e} or more"
    );
    assert!(
        noise <= 2.0 * lr * (1.0 + 1e-3),
        "{what}: {noise:.3e} more than two Adam steps apart"
    );
    e
}

/// Below this gradient, Adam's first step is not a function of the gradient at `tol`: rounding
/// (1e-4 of the phase's largest gradient; across processors the gradient elements above it were
/// at most 0.096 of themselves apart, so none flipped sign) or the neighbourhood of eps: a relative error d of g
/// moves lr g / (|g| + eps) by lr d eps |g| / (|g| + eps)^2, a quarter of lr d at |g| = eps and
/// a hundredth of it at 100 eps.
fn adam_floor(gmax: f64, eps: f64) -> f64 {
    (1e-4 * gmax).max(100.0 * eps)
}

/// The script's real batch: round((sin(0.37 i) + 1) * 127.5) as uint8.
fn step_reals(batch: i64, res: i64) -> Tensor {
    let i = Tensor::arange(batch * 3 * res * res, (Kind::Double, Device::Cpu));
    (((i * 0.37).sin() + 1.0) * 127.5)
        .round()
        .to_kind(Kind::Uint8)
        .reshape([batch, 3, res, res])
}

/// One of the script's iterations: `cfg`, the fixture prefixes of its result, G and D, and the
/// classes of a conditional one.
struct StepCase {
    cfg: GenCfg,
    prefix: &'static str,
    g: &'static str,
    d: &'static str,
    classes: i64,
}

/// fpgan's trainer for the script's iteration: `cfg` at 128 (ngf 16), batch 4 in chunks of 2,
/// G from the formula with its official initial buffers (G_ema a copy), D's heads and CCM/CSM
/// as the official D's, at cur_nimg 8000 and batch_idx 0; a conditional one draws G's classes
/// from the script's dataset labels.
fn step_trainer(fx: &HashMap<String, Tensor>, case: &StepCase) -> Trainer {
    let mut opts = TrainOptions::without_data("parity", case.cfg, 128);
    (opts.ngf, opts.batch, opts.batch_gpu) = (16, 4, 2);
    opts.classes = case.classes;
    let mut t = Trainer::new(&opts, Device::Cpu).unwrap();
    if case.classes > 0 {
        let table = Vec::<i64>::try_from(&fx[&format!("{}table", case.prefix)]).unwrap();
        t.set_label_distribution(&table).unwrap();
    }
    let g = case.g;
    load_official(
        &t.gvs,
        fx,
        &format!("{g}buf."),
        &format!("{g}param."),
        "",
        "",
    );
    t.ema_vs.copy(&t.gvs).unwrap();
    let d = case.d;
    load_official(
        &t.dvs,
        fx,
        &format!("{d}w."),
        &format!("{d}param."),
        "",
        "discriminator.",
    );
    let f = t.fvs.variables();
    tch::no_grad(|| {
        for (k, v) in fx {
            if let Some(n) = k.strip_prefix("d.w.feature_network.") {
                f[n].shallow_clone().copy_(v);
            }
        }
    });
    t.progress.cur_nimg = 8000;
    t.progress.batch_idx = 0;
    t
}

/// The largest official gradient element of a phase: the scale at which its backward pass
/// rounds.
fn phase_scale(fx: &HashMap<String, Tensor>, prefix: &str) -> f64 {
    fx.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, f)| elems(f).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

/// One whole training iteration = the official loop body (Gboth, Dmain, Dreg, G EMA) with the
/// official ProjectedGANLoss and torch.optim.Adam, from the same weights, reals and seed: every
/// random draw (latents, noise, DiffAugment) is the official one because fpgan draws the same
/// things in the same order from libtorch's generator.
///
/// Tolerances. Each network is the official function (the tests above), but the backward sums
/// of a whole iteration round differently (CCM/CSM and DiffAugment gradients meet in other
/// orders): by 1e-8 to 7e-6 of a phase's largest gradient on the processor that made the
/// fixture, and one channel's gradient can differ by a tenth (presumably an activation at a
/// LeakyReLU's kink that the rounding moves across: 1.2e-3 of the D phase's scale in the
/// conditional step with MKL's default code path, same machine). On another processor the
/// official code differs from itself by up to 2.4e-3 of the G phase's scale (AMD EPYC against
/// Intel Xeon, both held to AVX2; 3.8e-3 AVX2 against AVX-512). Gradients and first moments are
/// therefore compared relative to that scale (`TOL_GRAD`), second moments (1 - beta2) g^2,
/// whose error is 2 g dg, relative to its square (times 1 - beta2) at twice that; parameters,
/// whose first Adam step is the gradient's sign, as `check_param` says to `TOL`, and losses,
/// buffers and G_ema to `TOL` relative (buffers and G_ema as `check_fingerprint` scales them).
fn check_step(case: StepCase) {
    let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    let p = case.prefix;
    let mut t = step_trainer(&fx, &case);
    let real_labels = (case.classes > 0).then(|| fx[&format!("{p}real_labels")].shallow_clone());
    let reals = step_reals(4, 128);
    check_fingerprint(
        "reals",
        &reals.to_kind(Kind::Double),
        &fx[&format!("{p}reals")],
        0.0,
    );
    tch::manual_seed(STEP_SEED);
    let losses = t.step(&reals, real_labels.as_ref()).unwrap();
    let (lg, ld) = losses.values();
    let tol = TOL;
    const TOL_GRAD: f64 = 1e-2;
    let want = |k: &str| fx[&format!("{p}{k}")].mean(Kind::Double).double_value(&[]);
    let eg = (lg - want("loss_g")).abs() / want("loss_g").abs();
    let ed = (ld - want("loss_d")).abs() / want("loss_d").abs();
    assert!(
        eg <= tol && ed <= tol,
        "losses differ: G {eg:.2e}, D {ed:.2e}"
    );
    let mut worst = BTreeMap::<String, f64>::new();
    for (who, vs, opt) in [("g", &t.gvs, &t.opt_g), ("d", &t.dvs, &t.opt_d)] {
        let vars = vs.variables();
        let gmax = phase_scale(&fx, &format!("{p}{who}.grad."));
        let c = opt.config;
        let mut n_grads = 0;
        for (k, want) in &fx {
            let Some(rest) = k.strip_prefix(&format!("{p}{who}.")) else {
                continue;
            };
            let (kind, n) = rest.split_once('.').unwrap();
            let slot = || opt.slots.iter().find(|s| s.name == n).unwrap();
            let e = match kind {
                "grad" => {
                    n_grads += 1;
                    check_scaled(k, &vars[n].grad(), want, gmax, TOL_GRAD)
                }
                "exp_avg" => check_scaled(k, &slot().exp_avg, want, gmax, TOL_GRAD),
                "exp_avg_sq" => {
                    let scale = (1.0 - c.beta2) * gmax * gmax;
                    check_scaled(k, &slot().exp_avg_sq, want, scale, 2.0 * TOL_GRAD)
                }
                "param" => {
                    let grad = &fx[&format!("{p}{who}.grad.{n}")];
                    check_param(k, &vars[n], want, grad, adam_floor(gmax, c.eps), c.lr, tol)
                }
                "buf" => check_fingerprint(k, &vars[n], want, tol),
                _ => panic!("unexpected fixture key {k}"),
            };
            let w = worst.entry(format!("{who}.{kind}")).or_insert(0.0);
            *w = w.max(e);
        }
        let with_grad = vars.values().filter(|v| v.grad().defined()).count();
        assert_eq!(
            with_grad, n_grads,
            "{who}: parameters with a gradient, fpgan vs official"
        );
    }
    let ema = t.ema_vs.variables();
    for (k, want) in &fx {
        if let Some(n) = k.strip_prefix(&format!("{p}g_ema.")) {
            let e = check_fingerprint(k, &ema[n], want, tol);
            let w = worst.entry("g_ema".into()).or_insert(0.0);
            *w = w.max(e);
        }
    }
    println!(
        "{p} losses G {lg} D {ld} (errors {eg:.1e}, {ed:.1e}); largest errors: {}",
        worst
            .iter()
            .map(|(k, e)| format!("{k} {e:.1e}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn training_iteration_faster_matches_official() {
    let _rng = common::torch_rng();
    check_step(StepCase {
        cfg: GenCfg::Faster,
        prefix: "step.faster.",
        g: "g.faster.128.",
        d: "d.",
        classes: 0,
    });
}

#[test]
fn training_iteration_fastgan_lite_matches_official() {
    let _rng = common::torch_rng();
    check_step(StepCase {
        cfg: GenCfg::FastganLite,
        prefix: "step.fastgan_lite.",
        g: "g.fastgan_lite.128.",
        d: "d.",
        classes: 0,
    });
}

/// The conditional iteration: real labels into D, G's classes drawn from the dataset labels
/// (through G and D in the G phase and D's fake pass), all as the official loss uses them.
#[test]
fn training_iteration_conditional_faster_matches_official() {
    let _rng = common::torch_rng();
    check_step(StepCase {
        cfg: GenCfg::Faster,
        prefix: "stepc.faster.",
        g: "gc.faster.128.",
        d: "dc.",
        classes: 5,
    });
}

/// The official class-conditional G (5 classes, ngf 16, 128) against fpgan's with its weights:
/// names and shapes, train-mode output and buffers after it, eval-mode output.
fn check_conditional_generator(cfg: GenCfg) {
    let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    let p = format!("gc.{}.128.", cfg.name());
    let vs = nn::VarStore::new(Device::Cpu);
    let config = GeneratorConfig {
        ngf: 16,
        classes: 5,
        ..GeneratorConfig::new(cfg, 128)
    };
    let g = Generator::new(&vs.root(), &config).unwrap();
    load_official(&vs, &fx, &format!("{p}buf."), &format!("{p}param."), "", "");
    let (z, labels) = (&fx[&format!("{p}z")], &fx[&format!("{p}labels")]);
    tch::manual_seed(SEED_TRAIN);
    let out = tch::no_grad(|| g.forward_c(z, Some(labels), true));
    check(
        &format!("{p}out_train"),
        &sub(&out, 1),
        &fx[&format!("{p}out_train")],
        TOL,
    );
    let vars = vs.variables();
    let mut n = 0;
    for (k, want) in &fx {
        if let Some(name) = k.strip_prefix(&format!("{p}after.")) {
            check(&format!("{p}{name} after"), &vars[name], want, TOL);
            n += 1;
        }
    }
    assert!(n > 20, "{n} buffers compared");
    tch::manual_seed(SEED_EVAL);
    let out = tch::no_grad(|| g.forward_c(z, Some(labels), false));
    check(
        &format!("{p}out_eval"),
        &sub(&out, 1),
        &fx[&format!("{p}out_eval")],
        TOL,
    );
    // another class gives another image
    tch::manual_seed(SEED_EVAL);
    let other = tch::no_grad(|| g.forward_c(z, Some(&(labels + 1)), false));
    assert!(rel_err(&sub(&other, 1), &fx[&format!("{p}out_eval")]) > 1e-3);
}

#[test]
fn conditional_generator_fastgan_matches_official() {
    let _rng = common::torch_rng();
    check_conditional_generator(GenCfg::Fastgan);
}

#[test]
fn conditional_generator_fastgan_lite_matches_official() {
    let _rng = common::torch_rng();
    check_conditional_generator(GenCfg::FastganLite);
}

#[test]
fn conditional_generator_faster_matches_official() {
    let _rng = common::torch_rng();
    check_conditional_generator(GenCfg::Faster);
}

#[test]
fn conditional_generator_faster_lite_matches_official() {
    let _rng = common::torch_rng();
    check_conditional_generator(GenCfg::FasterLite);
}

/// The official SingleDiscCond heads (5 classes) with their weights, on the official feature
/// network: D(x, labels) in train mode, DiffAugment off.
#[test]
fn conditional_discriminator_matches_official() {
    let _rng = common::torch_rng();
    let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    let (_fvs, fnet) = feature_network(&fx, 128);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut d = Discriminator::new(&vs.root(), 5);
    d.diffaug = false;
    load_official(&vs, &fx, "dc.w.", "dc.param.", "", "discriminator.");
    let x = test_image(&[2, 3, 128, 128], 128.0);
    let labels = &fx["dc.128.labels"];
    let logits = tch::no_grad(|| d.forward_c(&fnet, &x, Some(labels), true));
    check("dc.128.logits", &logits, &fx["dc.128.logits"], TOL);
    load_official(&vs, &fx, "dc.w.", "dc.param.", "", "discriminator.");
    let other = tch::no_grad(|| d.forward_c(&fnet, &x, Some(&(labels + 1)), true));
    assert!(
        rel_err(&other, &fx["dc.128.logits"]) > 1e-3,
        "the class must matter"
    );
}
