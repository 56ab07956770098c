//! The frozen feature network of Projected GAN (reference section 3): an ImageNet-pretrained
//! EfficientNet-Lite0 trunk, then random, frozen cross-channel and cross-scale projections.
use super::layers::{Conv, ConvSpec};
use crate::util::ops::bilinear_resize;
use crate::util::rng::SplitMix;
use crate::util::safetensors;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Stage table of EfficientNet-Lite0: (repeats, kernel, stride, expansion, output channels).
const STAGES: [(usize, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];
/// Flat block index that ends each of Projected GAN's four feature stages.
const STAGE_ENDS: [usize; 4] = [2, 4, 10, 15];
/// Channels of the four trunk features and of the CCM outputs.
pub const TRUNK_CHANNELS: [i64; 4] = [24, 40, 112, 320];
pub const CCM_CHANNELS: [i64; 4] = [64, 128, 256, 512];
/// Channels of the four projected features (CCM + CSM), finest first.
pub const PROJ_CHANNELS: [i64; 4] = [64, 64, 128, 256];

/// TF 'SAME' padding for one side length: total max((ceil(i/s)-1)*s + k - i, 0), extra at the end.
fn same_pad(i: i64, k: i64, s: i64) -> (i64, i64) {
    let total = (((i + s - 1) / s - 1) * s + k - i).max(0);
    (total / 2, total - total / 2)
}

/// A bias-free convolution with TF 'same' padding.
/// A conv with TF 'SAME' padding as timm builds it: stride 1 with an odd kernel pads
/// symmetrically inside the conv (static), other strides pad the input explicitly first
/// (dynamic). Both give the same forward; the backward sums in the reference's order only if the
/// padding is done the same way.
#[derive(Debug)]
struct SameConv {
    conv: Conv,
    dynamic: bool,
}

impl SameConv {
    fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, groups: i64) -> Self {
        let dynamic = !(stride == 1 && k % 2 == 1);
        let pad = if dynamic { 0 } else { k / 2 };
        let spec = ConvSpec::new(cin, cout, k)
            .stride(stride)
            .pad(pad)
            .groups(groups);
        SameConv {
            conv: Conv::new(&p, spec),
            dynamic,
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let (k, s) = (self.conv.spec.k, self.conv.spec.stride);
        let (_, _, h, w) = x.size4().expect("NCHW input");
        let (top, bottom) = same_pad(h, k, s);
        let (left, right) = same_pad(w, k, s);
        if !self.dynamic || top + bottom + left + right == 0 {
            return self.conv.forward(x);
        }
        self.conv
            .forward(&x.constant_pad_nd([left, right, top, bottom]))
    }
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    super::layers::batch_norm(&p, c, 1e-3)
}

/// Inverted-residual block (expansion 1: depthwise-separable block without the expansion).
#[derive(Debug)]
struct MbBlock {
    expand: Option<(SameConv, nn::BatchNorm)>,
    depthwise: SameConv,
    bn1: nn::BatchNorm,
    project: SameConv,
    bn2: nn::BatchNorm,
    residual: bool,
}

impl MbBlock {
    fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, expand: i64) -> Self {
        let mid = cin * expand;
        MbBlock {
            expand: (expand != 1).then(|| {
                (
                    SameConv::new(&p / "_expand_conv", cin, mid, 1, 1, 1),
                    bn(&p / "_bn0", mid),
                )
            }),
            depthwise: SameConv::new(&p / "_depthwise_conv", mid, mid, k, stride, mid),
            bn1: bn(&p / "_bn1", mid),
            project: SameConv::new(&p / "_project_conv", mid, cout, 1, 1, 1),
            bn2: bn(&p / "_bn2", cout),
            residual: stride == 1 && cin == cout,
        }
    }

    /// `train`: BN on batch statistics, updating its running ones (only at construction).
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        if let Some((conv, bn)) = &self.expand {
            h = bn.forward_t(&conv.forward(&h), train).relu6();
        }
        h = self
            .bn1
            .forward_t(&self.depthwise.forward(&h), train)
            .relu6();
        h = self.bn2.forward_t(&self.project.forward(&h), train);
        if self.residual {
            h + x
        } else {
            h
        }
    }
}

