//! The step's phases as CUDA graphs (`--cuda-graphs`): a few eager iterations, then each phase
//! captured once on fixed input tensors and replayed; on a CPU, run as a replay would run.
use super::stats::{Captured, Stats};
use crate::fastpath::cuda_graph::{use_side_stream, CudaGraph, Pool};
use anyhow::Result;
use tch::{Device, Tensor};

/// Eager iterations before a phase is captured (cuDNN's algorithm search and libtorch's lazy
/// set-up must not happen under capture), as PyTorch's examples warm up.
pub const EAGER_ITERATIONS: usize = 3;

/// The tensors a phase reads: G's latents `z` (and classes `c`), and for the D phase the real
/// images (and their classes).
pub struct PhaseInputs {
    pub z: Tensor,
    pub c: Option<Tensor>,
    pub real: Option<Tensor>,
    pub real_c: Option<Tensor>,
}

impl PhaseInputs {
    fn parts(&self) -> impl Iterator<Item = &Tensor> {
        [
            Some(&self.z),
            self.c.as_ref(),
            self.real.as_ref(),
            self.real_c.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// Copies that a graph reads (same shapes, dtypes and memory layouts).
    fn fixed_copy(&self) -> Self {
        PhaseInputs {
            z: self.z.copy(),
            c: self.c.as_ref().map(Tensor::copy),
            real: self.real.as_ref().map(Tensor::copy),
            real_c: self.real_c.as_ref().map(Tensor::copy),
        }
    }

    /// Write `src`'s values into these tensors, in place.
    fn assign(&self, src: &PhaseInputs) {
        for (dst, s) in self.parts().zip(src.parts()) {
            dst.shallow_clone().copy_(s);
        }
    }
}

/// What runs the phases: the statistics they report into.
pub trait HasStats {
    fn stats(&mut self) -> &mut Stats;
}

/// A phase: its loss from its inputs (the reports and the Adam update are side effects).
pub type Phase<T> = fn(&mut T, &PhaseInputs) -> Result<Tensor>;

/// A captured phase: the graph, its loss tensor and its reports, which each replay rewrites.
struct Capture {
    graph: CudaGraph,
    loss: Tensor,
    reports: Captured,
}

/// One phase's fixed inputs and, after the eager iterations, its graph.
#[derive(Default)]
pub struct PhaseGraph {
    inputs: Option<PhaseInputs>,
    eager_done: usize,
    capture: Option<Capture>,
}

impl PhaseGraph {
    /// Run `phase` on `inputs` (copied into the fixed inputs): eagerly for the first
    /// [`EAGER_ITERATIONS`], then captured (with `pool`) and replayed from then on; without a
    /// pool (a CPU), run on the fixed inputs with its reports handled as a replay's.
    fn run<T: HasStats>(
        &mut self,
        t: &mut T,
        pool: Option<Pool>,
        inputs: &PhaseInputs,
        phase: Phase<T>,
    ) -> Result<Tensor> {
        let fixed = match &self.inputs {
            Some(f) => {
                f.assign(inputs);
                f
            }
            None => self.inputs.insert(inputs.fixed_copy()),
        };
        if self.eager_done < EAGER_ITERATIONS {
            self.eager_done += 1;
            return phase(t, fixed);
        }
        let Some(pool) = pool else {
            t.stats().begin_capture();
            let loss = phase(t, fixed);
            let reports = t.stats().end_capture();
            t.stats().add_captured(&reports);
            return loss;
        };
        if self.capture.is_none() {
            t.stats().begin_capture();
            let captured = CudaGraph::capture(pool, || phase(t, fixed));
            let reports = t.stats().end_capture();
            let (graph, loss) = captured?;
            self.capture = Some(Capture {
                graph,
                loss,
                reports,
            });
        }
        let c = self.capture.as_ref().expect("captured above");
        c.graph.replay()?;
        t.stats().add_captured(&c.reports);
        Ok(c.loss.copy())
    }
}

/// The G and D phases of the step, captured in graphs that share a memory pool (replayed in
/// the order they were captured: G, then D).
pub struct StepGraphs {
    pool: Option<Pool>,
    generator: PhaseGraph,
    discriminator: PhaseGraph,
}

impl StepGraphs {
    /// Graphs for `device`, whose later work in this thread moves to a side stream (a graph is
    /// not captured on the default stream); on a CPU, phases that run as replays would.
    pub fn new(device: Device) -> Result<Self> {
        let pool = match device {
            Device::Cuda(i) => {
                use_side_stream(i)?;
                Some(Pool::new()?)
            }
            _ => None,
        };
        Ok(StepGraphs {
            pool,
            generator: PhaseGraph::default(),
            discriminator: PhaseGraph::default(),
        })
    }

    /// Run `phase` as the G phase (`discriminator` false) or the D phase.
    pub fn run<T: HasStats>(
        &mut self,
        t: &mut T,
        discriminator: bool,
        inputs: &PhaseInputs,
        phase: Phase<T>,
    ) -> Result<Tensor> {
        let g = match discriminator {
            false => &mut self.generator,
            true => &mut self.discriminator,
        };
        g.run(t, self.pool, inputs, phase)
    }
}
