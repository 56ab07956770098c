//! Adam as the reference runs it (torch.optim.Adam, no weight decay, no amsgrad), with its state
//! visible so that a checkpoint can save it and a resume continue exactly.
use crate::util::foreach::{self, AdamStep};
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
    /// The bias corrections in device tensors, when the update may be captured in a CUDA graph
    /// ([`Adam::make_capturable`]).
    capturable: Option<BiasCorrections>,
}

/// (1 - beta2^t)^0.5 and -lr / (1 - beta1^t) for the current step t, as 0-d float tensors on the
/// parameters' device.
struct BiasCorrections {
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
        Adam {
            config,
            slots,
            step: 0,
            capturable: None,
        }
    }

    /// Read the bias corrections from device tensors that [`Adam::advance`] writes (torch's
    /// `capturable=True`), so that [`Adam::apply`] can be captured in a CUDA graph and replayed
    /// for later steps. On a CPU the same numbers to the bit; it makes three passes over the
    /// parameters where the default form makes one.
    pub fn make_capturable(&mut self) {
        let device = self
            .slots
            .first()
            .map_or(tch::Device::Cpu, |s| s.param.device());
        let scalar = || Tensor::zeros([], (Kind::Float, device));
        self.capturable = Some(BiasCorrections {
            bc2_sqrt: scalar(),
            step_size: scalar(),
        });
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

    /// Count the next step (and, when capturable, write its bias corrections: outside a CUDA
    /// graph of the update).
    pub fn advance(&mut self) {
        self.step += 1;
        let s = self.hyper();
        if let Some(b) = &mut self.capturable {
            let _ = b.bc2_sqrt.fill_(s.bc2_sqrt);
            let _ = b.step_size.fill_(-s.lr / s.bc1);
        }
    }

    /// The hyper-parameters and bias corrections of the current step.
    fn hyper(&self) -> AdamStep {
        let (c, t) = (self.config, self.step as f64);
        AdamStep {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            bc1: 1.0 - c.beta1.powf(t),
            bc2_sqrt: (1.0 - c.beta2.powf(t)).powf(0.5),
        }
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
        match &self.capturable {
            None => foreach::adam(&p, &m, &v, self.hyper()),
            Some(b) => {
                foreach::adam_capturable(&p, &m, &v, self.hyper(), &b.bc2_sqrt, &b.step_size)
            }
        }
    }
}
