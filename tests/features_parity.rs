//! The feature network against tests/fixtures/features.safetensors, made by
//! scripts/fixtures/make_feature_fixture.py (an independent torch.nn.functional implementation
//! run with the virtualenv's torch on the same EfficientNet-Lite0 weights).
mod common;

use common::formula_weight;
use fpgan::nets::features::FeatureNetwork;
use fpgan::util::home;
use std::collections::HashMap;
use tch::{nn, Device, Tensor};

fn fixture() -> HashMap<String, Tensor> {
    common::fixture("features.safetensors")
}

fn network(resolution: i64) -> (nn::VarStore, FeatureNetwork) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = FeatureNetwork::new(&vs.root(), resolution, 0);
    let weights = home::weight_file(home::EFFNET_FILE).unwrap();
    net.load_pretrained(&vs, "", &weights).unwrap();
    (vs, net)
}

/// max |a - b| / max |b|
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let d = (a - b).abs().max().double_value(&[]);
    d / b.abs().max().double_value(&[])
}

#[test]
fn trunk_matches_python_on_odd_sizes() {
    let fx = fixture();
    let (_vs, net) = network(256);
    let feats = tch::no_grad(|| net.trunk(&fx["a.input"]));
    let channels: Vec<i64> = feats.iter().map(|f| f.size()[1]).collect();
    assert_eq!(channels, vec![24, 40, 112, 320]);
    for (i, f) in feats.iter().enumerate() {
        let e = rel_err(f, &fx[&format!("a.trunk{i}")]);
        assert!(e <= 1e-4, "trunk feature {i}: relative error {e}");
    }
}

#[test]
fn projections_match_python() {
    let fx = fixture();
    let (vs, net) = network(256);
    let vars = vs.variables();
    tch::no_grad(|| {
        for i in 0..4 {
            for (kind, salt) in [("ccm", 0.0), ("csm", 20.0)] {
                let base = if kind == "ccm" {
                    format!("scratch.layer{i}_ccm")
                } else {
                    format!("scratch.layer{i}_csm.out_conv")
                };
                let mut w = vars[&format!("{base}.weight")].shallow_clone();
                let mut b = vars[&format!("{base}.bias")].shallow_clone();
                w.copy_(&formula_weight(&w.size(), salt + i as f64));
                b.copy_(&formula_weight(&b.size(), salt + 10.0 + i as f64));
            }
        }
    });
    let out = tch::no_grad(|| net.forward(&fx["b.input"]));
    let sizes: Vec<Vec<i64>> = out.iter().map(|f| f.size()).collect();
    assert_eq!(
        sizes,
        vec![
            vec![1, 64, 32, 32],
            vec![1, 64, 16, 16],
            vec![1, 128, 8, 8],
            vec![1, 256, 4, 4]
        ]
    );
    for (i, f) in out.iter().enumerate() {
        let e = rel_err(f, &fx[&format!("b.proj{i}")]);
        assert!(e <= 1e-4, "projected feature {i}: relative error {e}");
    }
}

#[test]
fn small_data_is_resized_to_224_before_the_trunk() {
    let fx = fixture();
    let (_vs, net) = network(16);
    assert!(net.interp224);
    let feats = tch::no_grad(|| net.trunk(&net.resize_input(&fx["c.input"])));
    assert_eq!(feats[3].size(), vec![1, 320, 7, 7]);
    for i in [1, 3] {
        let e = rel_err(&feats[i], &fx[&format!("c.trunk{i}")]);
        assert!(e <= 1e-4, "trunk feature {i} at 224: relative error {e}");
    }
    // data of 224 and more is not resized
    let (_vs, net) = network(256);
    assert!(!net.interp224);
}
