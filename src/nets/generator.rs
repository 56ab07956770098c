//! The FastGAN generator of Projected GAN (`fastgan`, `fastgan_lite`) and of Faster Projected GAN
//! (`faster`, `faster_lite`). Reference sections 1 and 2.
use super::layers::{batch_norm, ConditionalBatchNorm, ConvSpec, SnConv};
use super::summary;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// The image sizes the generator is built for (its synthesis blocks stop at one of these).
pub const RESOLUTIONS: [u32; 4] = [128, 256, 512, 1024];

/// The four generator configurations, selected by name everywhere (CLI, files, checkpoints).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum GenCfg {
    /// Projected GAN: UpBlockBig (two 3x3 convs with noise) everywhere.
    Fastgan,
    /// Projected GAN lite: UpBlockSmall (one 3x3 conv, no noise).
    FastganLite,
    /// Faster Projected GAN: `fastgan` with depthwise-separable up-sampling convolutions.
    Faster,
    /// Faster Projected GAN on `fastgan_lite`.
    FasterLite,
}

impl GenCfg {
    pub const ALL: [GenCfg; 4] = [
        GenCfg::Fastgan,
        GenCfg::FastganLite,
        GenCfg::Faster,
        GenCfg::FasterLite,
    ];
    pub fn lite(self) -> bool {
        matches!(self, GenCfg::FastganLite | GenCfg::FasterLite)
    }
    pub fn separable(self) -> bool {
        matches!(self, GenCfg::Faster | GenCfg::FasterLite)
    }
    pub fn name(self) -> &'static str {
        match self {
            GenCfg::Fastgan => "fastgan",
            GenCfg::FastganLite => "fastgan_lite",
            GenCfg::Faster => "faster",
            GenCfg::FasterLite => "faster_lite",
        }
    }
}

impl std::fmt::Display for GenCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeneratorConfig {
    pub cfg: GenCfg,
    /// Output side: 128, 256, 512 or 1024.
    pub resolution: i64,
    /// Width multiplier (reference 128).
    pub ngf: i64,
    /// Latent size (reference 256).
    pub z_dim: i64,
    /// Number of classes of a class-conditional generator; 0: unconditional.
    #[serde(default)]
    pub classes: i64,
}

impl GeneratorConfig {
    /// The reference configuration (ngf 128, z 256) at `resolution`.
    pub fn new(cfg: GenCfg, resolution: i64) -> Self {
        GeneratorConfig {
            cfg,
            resolution,
            ngf: 128,
            z_dim: 256,
            classes: 0,
        }
    }

    /// Rows of the class embeddings (G's and the D heads'): the reference's 1000, or more for
    /// more classes (where the reference's index would be out of range).
    pub fn embed_rows(classes: i64) -> i64 {
        classes.max(1000)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !RESOLUTIONS.contains(&(self.resolution as u32)) {
            anyhow::bail!(
                "--res {}: generator resolution not supported; use 128, 256, 512 or 1024",
                self.resolution
            );
        }
        if !(0..=100_000).contains(&self.classes) {
            anyhow::bail!(
                "{} classes (--classes, or the labels of a dataset with --cond): use 0 (unconditional) to 100000",
                self.classes
            );
        }
        if !(8..=1024).contains(&self.ngf) || self.ngf % 8 != 0 {
            anyhow::bail!(
                "--ngf {} must be a multiple of 8 from 8 to 1024 (reference 128)",
                self.ngf
            );
        }
        if !(1..=4096).contains(&self.z_dim) {
            anyhow::bail!(
                "--z-dim {} must be from 1 to 4096 (reference 256)",
                self.z_dim
            );
        }
        Ok(())
    }

    /// Channels at spatial size `r`: nfc[r] = mult[r] * ngf.
    pub fn nfc(&self, r: i64) -> i64 {
        let mult = match r {
            2 | 4 => 16.0,
            8 => 8.0,
            16 => 4.0,
            32 | 64 => 2.0,
            128 => 1.0,
            256 => 0.5,
            512 => 0.25,
            1024 => 0.125,
            _ => panic!("no channel count for size {r}"),
        };
        (mult * self.ngf as f64) as i64
    }
}

/// A 3x3 convolution of an up-sampling block: plain, or depthwise-separable (Faster).
#[derive(Debug)]
enum Conv3x3 {
    Full(SnConv),
    Separable {
        depthwise: SnConv,
        pointwise: SnConv,
    },
}