/// Cross-scale fusion: (x0 [+ x1]) -> bilinear x2 (align_corners) -> 1x1 conv.
#[derive(Debug)]
struct FusionBlock {
    out_conv: Conv,
}

impl FusionBlock {
    fn forward(&self, x0: &Tensor, x1: Option<&Tensor>) -> Tensor {
        let x = match x1 {
            Some(x1) => x0 + x1,
            None => x0.shallow_clone(),
        };
        let (_, _, h, w) = x.size4().expect("NCHW feature map");
        let up = bilinear_resize(&x, 2 * h, 2 * w, true);
        self.out_conv.forward(&up)
    }
}

/// The ImageNet-pretrained EfficientNet-Lite0 trunk (TF 'same' padding, ReLU6, BN eps 1e-3, BN
/// in eval mode after the official construction pass, see [`FeatureNetwork::load_pretrained`])
/// cut into four stages (24/40/112/320 channels), then the random, frozen
/// cross-channel (CCM) and cross-scale (CSM) mixing projections. Input in [-1, 1]; data under 224
/// is resized to 224 first.
///
/// It lives in its own VarStore, frozen after loading: `pretrained.*` uses the EfficientNet-PyTorch
/// names of the converted weights, `scratch.*` the reference's CCM/CSM names.
#[derive(Debug)]
pub struct FeatureNetwork {
    stem: SameConv,
    bn0: nn::BatchNorm,
    blocks: Vec<MbBlock>,
    ccm: Vec<Conv>,
    csm: Vec<FusionBlock>,
    /// Resize inputs to 224 first (set for data under 224).
    pub interp224: bool,
}

impl FeatureNetwork {
    /// Build the network under `p`: trunk to be filled by [`FeatureNetwork::load_pretrained`],
    /// CCM/CSM with PyTorch's default init drawn from `seed` (the same on every device).
    pub fn new(p: &nn::Path, resolution: i64, seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let t = p / "pretrained";
        let mut blocks = Vec::new();
        let mut cin = 32;
        for &(repeats, k, stride, expand, cout) in &STAGES {
            for r in 0..repeats {
                let s = if r == 0 { stride } else { 1 };
                blocks.push(MbBlock::new(
                    &t / "_blocks" / blocks.len(),
                    cin,
                    cout,
                    k,
                    s,
                    expand,
                ));
                cin = cout;
            }
        }
        let sc = p / "scratch";
        let ccm = (0..4)
            .map(|i| {
                let spec = ConvSpec::new(TRUNK_CHANNELS[i], CCM_CHANNELS[i], 1).bias(true);
                Conv::seeded(&(&sc / format!("layer{i}_ccm")), spec, &mut rng)
            })
            .collect();
        // csm3: 512->256, csm2: 256->128, csm1: 128->64, csm0: 64->64 (no expansion)
        let csm = (0..4)
            .map(|i| {
                let c = CCM_CHANNELS[i];
                let out = if i == 0 { c } else { c / 2 };
                let spec = ConvSpec::new(c, out, 1).bias(true);
                FusionBlock {
                    out_conv: Conv::seeded(
                        &(&sc / format!("layer{i}_csm") / "out_conv"),
                        spec,
                        &mut rng,
                    ),
                }
            })
            .collect();
        FeatureNetwork {
            stem: SameConv::new(&t / "_conv_stem", 3, 32, 3, 2, 1),
            bn0: bn(&t / "_bn0", 32),
            blocks,
            ccm,
            csm,
            interp224: resolution < 224,
        }
    }

