//! Exponential moving average of the generator (reference 7.4): parameters averaged with the
//! reference's ramped-up decay, buffers (BN running stats, SN u/v) copied.
use crate::util::foreach;
use tch::{nn, Tensor};

/// The reference's decay: beta = 0.5^(batch / max(ema_nimg, 1e-8)),
/// ema_nimg = min(ema_kimg*1000, cur_nimg*rampup), ema_kimg = batch*10/32.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmaSchedule {
    pub ema_kimg: f64,
    /// Rampup fraction of cur_nimg (0.05), or None for no rampup.
    pub rampup: Option<f64>,
}

impl EmaSchedule {
    /// The reference schedule for a total batch `batch`.
    pub fn for_batch(batch: i64) -> Self {
        EmaSchedule {
            ema_kimg: batch as f64 * 10.0 / 32.0,
            rampup: Some(0.05),
        }
    }

    /// Decay for the update made at `cur_nimg` (before it is incremented by `batch`).
    pub fn beta(&self, cur_nimg: i64, batch: i64) -> f64 {
        let mut ema_nimg = self.ema_kimg * 1000.0;
        if let Some(r) = self.rampup {
            ema_nimg = ema_nimg.min(cur_nimg as f64 * r);
        }
        0.5f64.powf(batch as f64 / ema_nimg.max(1e-8))
    }
}

/// Pairs of (source, ema) tensors by name: trainable ones are averaged, the rest copied.
pub struct Ema {
    params: Vec<(Tensor, Tensor)>,
    buffers: Vec<(Tensor, Tensor)>,
}

impl Ema {
    /// `src` and `ema` must hold the same variable names (two builds of one generator).
    pub fn new(src: &nn::VarStore, ema: &nn::VarStore) -> anyhow::Result<Self> {
        let e = ema.variables();
        let (mut params, mut buffers) = (Vec::new(), Vec::new());
        for (name, t) in src.variables() {
            let et = e
                .get(&name)
                .ok_or_else(|| anyhow::anyhow!("EMA copy lacks variable {name}"))?
                .shallow_clone();
            if t.requires_grad() {
                params.push((t, et));
            } else {
                buffers.push((t, et));
            }
        }
        Ok(Ema { params, buffers })
    }

    /// ema = src.lerp(ema, beta) (beta*ema + (1-beta)*src, rounded as the reference's) for
    /// parameters; ema = src for buffers.
    pub fn update(&self, beta: f64) -> anyhow::Result<()> {
        let (src, ema) = halves(&self.params);
        foreach::lerp_into(&src, &ema, beta)?;
        let (src, ema) = halves(&self.buffers);
        foreach::copy(&src, &ema)
    }
}

/// The sources and the EMA copies of `pairs`.
fn halves(pairs: &[(Tensor, Tensor)]) -> (Vec<&Tensor>, Vec<&Tensor>) {
    pairs.iter().map(|(s, e)| (s, e)).unzip()
}
