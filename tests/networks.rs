//! Shapes and parameter counts of the networks, spectral norm, gradient flow, frozen features.
use fpgan::discriminator::Discriminator;
use fpgan::features::{projection_params, trunk_params, FeatureNetwork};
use fpgan::generator::{GenCfg, Generator, GeneratorConfig};
use fpgan::layers::trainable_params;
use tch::{nn, Device, Kind, Tensor};

fn g_params(cfg: GenCfg, res: i64) -> i64 {
    let vs = nn::VarStore::new(Device::Cpu);
    Generator::new(&vs.root(), &GeneratorConfig::new(cfg, res)).unwrap();
    trainable_params(&vs)
}

#[test]
fn generator_parameter_counts_match_the_reference() {
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
}
