//! The Projected GAN discriminator (reference section 4): DiffAugment, the frozen feature network,
//! then four independent patch discriminators, one per projected feature.
use super::diffaug::diff_augment;
use super::features::{FeatureNetwork, PROJ_CHANNELS};
use super::layers::{batch_norm, leaky_relu_02, ConvSpec, SnConv};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Nominal input sizes of the four heads (always computed for a 256 input, as the reference).
pub const HEAD_START_SIZES: [i64; 4] = [128, 64, 32, 16];

fn head_channels(sz: i64) -> i64 {
    match sz {
        4 | 8 => 512,
        16 => 256,
        32 => 128,
        64 | 128 => 64,
        256 => 32,
        512 => 16,
        _ => 8,
    }
}

/// SN conv 4x4 stride 2 (bias) -> BN (train-mode batch statistics) -> LeakyReLU 0.2.
#[derive(Debug)]
struct DownBlock {
    conv: SnConv,
    bn: nn::BatchNorm,
}

impl DownBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        leaky_relu_02(&self.bn.forward_t(&self.conv.forward_t(x, train), train))
    }
}

/// One head: down blocks from `start_sz` to 8, then an SN conv 4x4 (valid) to one logit map.
#[derive(Debug)]
struct SingleDisc {
    blocks: Vec<DownBlock>,
    last: SnConv,
}

impl SingleDisc {
    fn new(p: nn::Path, nc: i64, start_sz: i64) -> Self {
        let m = &p / "main";
        let ch = |sz: i64| {
            if sz == start_sz {
                nc
            } else {
                head_channels(sz)
            }
        };
        let mut blocks = Vec::new();
        let mut sz = start_sz;
        while sz > 8 {
            let k = &m / blocks.len() / "main";
            let spec = ConvSpec::new(ch(sz), ch(sz / 2), 4)
                .stride(2)
                .pad(1)
                .bias(true);
            blocks.push(DownBlock {
                conv: SnConv::new(&(&k / 0), spec),
                bn: batch_norm(&(&k / 1), ch(sz / 2), 1e-5),
            });
            sz /= 2;
        }
        let last = SnConv::new(&(&m / blocks.len()), ConvSpec::new(ch(8), 1, 4));
        SingleDisc { blocks, last }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for b in &self.blocks {
            h = b.forward_t(&h, train);
        }
        self.last.forward_t(&h, train)
    }
}

/// The four heads; the feature network is passed in (it lives, frozen, in its own VarStore).
/// Their logits are flattened and concatenated: (B, 100) at 256, (B, 676) at 512, (B, 64) for
/// data under 224. Names follow the official state dict
/// (`discriminator.mini_discs.{i}.main.{k}.main.{0,1}`).
#[derive(Debug)]
pub struct Discriminator {
    heads: Vec<SingleDisc>,
    /// DiffAugment on every call (the reference always has it on).
    pub diffaug: bool,
}

impl Discriminator {
    pub fn new(p: &nn::Path) -> Self {
        let md = p / "discriminator" / "mini_discs";
        let heads = (0..4)
            .map(|i| SingleDisc::new(&md / i, PROJ_CHANNELS[i], HEAD_START_SIZES[i]))
            .collect();
        Discriminator {
            heads,
            diffaug: true,
        }
    }

    /// Logits (B, N) of the four heads on already-projected features.
    pub fn heads_t(&self, feats: &[Tensor], train: bool) -> Tensor {
        let logits: Vec<Tensor> = self
            .heads
            .iter()
            .zip(feats)
            .map(|(h, f)| h.forward_t(f, train).flatten(1, -1))
            .collect();
        Tensor::cat(&logits, 1)
    }

    /// D(x): DiffAugment -> (resize to 224 for small data) -> features -> heads.
    /// Call it separately for real and fake batches so their BN statistics do not mix.
    pub fn forward_t(&self, features: &FeatureNetwork, x: &Tensor, train: bool) -> Tensor {
        let x = if self.diffaug {
            diff_augment(x)
        } else {
            x.shallow_clone()
        };
        self.heads_t(&features.forward(&x), train)
    }
}
