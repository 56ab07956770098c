//! Adam as the reference runs it (torch.optim.Adam, no weight decay, no amsgrad), with its state
//! visible so that a checkpoint can save it and a resume continue exactly.
use crate::util::foreach;
use anyhow::Result;
use tch::{nn, Kind, Tensor};

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

/// Adam with its state visible (moments per slot, and the step), stepped as the reference's loop
/// does: gradients gathered into one flat tensor, reduced, non-finite entries replaced (NaN -> 0,
/// ±inf -> ±1e5), then torch.optim.Adam's multi-tensor update (util::foreach).
pub struct Adam {
    pub config: AdamConfig,
    pub slots: Vec<Slot>,
    /// Number of steps taken (bias correction uses it). One count for all parameters: torch
    /// keeps one per parameter, which is the same here since a parameter of fpgan's networks has
    /// a gradient in every step or in none.
    pub step: i64,
    /// (1 - beta2^t)^0.5 and -lr / (1 - beta1^t) for the current step t, as 0-d float tensors
    /// on the parameters' device (torch's `capturable` form: a CUDA graph of the update reads
    /// each step's values).
    bc2_sqrt: Tensor,
    step_size: Tensor,
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
        let device = vs.device();
        Adam {
            config,
            slots,
            step: 0,
            bc2_sqrt: Tensor::zeros([], (Kind::Float, device)),
            step_size: Tensor::zeros([], (Kind::Float, device)),
        }
    }

    /// The parameters, in slot order.
    pub fn params(&self) -> Vec<&Tensor> {
        self.slots.iter().map(|s| &s.param).collect()
    }

    /// Drop the gradients of every parameter (the reference's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&mut self) -> Result<()> {
        foreach::grads_to_none(&self.params())
    }

    /// Enable or disable gradients for all parameters (the reference's `requires_grad_` per phase).
    pub fn set_requires_grad(&self, on: bool) {
        for s in &self.slots {
            let _ = s.param.set_requires_grad(on);
        }
    }

    /// One Adam step on the gradients as they are (see [`Adam::step_with`]).
    pub fn step(&mut self) -> Result<()> {
        self.step_with(|_| Ok(()))
    }

    /// One Adam step as the reference's loop: [`Adam::advance`], then [`Adam::apply`].
    pub fn step_with(&mut self, reduce: impl FnOnce(&mut Tensor) -> Result<()>) -> Result<()> {
        self.advance();
        self.apply(reduce)
    }

    /// Count the next step and write its bias corrections (outside a CUDA graph of the update).
    pub fn advance(&mut self) {
        self.step += 1;
        let (c, t) = (self.config, self.step as f64);
        let _ = self.bc2_sqrt.fill_((1.0 - c.beta2.powf(t)).powf(0.5));
        let _ = self.step_size.fill_(-c.lr / (1.0 - c.beta1.powf(t)));
    }

    /// The update of the step counted by the last [`Adam::advance`]: the gradients gathered into
    /// one flat tensor (each becomes a view of it), `reduce`d (a data-parallel group's average),
    /// non-finite entries replaced, then Adam. Parameters without a gradient are skipped (unused
    /// modules at 128).
    pub fn apply(&mut self, reduce: impl FnOnce(&mut Tensor) -> Result<()>) -> Result<()> {
        let Some(mut flat) = foreach::flatten_grads(&self.params())? else {
            return Ok(());
        };
        reduce(&mut flat)?;
        let _ = flat.nan_to_num_(0.0, 1e5, -1e5);
        let live: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| s.param.grad().defined())
            .collect();
        let pick = |f: fn(&Slot) -> &Tensor| live.iter().map(|s| f(s)).collect::<Vec<_>>();
        let (p, m, v) = (
            pick(|s| &s.param),
            pick(|s| &s.exp_avg),
            pick(|s| &s.exp_avg_sq),
        );
        let c = self.config;
        let betas_eps = (c.beta1, c.beta2, c.eps);
        foreach::adam(&p, &m, &v, betas_eps, &self.bc2_sqrt, &self.step_size)
    }
}