    /// Copy the converted EfficientNet-Lite0 weights (safetensors, EfficientNet-PyTorch names)
    /// into the `pretrained.*` variables of `vs` (every trunk variable must be found), then make
    /// the official construction pass ([`FeatureNetwork::construction_pass`]).
    pub fn load_pretrained(&self, vs: &nn::VarStore, prefix: &str, file: &Path) -> Result<()> {
        let tensors = Tensor::read_safetensors(file)
            .with_context(|| format!("cannot read EfficientNet weights {}", file.display()))?;
        let by_name = tensors.into_iter().collect();
        let head = format!("{prefix}pretrained.");
        let key = |n: &str| n.strip_prefix(&head).map(str::to_string);
        let copied = safetensors::import_by(vs, key, &by_name, file, "re-run `make setup`")?;
        if copied == 0 {
            bail!("no variable under {head} to load the EfficientNet weights into");
        }
        self.construction_pass(vs.device());
        Ok(())
    }

    /// What the official F_RandomProj does when built: `calc_channels` runs zeros(1, 3, 224,
    /// 224) through the trunk while it is still in train mode, so every trunk BN's running
    /// mean/var moves 10% (momentum 0.1) towards that zero image's statistics, once. The
    /// official feature network (and every published result) uses these statistics.
    fn construction_pass(&self, device: tch::Device) {
        let zeros = Tensor::zeros([1, 3, 224, 224], (tch::Kind::Float, device));
        tch::no_grad(|| self.trunk_t(&zeros, true));
    }

    /// The four trunk features (24/40/112/320 channels at strides 4/8/16/32).
    pub fn trunk(&self, x: &Tensor) -> Vec<Tensor> {
        self.trunk_t(x, false)
    }

    fn trunk_t(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut h = self.bn0.forward_t(&self.stem.forward(x), train).relu6();
        let mut out = Vec::with_capacity(4);
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.forward_t(&h, train);
            if STAGE_ENDS.contains(&i) {
                out.push(h.shallow_clone());
            }
        }
        out
    }

    /// Bilinear resize to 224x224 (align_corners=False) when `interp224`, else `x` itself.
    pub fn resize_input(&self, x: &Tensor) -> Tensor {
        if self.interp224 {
            bilinear_resize(x, 224, 224, false)
        } else {
            x.shallow_clone()
        }
    }

    /// The cross-channel mixing (CCM) of the four trunk features (64/128/256/512 channels).
    pub fn ccm(&self, feats: &[Tensor]) -> Vec<Tensor> {
        self.ccm
            .iter()
            .zip(feats)
            .map(|(m, f)| m.forward(f))
            .collect()
    }

    /// The four projected features (64/64/128/256 channels at 1/2, 1/4, 1/8, 1/16 of the input).
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let c = self.ccm(&self.trunk(&self.resize_input(x)));
        let o3 = self.csm[3].forward(&c[3], None);
        let o2 = self.csm[2].forward(&o3, Some(&c[2]));
        let o1 = self.csm[1].forward(&o2, Some(&c[1]));
        let o0 = self.csm[0].forward(&o1, Some(&c[0]));
        vec![o0, o1, o2, o3]
    }
}

/// Build the feature network in its own VarStore on `device`: CCM/CSM drawn with `seed`, trunk
/// loaded from `weights`, everything frozen.
pub fn frozen_feature_network(
    device: tch::Device,
    resolution: i64,
    seed: u64,
    weights: &Path,
) -> Result<(nn::VarStore, FeatureNetwork)> {
    let mut vs = nn::VarStore::new(device);
    let net = FeatureNetwork::new(&vs.root(), resolution, seed);
    net.load_pretrained(&vs, "", weights)?;
    vs.freeze();
    Ok((vs, net))
}

/// Number of elements of the trunk (conv weights and BN affine parameters; no running stats).
pub fn trunk_params(vs: &nn::VarStore) -> i64 {
    vs.variables()
        .iter()
        .filter(|(n, _)| n.starts_with("pretrained.") && !n.contains("running_"))
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

/// Number of elements of the CCM/CSM projections.
pub fn projection_params(vs: &nn::VarStore) -> i64 {
    vs.variables()
        .iter()
        .filter(|(n, _)| n.starts_with("scratch."))
        .map(|(_, t)| t.numel() as i64)
        .sum()
}
