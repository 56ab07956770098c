//! The Projected GAN discriminator (reference section 4): DiffAugment, the frozen feature network,
//! then four independent patch discriminators, one per projected feature.
use super::diffaug::diff_augment;
use super::features::{FeatureNetwork, PROJ_CHANNELS};
use super::generator::{labels_or_class0, GeneratorConfig};
use super::layers::{batch_norm, default_init, leaky_relu_02, ConvSpec, SnConv};
use super::summary;
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

/// Size of the class projection of a conditional head (the reference's cmap_dim) and of its
/// class embedding (embedding_dim).
const CMAP_DIM: i64 = 64;
const HEAD_EMBED_DIM: i64 = 128;

/// The class projection of a conditional head (the reference's SingleDiscCond): an embedding of
/// the class, a linear map to CMAP_DIM and LeakyReLU 0.2 give cmap; the logit map is
/// <cls(h), cmap> / sqrt(CMAP_DIM) per position.
#[derive(Debug)]
struct ClassProjection {
    embed: Tensor,
    proj_w: Tensor,
    proj_b: Tensor,
    name: String,
}

impl ClassProjection {
    fn new(p: &nn::Path, classes: i64) -> Self {
        let rows = GeneratorConfig::embed_rows(classes);
        let proj = p / "embed_proj" / 0;
        let init = default_init(HEAD_EMBED_DIM);
        ClassProjection {
            embed: (p / "embed").randn_standard("weight", &[rows, HEAD_EMBED_DIM]),
            proj_w: proj.var("weight", &[CMAP_DIM, HEAD_EMBED_DIM], init),
            proj_b: proj.var("bias", &[CMAP_DIM], init),
            name: summary::path_name(&(p / "embed_proj")),
        }
    }

    /// `out` (B, CMAP_DIM, H, W) projected on the classes' cmap: (B, 1, H, W).
    fn forward(&self, out: &Tensor, labels: &Tensor) -> Tensor {
        let e = Tensor::embedding(&self.embed, labels, -1, false, false);
        let cmap = leaky_relu_02(&e.linear(&self.proj_w, Some(&self.proj_b)));
        let logits = (out * cmap.unsqueeze(-1).unsqueeze(-1)).sum_dim_intlist(1, true, out.kind())
            * (1.0 / (CMAP_DIM as f64).sqrt());
        summary::record(&self.name, &logits, 0);
        logits
    }
}

/// One head: down blocks from `start_sz` to 8, then an SN conv 4x4 (valid) to one logit map;
/// conditional: to CMAP_DIM maps (`cls`) projected on the class.
#[derive(Debug)]
struct SingleDisc {
    blocks: Vec<DownBlock>,
    last: SnConv,
    class: Option<ClassProjection>,
}

impl SingleDisc {
    fn new(p: nn::Path, nc: i64, start_sz: i64, classes: i64) -> Self {
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
        if classes > 0 {
            let cls = SnConv::new(&(&p / "cls"), ConvSpec::new(ch(8), CMAP_DIM, 4));
            let class = Some(ClassProjection::new(&p, classes));
            return SingleDisc {
                blocks,
                last: cls,
                class,
            };
        }
        let last = SnConv::new(&(&m / blocks.len()), ConvSpec::new(ch(8), 1, 4));
        SingleDisc {
            blocks,
            last,
            class: None,
        }
    }

    fn forward_t(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for b in &self.blocks {
            h = b.forward_t(&h, train);
        }
        let out = self.last.forward_t(&h, train);
        match (&self.class, labels) {
            (Some(c), Some(l)) => c.forward(&out, l),
            _ => out,
        }
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
    /// The heads of an unconditional (`classes` 0) or class-conditional discriminator.
    pub fn new(p: &nn::Path, classes: i64) -> Self {
        let md = p / "discriminator" / "mini_discs";
        let heads = (0..4)
            .map(|i| SingleDisc::new(&md / i, PROJ_CHANNELS[i], HEAD_START_SIZES[i], classes))
            .collect();
        Discriminator {
            heads,
            diffaug: true,
        }
    }

    /// Logits (B, N) of the four heads on already-projected features, for classes `labels` (B,
    /// int64; a conditional D given none judges class 0, as the reference given an all-zero
    /// label vector).
    pub fn heads_t(&self, feats: &[Tensor], labels: Option<&Tensor>, train: bool) -> Tensor {
        let conditional = self.heads.iter().any(|h| h.class.is_some());
        let labels =
            conditional.then(|| labels_or_class0(labels, feats[0].size()[0], feats[0].device()));
        let labels = labels.as_ref();
        let logits: Vec<Tensor> = self
            .heads
            .iter()
            .zip(feats)
            .map(|(h, f)| h.forward_t(f, labels, train).flatten(1, -1))
            .collect();
        Tensor::cat(&logits, 1)
    }

    /// D(x): DiffAugment -> (resize to 224 for small data) -> features -> heads.
    /// Call it separately for real and fake batches so their BN statistics do not mix.
    pub fn forward_t(&self, features: &FeatureNetwork, x: &Tensor, train: bool) -> Tensor {
        self.forward_c(features, x, None, train)
    }

    /// D(x) for images of classes `labels` (see `heads_t`).
    pub fn forward_c(
        &self,
        features: &FeatureNetwork,
        x: &Tensor,
        labels: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let x = if self.diffaug {
            diff_augment(x)
        } else {
            x.shallow_clone()
        };
        self.heads_t(&features.forward(&x), labels, train)
    }
}
