//! Shapes and parameter counts of the networks, spectral norm against an SVD, gradient flow,
//! frozen feature network.
mod common;
use fpgan::nets::discriminator::Discriminator;
use fpgan::nets::features::{
    frozen_feature_network, projection_params, trunk_params, FeatureNetwork,
};
use fpgan::nets::generator::{GenCfg, Generator, GeneratorConfig};
use fpgan::nets::layers::{trainable_params, ConvSpec, SnConv};
use fpgan::util::home;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn g_params(cfg: GenCfg, res: i64) -> i64 {
    let vs = nn::VarStore::new(Device::Cpu);
    Generator::new(&vs.root(), &GeneratorConfig::new(cfg, res)).unwrap();
    trainable_params(&vs)
}

#[test]
fn generator_parameter_counts_match_the_reference() {
    let _rng = common::torch_rng();
    // reference sections 1.7 and 2 (256, 512, 1024)
    assert_eq!(g_params(GenCfg::Fastgan, 256), 105_684_175);
    assert_eq!(g_params(GenCfg::FastganLite, 256), 79_354_307);
    assert_eq!(g_params(GenCfg::Faster, 256), 36_601_871);
    assert_eq!(g_params(GenCfg::FasterLite, 256), 33_648_195);
    assert_eq!(g_params(GenCfg::Fastgan, 512), 105_870_961);
    assert_eq!(g_params(GenCfg::FastganLite, 512), 79_522_531);
    assert_eq!(g_params(GenCfg::Fastgan, 1024), 105_884_483);
    assert_eq!(g_params(GenCfg::FastganLite, 1024), 79_531_379);
    // 128: same modules as 256 (feat_256/se_256 built, unused); to_big reads 128 channels
    // instead of 64: (128-64)*3*9 = 1728 more weights.
    for cfg in GenCfg::ALL {
        assert_eq!(g_params(cfg, 128), g_params(cfg, 256) + 1728, "{cfg}");
    }
    // Faster at 512 adds feat_512 (separable) and se_512 as fastgan does, with DSC weights:
    // UpBlockBig(64->32): dw 64*9 + pw 64*64 + dw 32*9 + pw 32*64 + 2 noise + 2 BN(64)*2
    let up512 = 64 * 9 + 64 * 64 + 32 * 9 + 32 * 64 + 2 + 4 * 64;
    let se512 = 256 * 32 * 16 + 32 * 32;
    let to_big_change = (32 - 64) * 27;
    assert_eq!(
        g_params(GenCfg::Faster, 512),
        36_601_871 + up512 + se512 + to_big_change
    );
}

#[test]
fn separable_configs_replace_every_upblock_conv_and_nothing_else() {
    let _rng = common::torch_rng();
    let names = |cfg| {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut c = GeneratorConfig::new(cfg, 256);
        c.ngf = 16;
        Generator::new(&vs.root(), &c).unwrap();
        let mut n: Vec<String> = vs.variables().into_keys().collect();
        n.sort();
        n
    };
    let base = names(GenCfg::Fastgan);
    let faster = names(GenCfg::Faster);
    assert!(base.contains(&"synthesis.feat_8.1.weight_orig".to_string()));
    assert!(faster.contains(&"synthesis.feat_8.1.depthwise.weight_orig".to_string()));
    assert!(faster.contains(&"synthesis.feat_8.5.pointwise.weight_u".to_string()));
    let strip = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|n| n.replace(".depthwise", "").replace(".pointwise", ""))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    assert_eq!(
        strip(&base),
        strip(&faster),
        "same modules apart from the split convs"
    );
    let lite = names(GenCfg::FastganLite);
    assert!(!lite
        .iter()
        .any(|n| n.contains("feat_8.2.weight") && n.contains("noise")));
    assert!(!lite.contains(&"synthesis.feat_8.5.weight_orig".to_string()));
}

#[test]
fn generator_outputs_images_at_every_resolution() {
    let _rng = common::torch_rng();
    for cfg in GenCfg::ALL {
        for res in [128, 256, 512] {
            let vs = nn::VarStore::new(Device::Cpu);
            let mut c = GeneratorConfig::new(cfg, res);
            c.ngf = 16; // shapes do not depend on the width
            let g = Generator::new(&vs.root(), &c).unwrap();
            let z = Tensor::randn([2, 256], (Kind::Float, Device::Cpu));
            let img = tch::no_grad(|| g.forward_t(&z, true));
            assert_eq!(img.size(), vec![2, 3, res, res], "{cfg} at {res}");
            assert!(img.isfinite().all().int64_value(&[]) == 1);
        }
    }
    let vs = nn::VarStore::new(Device::Cpu);
    assert!(Generator::new(&vs.root(), &GeneratorConfig::new(GenCfg::Faster, 64)).is_err());
}