impl Conv3x3 {
    fn new(p: nn::Path, cin: i64, cout: i64, separable: bool) -> Self {
        if separable {
            Conv3x3::Separable {
                depthwise: SnConv::new(
                    &(&p / "depthwise"),
                    ConvSpec::new(cin, cin, 3).pad(1).groups(cin),
                ),
                pointwise: SnConv::new(&(&p / "pointwise"), ConvSpec::new(cin, cout, 1)),
            }
        } else {
            Conv3x3::Full(SnConv::new(&p, ConvSpec::new(cin, cout, 3).pad(1)))
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Conv3x3::Full(c) => c.forward_t(x, train),
            Conv3x3::Separable {
                depthwise,
                pointwise,
            } => pointwise.forward_t(&depthwise.forward_t(x, train), train),
        }
    }
}

/// feat + w * n, with one learnable scalar w (init 0) and fresh N(0,1) noise of shape (B,1,H,W)
/// on every forward (also in eval mode, as the reference).
#[derive(Debug)]
struct NoiseInjection {
    weight: Tensor,
}

impl NoiseInjection {
    fn new(p: nn::Path) -> Self {
        NoiseInjection {
            weight: p.zeros("weight", &[1]),
        }
    }
    /// The same injection (one weight) used at a second place.
    fn shared(&self) -> Self {
        NoiseInjection {
            weight: self.weight.shallow_clone(),
        }
    }
    /// The noise is shaped from `x` itself (randn_like of its first channel: the same draws as
    /// randn((B,1,H,W)), in NCHW and channels_last alike), so that a traced G takes any batch.
    fn forward(&self, x: &Tensor) -> Tensor {
        x + &self.weight * x.narrow(1, 0, 1).randn_like()
    }
}

/// The class labels (B, int64) of a batch of `batch` for a conditional network: `labels`, or class
/// 0 for all (the reference's argmax of an all-zero label vector).
pub fn labels_or_class0(labels: Option<&Tensor>, batch: i64, device: tch::Device) -> Tensor {
    match labels {
        Some(l) => l.shallow_clone(),
        None => Tensor::zeros([batch], (Kind::Int64, device)),
    }
}

/// The batch norm of an up-sampling stage: plain, or class-conditional (gain and bias from the
/// class embedding).
#[derive(Debug)]
enum Norm {
    Plain(nn::BatchNorm),
    Cond(ConditionalBatchNorm),
}

/// Up-sampling block. Big: up x2, conv, noise, BN, GLU, conv, noise, BN, GLU (state-dict
/// indices 1,2,3 and 5,6,7). Small (lite): up x2, conv, BN, GLU (indices 1 and 2).
/// Class-conditional (the reference's UpBlockBigCond / UpBlockSmallCond): the same with
/// conditional BN, named conv1, noise, bn1, conv2, bn2 (big: one noise weight for both stages)
/// or conv, bn (small).
#[derive(Debug)]
struct UpBlock {
    stages: Vec<(Conv3x3, Option<NoiseInjection>, Norm)>,
    name: String,
}

impl UpBlock {
    fn new(p: nn::Path, cin: i64, cout: i64, c: &GeneratorConfig) -> Self {
        let sep = c.cfg.separable();
        let conv = |name: &str, cin: i64| Conv3x3::new(&p / name, cin, 2 * cout, sep);
        let bn = |name: &str| Norm::Plain(batch_norm(&(&p / name), 2 * cout, 1e-5));
        let cbn =
            |name: &str| Norm::Cond(ConditionalBatchNorm::new(&(&p / name), 2 * cout, c.z_dim));
        let stages = match (c.cfg.lite(), c.classes > 0) {
            (true, false) => vec![(conv("1", cin), None, bn("2"))],
            (false, false) => vec![
                (conv("1", cin), Some(NoiseInjection::new(&p / 2)), bn("3")),
                (conv("5", cout), Some(NoiseInjection::new(&p / 6)), bn("7")),
            ],
            (true, true) => vec![(conv("conv", cin), None, cbn("bn"))],
            (false, true) => {
                let conv1 = conv("conv1", cin);
                let conv2 = conv("conv2", cout);
                let (bn1, bn2) = (cbn("bn1"), cbn("bn2"));
                let noise = NoiseInjection::new(&p / "noise");
                vec![
                    (conv1, Some(noise.shared()), bn1),
                    (conv2, Some(noise), bn2),
                ]
            }
        };
        UpBlock {
            stages,
            name: summary::path_name(&p),
        }
    }

