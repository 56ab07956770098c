//! Building blocks shared by the networks: spectrally normalised convolutions with the reference's
//! semantics, batch norm with PyTorch defaults, GLU, and PyTorch default init.
use super::summary;
use crate::util::rng::SplitMix;
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// U(-1/sqrt(fan_in), +1/sqrt(fan_in)): PyTorch's default for conv weights (kaiming-uniform with
/// a = sqrt(5)) and biases.
pub fn default_init(fan_in: i64) -> Init {
    let b = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

/// Shape of a 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub cin: i64,
    pub cout: i64,
    pub k: i64,
    pub stride: i64,
    pub pad: i64,
    pub groups: i64,
    pub bias: bool,
    /// ConvTranspose2d (weight is (cin, cout/groups, k, k)).
    pub transposed: bool,
}

impl ConvSpec {
    pub fn new(cin: i64, cout: i64, k: i64) -> Self {
        ConvSpec {
            cin,
            cout,
            k,
            stride: 1,
            pad: 0,
            groups: 1,
            bias: false,
            transposed: false,
        }
    }
    pub fn stride(self, stride: i64) -> Self {
        ConvSpec { stride, ..self }
    }
    pub fn pad(self, pad: i64) -> Self {
        ConvSpec { pad, ..self }
    }
    pub fn groups(self, groups: i64) -> Self {
        ConvSpec { groups, ..self }
    }
    pub fn bias(self, bias: bool) -> Self {
        ConvSpec { bias, ..self }
    }
    pub fn transposed(self) -> Self {
        ConvSpec {
            transposed: true,
            ..self
        }
    }

    fn weight_dims(&self) -> [i64; 4] {
        if self.transposed {
            [self.cin, self.cout / self.groups, self.k, self.k]
        } else {
            [self.cout, self.cin / self.groups, self.k, self.k]
        }
    }

    /// PyTorch's fan_in: weight dim 1 times the kernel area (so C_out/groups for transposed).
    fn fan_in(&self) -> i64 {
        self.weight_dims()[1] * self.k * self.k
    }

    /// Run the convolution with an explicit weight.
    fn apply(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        let (s, p) = ([self.stride; 2], [self.pad; 2]);
        if self.transposed {
            x.conv_transpose2d(w, b, s, p, [0, 0], self.groups, [1, 1])
        } else {
            x.conv2d(w, b, s, p, [1, 1], self.groups)
        }
    }

    /// Multiply-accumulates for an output of `out_hw` pixels per image.
    fn macs(&self, x: &Tensor, y: &Tensor) -> i64 {
        let per = self.cin / self.groups * self.cout * self.k * self.k;
        if self.transposed {
            per * x.size()[2] * x.size()[3]
        } else {
            per * y.size()[2] * y.size()[3]
        }
    }
}

/// A plain convolution (no normalisation), PyTorch default init.
#[derive(Debug)]
pub struct Conv {
    pub spec: ConvSpec,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    name: String,
}

impl Conv {
    pub fn new(p: &nn::Path, spec: ConvSpec) -> Self {
        let init = default_init(spec.fan_in());
        let weight = p.var("weight", &spec.weight_dims(), init);
        let bias = spec.bias.then(|| p.var("bias", &[spec.cout], init));
        Conv {
            spec,
            weight,
            bias,
            name: summary::path_name(p),
        }
    }

    /// Like `new`, with the default-init values drawn from `rng` instead of torch's global RNG
    /// (thread- and device-independent; used for the seeded random projections).
    pub fn seeded(p: &nn::Path, spec: ConvSpec, rng: &mut SplitMix) -> Self {
        let b = 1.0 / (spec.fan_in() as f64).sqrt();
        let dev = p.device();
        let weight = p.var_copy(
            "weight",
            &rng.uniform_tensor(&spec.weight_dims(), -b, b, dev),
        );
        let bias = spec
            .bias
            .then(|| p.var_copy("bias", &rng.uniform_tensor(&[spec.cout], -b, b, dev)));
        Conv {
            spec,
            weight,
            bias,
            name: summary::path_name(p),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.spec.apply(x, &self.weight, self.bias.as_ref());
        summary::record(&self.name, &y, self.spec.macs(x, &y));
        y
    }
}

/// A spectrally normalised convolution: parameter `weight_orig`, buffers `weight_u`/`weight_v`.
/// The matrix is the weight reshaped to (rows, -1) with rows = C_out (dim 0, or dim 1 for
/// transposed convolutions). Semantics of PyTorch's hook `spectral_norm`: one power iteration
/// per train-mode forward with persistent u/v, none in eval.
#[derive(Debug)]
pub struct SnConv {
    pub spec: ConvSpec,
    pub weight_orig: Tensor,
    pub bias: Option<Tensor>,
    pub u: Tensor,
    pub v: Tensor,
    name: String,
}

const SN_EPS: f64 = 1e-12;

fn l2_normalize(x: &Tensor) -> Tensor {
    x / x.norm().clamp_min(SN_EPS)
}

/// The power-iteration vectors u (rows) and v (cols) of a spectrally normalised weight, as torch
/// draws them: normalised N(0, 1), buffers `weight_u`, `weight_v`.
fn sn_vectors(p: &nn::Path, rows: i64, cols: i64) -> (Tensor, Tensor) {
    let opts = (Kind::Float, p.device());
    let draw = |name: &str, n: i64| p.add(name, l2_normalize(&Tensor::randn([n], opts)), false);
    (draw("weight_u", rows), draw("weight_v", cols))
}

/// sigma of the (rows, cols) matrix `w` as torch's `spectral_norm` hook computes it: in train mode
/// one power iteration first updates u and v (persistent, without gradient).
fn spectral_norm(w: &Tensor, u: &Tensor, v: &Tensor, train: bool) -> Tensor {
    if train {
        tch::no_grad(|| {
            let wd = w.detach();
            let nv = l2_normalize(&wd.tr().mv(u));
            let nu = l2_normalize(&wd.mv(&nv));
            v.shallow_clone().copy_(&nv);
            u.shallow_clone().copy_(&nu);
        });
    }
    u.detach().dot(&w.mv(&v.detach()))
}

impl SnConv {
    pub fn new(p: &nn::Path, spec: ConvSpec) -> Self {
        let init = default_init(spec.fan_in());
        let weight_orig = p.var("weight_orig", &spec.weight_dims(), init);
        let bias = spec.bias.then(|| p.var("bias", &[spec.cout], init));
        let rows = spec.cout;
        let (u, v) = sn_vectors(p, rows, weight_orig.numel() as i64 / rows);
        SnConv {
            spec,
            weight_orig,
            bias,
            u,
            v,
            name: summary::path_name(p),
        }
    }