#[test]
fn batch_norm_trains_on_batch_stats_and_evaluates_on_running_stats() {
    let _rng = common::torch_rng();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut c = GeneratorConfig::new(GenCfg::FasterLite, 128);
    c.ngf = 16;
    let g = Generator::new(&vs.root(), &c).unwrap();
    let rm = vs.variables()["synthesis.feat_8.2.running_mean"].shallow_clone();
    let before = rm.copy();
    let z = Tensor::randn([4, 256], (Kind::Float, Device::Cpu));
    let _ = tch::no_grad(|| g.forward_t(&z, true));
    assert!(
        rm.not_equal_tensor(&before).any().int64_value(&[]) == 1,
        "train mode updates running stats"
    );
    let after = rm.copy();
    // lite has no noise: eval mode is deterministic and leaves running stats alone
    let a = tch::no_grad(|| g.forward_t(&z, false));
    let b = tch::no_grad(|| g.forward_t(&z, false));
    assert!(a.equal(&b));
    assert!(rm.equal(&after));
    // eval of a single sample equals its row in a batch (no batch statistics in eval)
    let one = tch::no_grad(|| g.forward_t(&z.narrow(0, 1, 1), false));
    assert!(one.allclose(&a.narrow(0, 1, 1), 1e-4, 1e-5, false));
}

#[test]
fn noise_is_fresh_per_forward_and_starts_with_zero_weight() {
    let _rng = common::torch_rng();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut c = GeneratorConfig::new(GenCfg::Faster, 128);
    c.ngf = 16;
    let g = Generator::new(&vs.root(), &c).unwrap();
    let w = vs.variables()["synthesis.feat_8.2.weight"].shallow_clone();
    assert_eq!(w.double_value(&[0]), 0.0);
    let z = Tensor::randn([2, 256], (Kind::Float, Device::Cpu));
    let a = tch::no_grad(|| g.forward_t(&z, false));
    assert!(
        a.equal(&tch::no_grad(|| g.forward_t(&z, false))),
        "zero noise weights: deterministic"
    );
    tch::no_grad(|| {
        let _ = w.shallow_clone().fill_(0.5);
    });
    let b = tch::no_grad(|| g.forward_t(&z, false));
    let c2 = tch::no_grad(|| g.forward_t(&z, false));
    assert!(
        !b.equal(&c2),
        "noise is redrawn on every forward, also in eval mode"
    );
}

/// Largest singular value of the SN matrix.
fn top_singular(m: &Tensor) -> f64 {
    let (_, s, _) = m.svd(true, false);
    s.double_value(&[0])
}

#[test]
fn spectral_norm_converges_to_the_top_singular_value() {
    let _rng = common::torch_rng();
    tch::manual_seed(1);
    for (name, spec, rows_dim1) in [
        ("conv", ConvSpec::new(8, 16, 3).pad(1), false),
        ("depthwise", ConvSpec::new(8, 8, 3).pad(1).groups(8), false),
        ("transposed", ConvSpec::new(16, 12, 4).transposed(), true),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let sn = SnConv::new(&(vs.root() / name), spec);
        let w = &sn.weight_orig;
        let m = if rows_dim1 {
            w.transpose(0, 1)
        } else {
            w.shallow_clone()
        };
        let m = m.reshape([spec.cout, -1]);
        assert_eq!(sn.u.size(), vec![spec.cout]);
        assert_eq!(sn.v.size(), vec![m.size()[1]]);
        // eval: no power iteration, u and v stay
        let (u0, v0) = (sn.u.copy(), sn.v.copy());
        let _ = tch::no_grad(|| sn.weight(false));
        assert!(
            sn.u.equal(&u0) && sn.v.equal(&v0),
            "{name}: eval must not iterate"
        );
        // train: one iteration per call, converging to the SVD
        for _ in 0..200 {
            let _ = tch::no_grad(|| sn.weight(true));
        }
        assert!(!sn.u.equal(&u0), "{name}: train mode iterates");
        let normed = tch::no_grad(|| sn.weight(false));
        let sigma = w.abs().max().double_value(&[]) / normed.abs().max().double_value(&[]);
        let svd = top_singular(&m);
        assert!(
            (sigma - svd).abs() / svd < 1e-4,
            "{name}: sigma {sigma} vs svd {svd}"
        );
        let mn = if rows_dim1 {
            normed.transpose(0, 1)
        } else {
            normed
        };
        let top = top_singular(&mn.reshape([spec.cout, -1]));
        assert!(
            (top - 1.0).abs() < 1e-4,
            "{name}: normalised top singular value {top}"
        );
    }
}