    /// `y`: the class embeddings (B, z_dim) of a conditional block.
    fn forward_t(&self, x: &Tensor, y: Option<&Tensor>, train: bool) -> Tensor {
        let (_, _, h, w) = x.size4().expect("NCHW feature map");
        let mut x = x.upsample_nearest2d([2 * h, 2 * w], Some(2.0), Some(2.0));
        for (conv, noise, bn) in &self.stages {
            x = conv.forward_t(&x, train);
            if let Some(n) = noise {
                x = n.forward(&x);
            }
            x = match (bn, y) {
                (Norm::Plain(bn), _) => bn.forward_t(&x, train),
                (Norm::Cond(bn), Some(y)) => bn.forward_t(&x, y, train),
                (Norm::Cond(_), None) => unreachable!("a conditional block needs the embedding"),
            }
            .glu(1);
        }
        summary::record(&self.name, &x, 0);
        x
    }
}

/// Skip-layer excitation: big * sigmoid(conv1x1(swish(conv4x4(avgpool4(small))))).
#[derive(Debug)]
struct SeBlock {
    conv4: SnConv,
    conv1: SnConv,
    name: String,
}

impl SeBlock {
    fn new(p: nn::Path, cin: i64, cout: i64) -> Self {
        let m = &p / "main";
        SeBlock {
            conv4: SnConv::new(&(&m / 1), ConvSpec::new(cin, cout, 4)),
            conv1: SnConv::new(&(&m / 3), ConvSpec::new(cout, cout, 1)),
            name: summary::path_name(&p),
        }
    }

    fn forward_t(&self, small: &Tensor, big: &Tensor, train: bool) -> Tensor {
        let s = self.conv4.forward_t(&pool_to_4x4(small), train);
        let s = &s * s.sigmoid();
        let out = big * self.conv1.forward_t(&s, train).sigmoid();
        summary::record(&self.name, &out, 0);
        out
    }
}

/// The reference's AdaptiveAvgPool2d(4) of a (B, C, 4k, 4k) map, as a k x k average pool:
/// the same means, and a backward pass without atomic adds, so that a CUDA step gives the same
/// bits every time (adaptive pooling's CUDA backward accumulates in arbitrary order).
fn pool_to_4x4(x: &Tensor) -> Tensor {
    let (_, _, h, w) = x.size4().expect("NCHW feature map");
    debug_assert!(h % 4 == 0 && w % 4 == 0, "SE input {h}x{w} is not 4k x 4k");
    let k = [h / 4, w / 4];
    x.avg_pool2d(k, k, [0, 0], false, true, None::<i64>)
}

/// z (B, z_dim) -> ConvTranspose 4x4 (SN, dim=1) -> BN -> GLU -> (B, nfc[4], 4, 4).
#[derive(Debug)]
struct InitLayer {
    conv: SnConv,
    bn: nn::BatchNorm,
    name: String,
}

impl InitLayer {
    fn new(p: nn::Path, nz: i64, channel: i64) -> Self {
        let m = &p / "init";
        InitLayer {
            conv: SnConv::new(&(&m / 0), ConvSpec::new(nz, 2 * channel, 4).transposed()),
            bn: batch_norm(&(&m / 1), 2 * channel, 1e-5),
            name: summary::path_name(&p),
        }
    }

    fn forward_t(&self, z: &Tensor, train: bool) -> Tensor {
        let x = z.unsqueeze(-1).unsqueeze(-1);
        let out = self
            .bn
            .forward_t(&self.conv.forward_t(&x, train), train)
            .glu(1);
        summary::record(&self.name, &out, 0);
        out
    }
}

/// The generator: z -> image (B, 3, R, R), unbounded (no tanh). In the Faster variants the
/// up-sampling blocks use depthwise-separable 3x3 convolutions (depthwise 3x3 + pointwise 1x1,
/// each spectrally normalised). Variable names follow the official state dict
/// (`synthesis.feat_8.1.weight_orig`, ...).
#[derive(Debug)]
pub struct Generator {
    pub config: GeneratorConfig,
    init: InitLayer,
    feat_8: UpBlock,
    feat_16: UpBlock,
    feat_32: UpBlock,
    feat_64: UpBlock,
    feat_128: UpBlock,
    feat_256: UpBlock,
    se_64: SeBlock,
    se_128: SeBlock,
    se_256: SeBlock,
    feat_512: Option<(UpBlock, SeBlock)>,
    feat_1024: Option<UpBlock>,
    to_big: SnConv,
    /// Class embedding (rows, z_dim) of a conditional generator (`synthesis.embed.weight`).
    embed: Option<Tensor>,
}

