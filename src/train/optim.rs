//! Adam as the reference runs it (PyTorch 1.9 Adam, no weight decay, no amsgrad), with its state
//! visible so that a checkpoint can save it and a resume continue exactly.
use tch::{nn, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamConfig {
    /// G: lr (the reference's 2e-4), betas (0, 0.99).
    pub fn generator(lr: f64) -> Self {
        AdamConfig {
            lr,
            beta1: 0.0,
            beta2: 0.99,
            eps: 1e-8,
        }
    }
    /// D: the reference's lazy-regularisation scaling c = 16/17 applies although there is no
    /// regulariser: lr * c, betas (0, 0.99^c).
    pub fn discriminator(lr: f64) -> Self {
        let c = 16.0 / 17.0;
        AdamConfig {
            lr: lr * c,
            beta1: 0.0,
            beta2: 0.99f64.powf(c),
            eps: 1e-8,
        }
    }
}

/// One parameter with its moments.
pub struct Slot {
    pub name: String,
    pub param: Tensor,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

/// Adam with its state visible (moments per slot, and the step). Non-finite gradients are
/// replaced first, as the reference does (NaN -> 0, ±inf -> ±1e5).
pub struct Adam {
    pub config: AdamConfig,
    pub slots: Vec<Slot>,
    /// Number of steps taken (bias correction uses it).
    pub step: i64,
}

impl Adam {
    /// Optimise the trainable variables of `vs` (sorted by name, so the order is stable).
    pub fn new(vs: &nn::VarStore, config: AdamConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, param)| Slot {
                exp_avg: param.zeros_like(),
                exp_avg_sq: param.zeros_like(),
                name,
                param,
            })
            .collect();
        Adam {
            config,
            slots,
            step: 0,
        }
    }

    /// Drop the gradients of every parameter.
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Enable or disable gradients for all parameters (the reference's `requires_grad_` per phase).
    pub fn set_requires_grad(&self, on: bool) {
        for s in &self.slots {
            let _ = s.param.set_requires_grad(on);
        }
    }

    /// One Adam step. Parameters without a gradient are skipped (unused modules at 128).
    pub fn step(&mut self) {
        let c = self.config;
        self.step += 1;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - c.beta2.powi(self.step as i32)).sqrt();
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                let g = g.nan_to_num(0.0, 1e5, -1e5);
                let _ = s
                    .exp_avg
                    .g_mul_scalar_(c.beta1)
                    .g_add_(&(&g * (1.0 - c.beta1)));
                let _ = s
                    .exp_avg_sq
                    .g_mul_scalar_(c.beta2)
                    .g_add_(&(g.square() * (1.0 - c.beta2)));
                let denom = s.exp_avg_sq.sqrt() / bc2_sqrt + c.eps;
                let _ = s.param.addcdiv_(&(&s.exp_avg * (-c.lr / bc1)), &denom);
            }
        });
    }
}
