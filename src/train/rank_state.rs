//! Each rank's own generator buffers in a data-parallel run (its BN running statistics, which
//! the ranks' different batches make different): gathered into rank 0's snapshot, one row per
//! rank, and given back to each rank on an exact resume with as many processes.
use super::trainer::Trainer;
use crate::util::safetensors;
use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// The snapshot's tensor of every rank's buffers: [processes, values].
pub const RANK_BUFFERS: &str = "ranks.G_buffers";

impl Trainer {
    /// The BN running statistics of G and G_ema, by name (the order of every rank's row). The
    /// other buffers, SN's power-iteration vectors, follow the weights alone: the same on
    /// every rank.
    fn own_buffers(&self) -> Vec<Tensor> {
        let mut v = safetensors::export(&self.gvs, "G.");
        v.extend(safetensors::export(&self.ema_vs, "G_ema."));
        v.into_iter()
            .filter(|(n, _)| n.ends_with(".running_mean") || n.ends_with(".running_var"))
            .map(|(_, t)| t)
            .collect()
    }

    /// Every rank's buffers, one row per rank, for rank 0's snapshot: a collective in a group
    /// of several processes (every rank calls it), None alone.
    pub fn gather_rank_buffers(&self) -> Result<Option<Tensor>> {
        let Some(group) = self.group().filter(|g| g.world > 1) else {
            return Ok(None);
        };
        let _guard = tch::no_grad_guard();
        let flat: Vec<Tensor> = self
            .own_buffers()
            .iter()
            .map(|t| t.flatten(0, -1))
            .collect();
        let own = Tensor::cat(&flat, 0).to_device(Device::Cpu);
        let mut all = Tensor::zeros(
            [group.world as i64, own.size()[0]],
            (Kind::Float, Device::Cpu),
        );
        all.get(group.rank as i64).copy_(&own);
        group.all_reduce_sum(&mut all)?;
        Ok(Some(all))
    }

    /// Take this rank's row of `rows` (a snapshot's [`RANK_BUFFERS`]) as its buffers, when the
    /// snapshot was written by as many processes as this run has; otherwise keep rank 0's.
    pub fn take_rank_buffers(&self, rows: &Tensor) {
        let (rank, world) = self.rank_world();
        let own = self.own_buffers();
        let n: i64 = own.iter().map(Tensor::numel).sum::<usize>() as i64;
        if world < 2 || rows.size() != [world as i64, n] {
            return;
        }
        let _guard = tch::no_grad_guard();
        let row = rows.get(rank as i64);
        let mut at = 0;
        for t in own {
            let k = t.numel() as i64;
            t.detach()
                .copy_(&row.narrow(0, at, k).view_as(&t).to_device(t.device()));
            at += k;
        }
    }
}