    /// The weight as a (rows, cols) matrix.
    fn matrix(&self) -> Tensor {
        let w = if self.spec.transposed {
            self.weight_orig.transpose(0, 1)
        } else {
            self.weight_orig.shallow_clone()
        };
        w.reshape([self.spec.cout, -1])
    }

    /// weight_orig / sigma. In train mode one power iteration updates u and v first.
    pub fn weight(&self, train: bool) -> Tensor {
        &self.weight_orig / spectral_norm(&self.matrix(), &self.u, &self.v, train)
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.spec.apply(x, &self.weight(train), self.bias.as_ref());
        summary::record(&self.name, &y, self.spec.macs(x, &y));
        y
    }
}

/// A spectrally normalised nn.Linear(cin, cout) with bias (the reference's `linear`): parameter
/// `weight_orig` (cout, cin), `bias`, buffers `weight_u`, `weight_v`.
#[derive(Debug)]
pub struct SnLinear {
    pub weight_orig: Tensor,
    pub bias: Tensor,
    u: Tensor,
    v: Tensor,
}

impl SnLinear {
    pub fn new(p: &nn::Path, cin: i64, cout: i64) -> Self {
        let init = default_init(cin);
        let weight_orig = p.var("weight_orig", &[cout, cin], init);
        let bias = p.var("bias", &[cout], init);
        let (u, v) = sn_vectors(p, cout, cin);
        SnLinear {
            weight_orig,
            bias,
            u,
            v,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let w = &self.weight_orig / spectral_norm(&self.weight_orig, &self.u, &self.v, train);
        x.linear(&w, Some(&self.bias))
    }
}

/// Class-conditional batch norm (the reference's CCBN): batch norm without affine parameters
/// over buffers `stored_mean`/`stored_var` (momentum 0.1), then a per-sample gain 1 + gain(y) and
/// bias bias(y), both spectrally normalised linear maps of the class embedding y.
#[derive(Debug)]
pub struct ConditionalBatchNorm {
    gain: SnLinear,
    bias: SnLinear,
    mean: Tensor,
    var: Tensor,
}

impl ConditionalBatchNorm {
    pub fn new(p: &nn::Path, channels: i64, embed_dim: i64) -> Self {
        ConditionalBatchNorm {
            gain: SnLinear::new(&(p / "gain"), embed_dim, channels),
            bias: SnLinear::new(&(p / "bias"), embed_dim, channels),
            mean: p.zeros_no_train("stored_mean", &[channels]),
            var: p.ones_no_train("stored_var", &[channels]),
        }
    }

    pub fn forward_t(&self, x: &Tensor, y: &Tensor, train: bool) -> Tensor {
        let gain = (self.gain.forward_t(y, train) + 1.0)
            .unsqueeze(-1)
            .unsqueeze(-1);
        let bias = self.bias.forward_t(y, train).unsqueeze(-1).unsqueeze(-1);
        let out = x.batch_norm(
            None::<&Tensor>,
            None::<&Tensor>,
            Some(&self.mean),
            Some(&self.var),
            train,
            0.1,
            1e-5,
            false,
        );
        out * gain + bias
    }
}

/// BatchNorm2d with PyTorch defaults (gamma 1, beta 0, momentum 0.1) and the given eps.
pub fn batch_norm(p: &nn::Path, c: i64, eps: f64) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        c,
        nn::BatchNormConfig {
            eps,
            momentum: 0.1,
            ws_init: Init::Const(1.0),
            bs_init: Init::Const(0.0),
            ..Default::default()
        },
    )
}

/// LeakyReLU with slope 0.2, the reference's `nn.LeakyReLU(0.2)` (tch's `leaky_relu` is fixed at
/// 0.01).
pub fn leaky_relu_02(x: &Tensor) -> Tensor {
    crate::util::ops::leaky_relu(x, 0.2)
}

/// Number of elements of the trainable variables of `vs`.
pub fn trainable_params(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .filter(|t| t.requires_grad())
        .map(|t| t.numel() as i64)
        .sum()
}
