//! Training batches: the reference's infinite sampler feeding a background thread that assembles
//! uint8 batches ahead of the training step.
use super::loader::ImageSet;
use crate::util::rng::SplitMix;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use tch::Tensor;

/// Reference `InfiniteSampler` (window 0.5, one replica), on fpgan's deterministic generator.
#[derive(Clone)]
pub struct InfiniteSampler {
    order: Vec<usize>,
    idx: usize,
    window: usize,
    rng: SplitMix,
}

impl InfiniteSampler {
    pub fn new(n: usize, seed: u64) -> Self {
        assert!(n > 0, "sampler over an empty dataset");
        let mut rng = SplitMix(seed);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = rng.below(i as u32 + 1) as usize;
            order.swap(i, j);
        }
        InfiniteSampler {
            window: (n as f64 * 0.5).round() as usize,
            order,
            idx: 0,
            rng,
        }
    }

    /// Skip `k` items (to continue a resumed run where it stopped).
    pub fn advance(&mut self, k: usize) {
        for _ in 0..k {
            self.next();
        }
    }
}

impl Iterator for InfiniteSampler {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let n = self.order.len();
        let i = self.idx % n;
        let item = self.order[i];
        if self.window >= 2 {
            let j = (i + n - self.rng.below(self.window as u32) as usize % n) % n;
            self.order.swap(i, j);
        }
        self.idx += 1;
        Some(item)
    }
}

/// A training batch: uint8 images (B, 3, R, R) on the CPU and, for a labelled set, their
/// classes (B, int64).
pub struct Batch {
    pub images: Tensor,
    pub labels: Option<Tensor>,
}

/// Batches of `batch` items (with their labels) from a background thread, in the
/// reference's sampler order: shuffle once, then walk cyclically with random swaps inside a
/// window of half the dataset; assembled ahead of the step, so data loading never stalls it.
pub struct BatchStream {
    rx: Receiver<Batch>,
}

impl BatchStream {
    /// Start after `skip` items of the sampler seeded with `seed`; keeps `prefetch` batches ready.
    /// Process `rank` of `world` takes the items at positions rank, rank + world, ... of the
    /// sampler's sequence (the reference's InfiniteSampler with replicas).
    pub fn start(
        set: Arc<ImageSet>,
        batch: usize,
        seed: u64,
        skip: usize,
        prefetch: usize,
        (rank, world): (usize, usize),
    ) -> Self {
        let (tx, rx) = sync_channel(prefetch.max(1));
        std::thread::Builder::new()
            .name("fpgan-data".into())
            .spawn(move || {
                let mut sampler = InfiniteSampler::new(set.len(), seed);
                sampler.advance(skip);
                let mut shard = sampler
                    .enumerate()
                    .filter(|(i, _)| i % world == rank)
                    .map(|(_, item)| item);
                loop {
                    let idx: Vec<usize> = shard.by_ref().take(batch).collect();
                    let b = Batch {
                        images: set.batch(&idx),
                        labels: set.batch_labels(&idx),
                    };
                    if tx.send(b).is_err() {
                        return; // the training loop is gone
                    }
                }
            })
            .expect("spawn data thread");
        BatchStream { rx }
    }

    /// The next batch (blocks only if the thread has fallen behind).
    pub fn next_batch(&self) -> Batch {
        self.rx.recv().expect("data thread stopped")
    }
}
