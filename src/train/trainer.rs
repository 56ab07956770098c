//! The training state and one Projected GAN iteration (reference section 7); snapshots are
//! `state.rs`, the run around it `run.rs`.
use super::ema::{Ema, EmaSchedule};
use super::graphed::{HasStats, Phase, PhaseInputs, StepGraphs};
use super::loss::{discriminator_fake_loss, discriminator_real_loss, generator_loss};
use super::optim::{Adam, AdamConfig};
use super::options::TrainOptions;
use super::stats::Stats;
use crate::data::labels::{class_table, draw_classes};
use crate::dist::ProcessGroup;
use crate::fastpath;
use crate::fastpath::cuda_events::PhaseEvents;
use crate::fastpath::cuda_graph;
use crate::nets::discriminator::Discriminator;
use crate::nets::features::{frozen_feature_network, FeatureNetwork};
use crate::nets::generator::Generator;
use crate::util::images::to_uint8_grid;
use crate::util::profiler::range;
use crate::util::rng::SplitMix;
use crate::util::{early_log, home};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Counters saved in snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub cur_nimg: i64,
    /// Number of the next tick.
    pub cur_tick: i64,
    pub batch_idx: i64,
    pub best_fid: Option<f64>,
    /// Training seconds before this process (for Timing/total_sec across resumes).
    pub total_sec: f64,
    /// Where the tick under way began, in a snapshot written before that tick's end (a stop,
    /// or a `--kimg` inside a tick): the resumed run ends the tick where the uninterrupted one
    /// does. None at the end of a tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_start_nimg: Option<i64>,
}

/// Losses of one iteration (means over chunks, 0-d tensors on the training device: reading them
/// waits for the GPU, so the run loop reads them only where it shows or checks them) and, when
/// phases are timed, the wall time of the G phase, the D phase and the EMA update in seconds.
pub struct StepLosses {
    pub g: Tensor,
    pub d: Tensor,
    pub phase_sec: Option<[f64; 3]>,
}

impl StepLosses {
    /// The G and D losses as numbers (a host-device synchronisation on CUDA).
    pub fn values(&self) -> (f64, f64) {
        (self.g.double_value(&[]), self.d.double_value(&[]))
    }
}

/// The whole training state.
pub struct Trainer {
    pub opts: TrainOptions,
    pub device: Device,
    pub gvs: VarStore,
    pub g: Generator,
    pub ema_vs: VarStore,
    pub g_ema: Generator,
    pub fvs: VarStore,
    pub features: FeatureNetwork,
    pub dvs: VarStore,
    pub d: Discriminator,
    pub opt_g: Adam,
    pub opt_d: Adam,
    ema: Ema,
    pub ema_schedule: EmaSchedule,
    pub grid_z: Tensor,
    /// Classes of the grid images of a conditional model: row y shows the y-th class of the
    /// dataset, cycling (the reference's grid of reals grouped by label).
    pub grid_c: Option<Tensor>,
    /// The class of every dataset image of a conditional model: G's classes are drawn from it,
    /// as the reference draws `gen_c` from random dataset items. Uniform until a dataset sets it.
    gen_labels: Option<Tensor>,
    pub progress: Progress,
    /// The official pickle these weights came from (`fpgan import`): such a state has no Adam
    /// moments to continue exactly.
    pub imported_from: Option<String>,
    pub stats: Stats,
    /// Time the phases (Timing/Gboth, Timing/Dmain) with the wall clock: free on a CPU; on
    /// CUDA each phase then waits for the GPU, so training leaves it off there and `bench` turns
    /// it on.
    pub time_phases: bool,
    /// The data-parallel group this trainer belongs to: gradients are averaged over its ranks
    /// before every Adam step (see [`Trainer::join`]).
    group: Option<ProcessGroup>,
    /// The snapshot's [`super::rank_state::RANK_BUFFERS`] after an exact resume, until
    /// [`Trainer::join`] gives each rank its row.
    pub(super) resumed_rank_buffers: Option<Tensor>,
    /// Otherwise on CUDA: events around the phases, read at the end of a tick (the last
    /// iteration's times, as the reference reports them).
    phase_events: Option<PhaseEvents>,
    /// `--cuda-graphs`: the phases captured and replayed (see [`Trainer::use_graphs`]).
    graphs: Option<StepGraphs>,
}