impl Generator {
    /// Build under `p` (the reference names live under `p/synthesis`). Modules up to 256 are
    /// always built (as the reference: at 128, feat_256 and se_256 exist but are unused).
    pub fn new(p: &nn::Path, config: &GeneratorConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let c = config;
        let s = p / "synthesis";
        let up = |r: i64| UpBlock::new(&s / format!("feat_{r}"), c.nfc(r / 2), c.nfc(r), c);
        let se = |r: i64, small: i64| SeBlock::new(&s / format!("se_{r}"), c.nfc(small), c.nfc(r));
        let res = c.resolution;
        Ok(Generator {
            config: c.clone(),
            init: InitLayer::new(&s / "init", c.z_dim, c.nfc(4)),
            feat_8: up(8),
            feat_16: up(16),
            feat_32: up(32),
            feat_64: up(64),
            feat_128: up(128),
            feat_256: up(256),
            se_64: se(64, 4),
            se_128: se(128, 8),
            se_256: se(256, 16),
            feat_512: (res >= 512).then(|| (up(512), se(512, 32))),
            feat_1024: (res >= 1024).then(|| up(1024)),
            to_big: SnConv::new(
                &(&s / "to_big"),
                ConvSpec::new(c.nfc(res), 3, 3).pad(1).bias(true),
            ),
            embed: (c.classes > 0).then(|| {
                let rows = GeneratorConfig::embed_rows(c.classes);
                (&s / "embed").randn_standard("weight", &[rows, c.z_dim])
            }),
        })
    }

    /// Latents with the 2nd moment normalised per sample (ProGAN's trick, reference 1.1).
    pub fn normalize_z(z: &Tensor) -> Tensor {
        z * (z.square().mean_dim(1, true, Kind::Float) + 1e-8).rsqrt()
    }

    /// Images for latents `z` (unconditional, or class 0 of a conditional generator).
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Tensor {
        self.forward_c(z, None, train)
    }

    /// Images for latents `z` of classes `labels` (B, int64). A conditional generator given no
    /// labels makes class 0, as the reference given an all-zero label vector (its argmax).
    pub fn forward_c(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor {
        let y = self.embed.as_ref().map(|e| {
            let classes = labels_or_class0(labels, z.size()[0], z.device());
            let y = Tensor::embedding(e, &classes, -1, false, false);
            summary::record("synthesis.embed", &y, 0);
            y
        });
        let y = y.as_ref();
        let z = Self::normalize_z(z);
        let f4 = self.init.forward_t(&z, train);
        let f8 = self.feat_8.forward_t(&f4, y, train);
        let f16 = self.feat_16.forward_t(&f8, y, train);
        let f32 = self.feat_32.forward_t(&f16, y, train);
        let f64 = self
            .se_64
            .forward_t(&f4, &self.feat_64.forward_t(&f32, y, train), train);
        let mut f = self
            .se_128
            .forward_t(&f8, &self.feat_128.forward_t(&f64, y, train), train);
        if self.config.resolution >= 256 {
            f = self
                .se_256
                .forward_t(&f16, &self.feat_256.forward_t(&f, y, train), train);
        }
        if let Some((feat_512, se_512)) = &self.feat_512 {
            f = se_512.forward_t(&f32, &feat_512.forward_t(&f, y, train), train);
        }
        if let Some(feat_1024) = &self.feat_1024 {
            f = feat_1024.forward_t(&f, y, train);
        }
        self.to_big.forward_t(&f, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::ops::value_and_grad;

    #[test]
    fn a_bad_width_or_latent_size_is_named_alone() {
        let with = |ngf, z_dim| {
            let c = GeneratorConfig {
                ngf,
                z_dim,
                ..GeneratorConfig::new(GenCfg::Faster, 256)
            };
            c.validate().map_err(|e| e.to_string())
        };
        assert!(with(128, 256).is_ok());
        let e = with(0, 256).unwrap_err();
        assert!(e.contains("ngf 0") && !e.contains("z_dim"), "{e}");
        let e = with(128, 0).unwrap_err();
        assert!(e.contains("--z-dim 0") && !e.contains("ngf"), "{e}");
    }

    /// The SE blocks' pool is the reference's AdaptiveAvgPool2d(4), values and gradients, for
    /// every size it sees (4 at 64, up to 32 at 1024).
    #[test]
    fn pool_to_4x4_is_adaptive_avg_pool() {
        tch::manual_seed(5);
        for s in [4, 8, 16, 32] {
            let x = Tensor::randn([2, 3, s, s], (Kind::Float, tch::Device::Cpu));
            let up = Tensor::randn([2, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
            let (y0, g0) = value_and_grad(&x, &up, |x| x.adaptive_avg_pool2d([4, 4]));
            let (y1, g1) = value_and_grad(&x, &up, pool_to_4x4);
            assert!(y1.allclose(&y0, 1e-6, 1e-7, false), "{s}: values");
            assert!(g1.allclose(&g0, 1e-6, 1e-7, false), "{s}: gradients");
        }
    }
}