fn features(res: i64) -> (nn::VarStore, FeatureNetwork) {
    let weights = home::weight_file(home::EFFNET_FILE).unwrap();
    frozen_feature_network(Device::Cpu, res, 0, &weights).unwrap()
}

#[test]
fn discriminator_counts_and_logit_shapes() {
    let _rng = common::torch_rng();
    let (fvs, f) = features(256);
    assert_eq!(trunk_params(&fvs), 2_958_848);
    assert_eq!(projection_params(&fvs), 200_128 + 176_640);
    assert_eq!(trainable_params(&fvs), 0, "the feature network is frozen");
    let dvs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(&dvs.root(), 0);
    assert_eq!(trainable_params(&dvs), 10_331_328);
    for (res, n) in [(256, 100), (512, 676)] {
        let (_fvs, f) = features(res);
        let x = Tensor::rand([2, 3, res, res], (Kind::Float, Device::Cpu)) * 2 - 1;
        let logits = tch::no_grad(|| d.forward_t(&f, &x, true));
        assert_eq!(logits.size(), vec![2, n], "at {res}");
    }
    let (_fvs, f128) = features(128);
    let x = Tensor::rand([2, 3, 128, 128], (Kind::Float, Device::Cpu)) * 2 - 1;
    assert_eq!(
        tch::no_grad(|| d.forward_t(&f128, &x, true)).size(),
        vec![2, 64]
    );
    drop(f);
}

#[test]
fn ccm_csm_are_seeded_and_differ_between_seeds() {
    let _rng = common::torch_rng();
    let w = home::weight_file(home::EFFNET_FILE).unwrap();
    let get = |seed| {
        let (vs, _) = frozen_feature_network(Device::Cpu, 256, seed, &w).unwrap();
        vs.variables()["scratch.layer2_csm.out_conv.weight"].copy()
    };
    assert!(get(3).equal(&get(3)));
    assert!(!get(3).equal(&get(4)));
    // PyTorch default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 256 here
    let w = get(5);
    let bound = 1.0 / 256f64.sqrt();
    assert!(w.abs().max().double_value(&[]) <= bound);
    assert!(w.abs().max().double_value(&[]) > 0.9 * bound);
}

#[test]
fn gradients_reach_g_through_d_and_the_feature_network_never_changes() {
    let _rng = common::torch_rng();
    tch::manual_seed(0);
    let gvs = nn::VarStore::new(Device::Cpu);
    let mut c = GeneratorConfig::new(GenCfg::Faster, 128);
    c.ngf = 16;
    let g = Generator::new(&gvs.root(), &c).unwrap();
    let (fvs, f) = features(128);
    let dvs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(&dvs.root(), 0);
    let frozen: Vec<(String, Tensor)> = fvs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    let mut opt_g = nn::Adam::default().build(&gvs, 1e-3).unwrap();
    let mut opt_d = nn::Adam::default().build(&dvs, 1e-3).unwrap();

    // G phase: loss -mean(D(G(z))) reaches every G parameter that is used at 128
    let z = Tensor::randn([2, 256], (Kind::Float, Device::Cpu));
    let loss = -d
        .forward_t(&f, &g.forward_t(&z, true), true)
        .mean(Kind::Float);
    opt_g.zero_grad();
    loss.backward();
    for (name, t) in gvs.variables() {
        if !t.requires_grad() || name.contains("feat_256") || name.contains("se_256") {
            continue;
        }
        let grad = t.grad();
        assert!(grad.defined(), "{name} has no gradient");
        if !name.ends_with("2.weight") && !name.ends_with("6.weight") {
            // (noise weights start at 0 but still get gradients; others must be non-zero)
            assert!(
                grad.abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "{name}: zero gradient"
            );
        }
    }
    for (name, t) in fvs.variables() {
        assert!(
            !t.requires_grad() && !t.grad().defined(),
            "{name} must be frozen"
        );
    }
    opt_g.step();
    // D phase: hinge on fake and real in separate calls
    let fake = tch::no_grad(|| g.forward_t(&z, true));
    let real = Tensor::rand([2, 3, 128, 128], (Kind::Float, Device::Cpu)) * 2 - 1;
    opt_d.zero_grad();
    (d.forward_t(&f, &fake, true) + 1.0)
        .relu()
        .mean(Kind::Float)
        .backward();
    (-d.forward_t(&f, &real, true) + 1.0)
        .relu()
        .mean(Kind::Float)
        .backward();
    opt_d.step();
    for (name, before) in frozen {
        assert!(fvs.variables()[&name].equal(&before), "{name} changed");
    }
}