impl HasStats for Trainer {
    fn stats(&mut self) -> &mut Stats {
        &mut self.stats
    }
}

/// Torch's RNG is reseeded from (seed, batch_idx) before every iteration of a run, so a run
/// resumed from any snapshot draws exactly what the uninterrupted run drew (`seed` is the run's,
/// or in a data-parallel run seed * processes + rank as the reference's, see
/// [`Trainer::reseed`]).
pub(crate) fn reseed(seed: u64, batch_idx: i64) {
    let mut m = SplitMix(seed ^ (batch_idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    tch::manual_seed((m.next_u64() >> 1) as i64);
}

/// Rows `start..start+len` of an optional tensor (a chunk's classes).
fn narrow(t: Option<&Tensor>, start: i64, len: i64) -> Option<Tensor> {
    t.map(|t| t.narrow(0, start, len))
}

impl Trainer {
    /// Fresh networks, optimizers and EMA for `opts` on `device`; applies the options' kernel
    /// settings (TF32, deterministic kernels, cuDNN's timed choice) to the whole process
    /// ([`crate::fastpath::FastPath::apply`]), for this trainer and any other after it.
    pub fn new(opts: &TrainOptions, device: Device) -> Result<Self> {
        opts.validate()?;
        if opts.fast.cuda_graphs {
            cuda_graph::check_supported(Some(device), false)?;
        }
        opts.fast.apply(device);
        tch::manual_seed(opts.seed as i64);
        let gcfg = opts.generator_config();
        let gvs = VarStore::new(device);
        let g = Generator::new(&gvs.root(), &gcfg)?;
        let mut ema_vs = VarStore::new(device);
        let g_ema = Generator::new(&ema_vs.root(), &gcfg)?;
        ema_vs.copy(&gvs).context("G_ema copy")?;
        ema_vs.freeze();
        let weights = home::weight_file(home::EFFNET_FILE)?;
        let (fvs, features) = frozen_feature_network(device, opts.resolution, opts.seed, &weights)?;
        let dvs = VarStore::new(device);
        let d = Discriminator::new(&dvs.root(), gcfg.classes);
        if opts.fast.channels_last {
            for vs in [&gvs, &ema_vs, &fvs, &dvs] {
                fastpath::vars_to_channels_last(vs);
            }
        }
        let opt_g = Adam::new(&gvs, AdamConfig::generator(opts.lr));
        let opt_d = Adam::new(&dvs, AdamConfig::discriminator(opts.lr));
        let ema = Ema::new(&gvs, &ema_vs)?;
        let (gw, gh) = opts.grid;
        let grid_z = Tensor::randn([gw * gh, gcfg.z_dim], (Kind::Float, device));
        let classes = gcfg.classes;
        let all: Vec<i64> = (0..classes).collect();
        let grid_c = (classes > 0).then(|| grid_classes(gw, gh, &all).to_device(device));
        let gen_labels = (classes > 0).then(|| Tensor::arange(classes, (Kind::Int64, device)));
        let mut t = Trainer {
            opts: opts.clone(),
            device,
            gvs,
            g,
            ema_vs,
            g_ema,
            fvs,
            features,
            dvs,
            d,
            opt_g,
            opt_d,
            ema,
            ema_schedule: EmaSchedule::for_batch(opts.batch),
            grid_z,
            grid_c,
            gen_labels,
            progress: Progress::default(),
            imported_from: None,
            stats: Stats::default(),
            time_phases: !device.is_cuda(),
            group: None,
            phase_events: match device {
                Device::Cuda(i) => PhaseEvents::new(i, &["Gboth", "Dmain"]),
                _ => None,
            },
            graphs: None,
            resumed_rank_buffers: None,
        };
        if opts.fast.cuda_graphs {
            t.use_graphs()?;
        }
        Ok(t)
    }

    /// Run the phases as `--cuda-graphs` runs them from now on: the Adam updates read their bias
    /// corrections from device tensors, and after a few eager iterations each phase is captured
    /// once and replayed. On a CPU (for the tests) the phases run eagerly on fixed inputs with
    /// their statistics handled as a replay's: everything but the graph itself.
    pub fn use_graphs(&mut self) -> Result<()> {
        // any device: on a CPU the tests run the phases as replays would
        cuda_graph::check_supported(None, self.group.is_some())?;
        self.graphs = Some(StepGraphs::new(self.device)?);
        self.opt_g.make_capturable();
        self.opt_d.make_capturable();
        Ok(())
    }

    /// Draw G's classes from the labels of a dataset's images, and show its classes in the grid
    /// (a conditional model only; every label must be one of its classes).
    pub fn set_label_distribution(&mut self, labels: &[i64]) -> Result<()> {
        let classes = self.g.config.classes;
        if classes == 0 {
            bail!("set_label_distribution: this model is unconditional");
        }
        self.gen_labels = Some(class_table(labels, classes, self.device)?);
        let present: Vec<i64> = labels
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let (cols, rows) = self.opts.grid;
        self.grid_c = Some(grid_classes(cols, rows, &present).to_device(self.device));
        Ok(())
    }

    /// Train data-parallel in `group`, as the reference with several GPUs: rank 0's parameters
    /// and buffers (G, G_ema, D heads, projections), Adam moments and steps, and progress
    /// counters are copied to every rank now (after the start or the resume: a rank that
    /// resumed from another snapshot than rank 0 goes on from rank 0's), and each phase
    /// averages its gradients over the ranks before the step. After an exact resume from a
    /// snapshot of as many processes, each rank then takes back its own G/G_ema buffers.
    pub fn join(&mut self, group: ProcessGroup) -> Result<()> {
        if self.graphs.is_some() {
            cuda_graph::check_supported(None, true)?; // a group makes the run data-parallel
        }
        let mut vars: Vec<(String, Tensor)> = Vec::new();
        for (prefix, vs) in [
            ("G.", &self.gvs),
            ("G_ema.", &self.ema_vs),
            ("D.", &self.dvs),
        ] {
            vars.extend(
                vs.variables()
                    .into_iter()
                    .map(|(n, t)| (format!("{prefix}{n}"), t)),
            );
        }
        vars.extend(
            self.fvs
                .variables()
                .into_iter()
                .filter(|(n, _)| n.starts_with("scratch.")),
        );
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut state: Vec<&Tensor> = vars.iter().map(|(_, t)| t).collect();
        for opt in [&self.opt_g, &self.opt_d] {
            state.extend(opt.slots.iter().flat_map(|s| [&s.exp_avg, &s.exp_avg_sq]));
        }
        group.broadcast_from_rank0(&state)?;
        self.take_counters_of_rank0(&group)?;
        self.group = Some(group);
        if let Some(rows) = self.resumed_rank_buffers.take() {
            self.take_rank_buffers(&rows);
        }
        Ok(())
    }

    /// Rank 0's image, tick and batch counts, Adam steps and tick start, on every rank (they
    /// decide when the ranks meet in collectives, and the EMA and Adam updates).
    fn take_counters_of_rank0(&mut self, group: &ProcessGroup) -> Result<()> {
        let p = &mut self.progress;
        let mine = [
            p.cur_nimg,
            p.cur_tick,
            p.batch_idx,
            self.opt_g.step,
            self.opt_d.step,
            p.tick_start_nimg.unwrap_or(-1),
        ];
        // as doubles: exact for counts below 2^53
        let t = Tensor::from_slice(&mine.map(|v| v as f64));
        group.broadcast_from_rank0(&[&t])?;
        let r0: Vec<f64> = Vec::try_from(&t)?;
        let n = |i: usize| r0[i] as i64;
        (p.cur_nimg, p.cur_tick, p.batch_idx) = (n(0), n(1), n(2));
        (self.opt_g.step, self.opt_d.step) = (n(3), n(4));
        p.tick_start_nimg = Some(n(5)).filter(|&s| s >= 0);
        Ok(())
    }

    /// Reseed torch's RNG for the current batch: from the run's seed, or for rank r of a group
    /// of n from seed * n + r (each rank draws its own latents, as the reference's).
    pub fn reseed(&self) {
        let (rank, world) = self.rank_world();
        reseed(
            self.opts.seed * world as u64 + rank as u64,
            self.progress.batch_idx,
        );
    }

    /// Whether `flag` holds on any rank of the group (a collective: every rank must ask).
    pub fn any_rank(&self, flag: bool) -> Result<bool> {
        Ok(self.any_ranks([flag])?[0])
    }

    /// For each of `flags`, whether it holds on any rank of the group (one collective).
    pub fn any_ranks<const N: usize>(&self, flags: [bool; N]) -> Result<[bool; N]> {
        let Some(g) = &self.group else {
            return Ok(flags);
        };
        let mut t = Tensor::from_slice(&flags.map(|f| f as i32 as f32));
        g.all_reduce_sum(&mut t)?;
        let sums: Vec<f32> = Vec::try_from(&t)?;
        Ok(std::array::from_fn(|i| sums[i] > 0.0))
    }

    /// Sum the tick's pending statistics over the ranks, when every rank has the same names
    /// (otherwise each keeps its own, with a warning); a collective: every rank must call it.
    pub fn reduce_stats(&mut self) -> Result<()> {
        let Some(g) = &self.group else {
            return Ok(());
        };
        let names = self.stats.pending().join("\n");
        let hash = names
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        let mut h = Tensor::from_slice(&[(hash >> 8) as f64]);
        let own = h.copy();
        g.broadcast(&mut h, 0)?;
        let mut differ = Tensor::from_slice(&[(!h.equal(&own)) as i32 as f64]);
        g.all_reduce_sum(&mut differ)?;
        if differ.double_value(&[0]) > 0.0 {
            if g.rank == 0 {
                early_log::print("warning: the ranks reported different statistics this tick; stats.jsonl holds rank 0's");
            }
            return Ok(());
        }
        self.stats.reduce(|t| g.all_reduce_sum(t))
    }

    /// Wait for every rank of the group (nothing alone).
    pub fn barrier(&self) -> Result<()> {
        self.group.as_ref().map_or(Ok(()), ProcessGroup::barrier)
    }

    /// The data-parallel group, if any.
    pub fn group(&self) -> Option<&ProcessGroup> {
        self.group.as_ref()
    }

    /// The rank and world size of the data-parallel group ((0, 1) alone).
    pub fn rank_world(&self) -> (usize, usize) {
        self.group.as_ref().map_or((0, 1), |g| (g.rank, g.world))
    }

    /// The Adam update of `opt` on its gradients averaged over the group (as they are alone).
    fn adam_update(group: Option<&ProcessGroup>, opt: &mut Adam) -> Result<()> {
        opt.apply(|flat| group.map_or(Ok(()), |g| g.average(flat)))
    }

    /// `n` classes for G drawn from the label distribution (torch's RNG), or None when
    /// unconditional.
    fn draw_classes(&self, n: i64) -> Option<Tensor> {
        self.gen_labels.as_ref().map(|t| draw_classes(t, n))
    }

    /// Report the CUDA-event times of the last iteration's phases (`Timing/<phase>`, ms); waits
    /// for that iteration to finish. Nothing on a CPU or when the phases are wall-clock timed.
    pub fn report_phase_events(&mut self) {
        if self.time_phases {
            return;
        }
        if let Some(ev) = &self.phase_events {
            for (name, ms) in ev.elapsed_ms() {
                self.stats.report_scalar(&format!("Timing/{name}"), ms);
            }
        }
    }

    /// Mark the start or end of phase `i` with a CUDA event (when events time the phases).
    fn mark_phase(&mut self, i: usize, end: bool) {
        if let (false, Some(ev)) = (self.time_phases, &mut self.phase_events) {
            ev.record(i, end);
        }
    }

    fn report_scores(&mut self, kind: &str, logits: &Tensor) {
        self.stats.report(&format!("Loss/scores/{kind}"), logits);
        self.stats
            .report(&format!("Loss/signs/{kind}"), &logits.sign());
    }

    /// One iteration on a uint8 batch of `batch` real images (with their classes `labels` for
    /// a conditional model): a G phase (hinge -mean D(G(z))) then a D phase (fake, then real, in
    /// separate D calls), each summing the gradients of `batch/batch_gpu` chunks, Adam steps on
    /// non-finite-cleaned gradients, then the G EMA.
    pub fn step(&mut self, reals: &Tensor, labels: Option<&Tensor>) -> Result<StepLosses> {
        // One slice of latents per official phase (Gboth, Dmain, Dreg: the last unused, drawn so
        // that every later draw is the official one).
        let batch = self.opts.batch_per_process();
        let z_all = Tensor::randn([3 * batch, self.g.config.z_dim], (Kind::Float, self.device));
        let c_all = self.draw_classes(3 * batch);
        self.step_with(reals, labels, &z_all, c_all.as_ref())
    }

    /// [`Trainer::step`] with G's latents `z_all` (and classes `c_all`) given: 3 x the batch
    /// of this process, the first third for the G phase, the second for the D phase.
    pub fn step_with(
        &mut self,
        reals: &Tensor,
        labels: Option<&Tensor>,
        z_all: &Tensor,
        c_all: Option<&Tensor>,
    ) -> Result<StepLosses> {
        let dev = self.device;
        let (g_in, d_in) = self.phase_inputs(reals, labels, z_all, c_all)?;
        let timer = self.time_phases.then(|| PhaseTimer::new(dev));
        let lap = || timer.as_ref().map_or(0.0, PhaseTimer::lap);

        self.mark_phase(0, false);
        self.opt_g.advance();
        let g_loss = self.run_phase(false, &g_in)?;
        self.mark_phase(0, true);
        let t_g = lap();
        self.mark_phase(1, false);
        self.opt_d.advance();
        let d_loss = self.run_phase(true, &d_in)?;
        self.mark_phase(1, true);
        let t_d = lap();
        if timer.is_some() {
            self.stats.report_scalar("Timing/Gboth", t_g * 1e3);
            self.stats.report_scalar("Timing/Dmain", t_d * 1e3);
        }

        let beta = self
            .ema_schedule
            .beta(self.progress.cur_nimg, self.opts.batch);
        range(c"Gema", || self.ema.update(beta))?;
        let t_ema = lap();
        self.progress.cur_nimg += self.opts.batch;
        self.progress.batch_idx += 1;
        Ok(StepLosses {
            g: g_loss,
            d: d_loss,
            phase_sec: timer.map(|_| [t_g, t_d, t_ema]),
        })
    }

    /// The G phase's and the D phase's inputs on the device: the first and second `batch` of
    /// the latents (and classes), the reals scaled to [-1, 1] with their classes.
    fn phase_inputs(
        &self,
        reals: &Tensor,
        labels: Option<&Tensor>,
        z_all: &Tensor,
        c_all: Option<&Tensor>,
    ) -> Result<(PhaseInputs, PhaseInputs)> {
        let (batch, dev) = (self.opts.batch_per_process(), self.device);
        if z_all.size()[0] < 2 * batch {
            bail!(
                "{} latents for a batch of {batch}: at least {} needed",
                z_all.size()[0],
                2 * batch
            );
        }
        let real_c = match (self.g.config.classes, labels) {
            (0, _) => None,
            (_, Some(l)) => Some(l.to_device(dev)),
            (c, None) => bail!("a class-conditional model ({c} classes) trains on labelled images"),
        };
        if self.g.config.classes > 0 && c_all.is_none() {
            bail!("a class-conditional model draws its latents with classes");
        }
        let mut real = reals.to_device(dev).to_kind(Kind::Float) / 127.5 - 1.0;
        if self.opts.fast.channels_last {
            real = fastpath::channels_last(&real);
        }
        let z_all = z_all.to_device(dev);
        let c_all = c_all.map(|c| c.to_device(dev));
        let g_in = PhaseInputs {
            z: z_all.narrow(0, 0, batch),
            c: narrow(c_all.as_ref(), 0, batch),
            real: None,
            real_c: None,
        };
        let d_in = PhaseInputs {
            z: z_all.narrow(0, batch, batch),
            c: narrow(c_all.as_ref(), batch, batch),
            real: Some(real),
            real_c,
        };
        Ok((g_in, d_in))
    }

    /// The G phase (`discriminator` false) or the D phase on `inputs`, eagerly or through its
    /// CUDA graph (`--cuda-graphs`). The phase's Adam step must have been counted
    /// ([`Adam::advance`]).
    fn run_phase(&mut self, discriminator: bool, inputs: &PhaseInputs) -> Result<Tensor> {
        let phase: Phase<Self> = match discriminator {
            false => Self::generator_phase,
            true => Self::discriminator_phase,
        };
        let Some(mut graphs) = self.graphs.take() else {
            return phase(self, inputs);
        };
        let loss = graphs.run(self, discriminator, inputs, phase);
        self.graphs = Some(graphs);
        loss
    }

    /// The G phase on this process's latents `z` (classes `c`): D frozen, each chunk's
    /// -mean D(G(z)) back-propagated through D into G, the gradients summed over the chunks and
    /// averaged over the group, an Adam update. Returns the chunks' mean loss.
    fn generator_phase(&mut self, inputs: &PhaseInputs) -> Result<Tensor> {
        let (chunk, dev) = (self.opts.batch_gpu, self.device);
        let (z, c) = (&inputs.z, inputs.c.as_ref());
        let chunks = z.size()[0] / chunk;
        self.opt_d.set_requires_grad(false);
        self.opt_g.zero_grad()?;
        let mut sum = Tensor::zeros([], (Kind::Float, dev));
        for i in 0..chunks {
            let (z, c) = (z.narrow(0, i * chunk, chunk), narrow(c, i * chunk, chunk));
            let loss = range(c"Gmain_forward", || {
                let logits = self.d_logits(&self.g_images(&z, c.as_ref()), c.as_ref());
                self.report_scores("fake", &logits);
                generator_loss(&logits)
            });
            self.stats.report("Loss/G/loss", &loss);
            range(c"Gmain_backward", || loss.backward());
            sum += loss.detach();
        }
        range(c"Gboth_opt", || {
            Self::adam_update(self.group.as_ref(), &mut self.opt_g)
        })?;
        self.opt_d.set_requires_grad(true);
        Ok(sum / chunks as f64)
    }

    /// The D phase: per chunk, fakes from G (train mode, no graph) then the reals, each through
    /// D with its hinge loss back-propagated; the gradients summed over the chunks and averaged
    /// over the group, an Adam update. Returns the chunks' mean loss.
    fn discriminator_phase(&mut self, inputs: &PhaseInputs) -> Result<Tensor> {
        let (chunk, dev) = (self.opts.batch_gpu, self.device);
        let (z, c) = (&inputs.z, inputs.c.as_ref());
        let (real, real_c) = (
            inputs
                .real
                .as_ref()
                .context("the D phase reads real images")?,
            inputs.real_c.as_ref(),
        );
        let chunks = z.size()[0] / chunk;
        self.opt_d.zero_grad()?;
        let mut sum = Tensor::zeros([], (Kind::Float, dev));
        for i in 0..chunks {
            let at = i * chunk;
            let (z, c) = (z.narrow(0, at, chunk), narrow(c, at, chunk));
            let loss_gen = range(c"Dgen_forward", || {
                let fake = tch::no_grad(|| self.g_images(&z, c.as_ref()));
                let lf = self.d_logits(&fake, c.as_ref());
                self.report_scores("fake", &lf);
                discriminator_fake_loss(&lf)
            });
            range(c"Dgen_backward", || loss_gen.backward());
            let loss_real = range(c"Dreal_forward", || {
                let real = real.narrow(0, at, chunk);
                let lr = self.d_logits(&real, narrow(real_c, at, chunk).as_ref());
                self.report_scores("real", &lr);
                discriminator_real_loss(&lr)
            });
            range(c"Dreal_backward", || loss_real.backward());
            let total = loss_gen.detach() + loss_real.detach();
            self.stats.report("Loss/D/loss", &total);
            sum += total;
        }
        range(c"Dmain_opt", || {
            Self::adam_update(self.group.as_ref(), &mut self.opt_d)
        })?;
        Ok(sum / chunks as f64)
    }

    /// G's images for latents `z` (classes `c`) in train mode, under `--amp`.
    fn g_images(&self, z: &Tensor, c: Option<&Tensor>) -> Tensor {
        fastpath::autocast(self.opts.fast.amp, self.device, || {
            self.g.forward_c(z, c, true)
        })
    }

    /// D's logits for images `x` (classes `c`) in train mode, under `--amp`, as fp32.
    fn d_logits(&self, x: &Tensor, c: Option<&Tensor>) -> Tensor {
        fastpath::autocast(self.opts.fast.amp, self.device, || {
            self.d.forward_c(&self.features, x, c, true)
        })
        .to_kind(Kind::Float)
    }

    /// G_ema (eval mode) on the fixed grid latents (and grid classes), as uint8 images:
    /// rint((x+1)*127.5).
    pub fn fakes(&self) -> Tensor {
        let _guard = tch::no_grad_guard();
        let step = self.opts.batch_gpu;
        let cs = self.grid_c.as_ref().map(|c| c.split(step, 0));
        let parts: Vec<Tensor> = self
            .grid_z
            .split(step, 0)
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let c = cs.as_ref().map(|cs| &cs[i]);
                to_uint8_grid(&self.g_ema.forward_c(z, c, false))
            })
            .collect();
        Tensor::cat(&parts, 0)
    }
}

/// The class of each tile of a `cols` x `rows` grid: row y shows `classes[y mod len]` (the
/// reference's grid, its rows cycling through the dataset's classes in order).
pub fn grid_classes(cols: i64, rows: i64, classes: &[i64]) -> Tensor {
    let tiles: Vec<i64> = (0..rows * cols)
        .map(|i| classes[(i / cols) as usize % classes.len()])
        .collect();
    Tensor::from_slice(&tiles)
}

/// Wall time of the training phases (synchronising CUDA so that the times are real).
struct PhaseTimer {
    device: Device,
    last: std::cell::Cell<Instant>,
}

impl PhaseTimer {
    fn new(device: Device) -> Self {
        PhaseTimer {
            device,
            last: std::cell::Cell::new(Instant::now()),
        }
    }
    fn lap(&self) -> f64 {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last.get()).as_secs_f64();
        self.last.set(now);
        dt
    }
}
