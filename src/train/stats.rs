//! Training statistics per tick, as the reference's `stats.jsonl`: each name maps to
//! `{"num", "mean", "std"}` over every scalar reported since the previous tick.
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

struct Acc {
    num: i64,
    sum: Tensor,
    sumsq: Tensor,
}

/// Per-name sums of the scalars reported since the previous tick (tensors count element-wise;
/// sums stay on the device until the tick). Names with nothing new keep their previous value.
#[derive(Default)]
pub struct Stats {
    acc: BTreeMap<String, Acc>,
    last: BTreeMap<String, Value>,
    /// While a phase is captured in a CUDA graph: its reports, kept apart (see [`Captured`]).
    capture: Option<Vec<Report>>,
}

/// One report: the name, its element count, and the sum and sum of squares of its elements.
struct Report(String, i64, Tensor, Tensor);

/// The reports made while a phase was captured in a CUDA graph: their sums are the graph's
/// outputs, which each replay overwrites, so they are added to the tick's sums after each replay
/// ([`Stats::add_captured`]).
#[derive(Default)]
pub struct Captured(Vec<Report>);

impl Stats {
    /// Add every element of `t` to `name`.
    pub fn report(&mut self, name: &str, t: &Tensor) {
        let t = t.detach().to_kind(Kind::Double);
        let (num, s, s2) = (
            t.numel() as i64,
            t.sum(Kind::Double),
            t.square().sum(Kind::Double),
        );
        match &mut self.capture {
            Some(c) => c.push(Report(name.to_string(), num, s, s2)),
            None => self.add(name, num, &s, &s2, Tensor::shallow_clone),
        }
    }

    /// Add `num` elements with sum `s` and sum of squares `s2` to `name`; a new name keeps
    /// `keep(s)` and `keep(s2)`.
    fn add(&mut self, name: &str, num: i64, s: &Tensor, s2: &Tensor, keep: fn(&Tensor) -> Tensor) {
        match self.acc.get_mut(name) {
            Some(a) => {
                a.num += num;
                a.sum += s;
                a.sumsq += s2;
            }
            None => {
                let acc = Acc {
                    num,
                    sum: keep(s),
                    sumsq: keep(s2),
                };
                self.acc.insert(name.to_string(), acc);
            }
        }
    }

    /// Keep the reports from now on apart, for [`Stats::end_capture`].
    pub fn begin_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// The reports since [`Stats::begin_capture`]; reports are added to the sums again.
    pub fn end_capture(&mut self) -> Captured {
        Captured(self.capture.take().unwrap_or_default())
    }

    /// Add the current values of captured reports (after a replay of their graph; a new name
    /// keeps copies, since the next replay overwrites them).
    pub fn add_captured(&mut self, c: &Captured) {
        for Report(name, num, s, s2) in &c.0 {
            self.add(name, *num, s, s2, Tensor::copy);
        }
    }

    /// Add one number to `name`.
    pub fn report_scalar(&mut self, name: &str, v: f64) {
        self.report(name, &Tensor::from(v));
    }

    /// The names with something reported since the previous tick, in order.
    pub fn pending(&self) -> Vec<&str> {
        self.acc.keys().map(String::as_str).collect()
    }

    /// Replace the pending sums with `reduce`'s result on them, packed as a (names, 3) float64
    /// tensor of (count, sum, sum of squares) in `pending()` order: with a sum over the ranks
    /// of a data-parallel run, the tick's statistics are those of every rank together, as the
    /// reference's.
    pub fn reduce(
        &mut self,
        reduce: impl FnOnce(&mut Tensor) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if self.acc.is_empty() {
            return Ok(());
        }
        let rows: Vec<Tensor> = self
            .acc
            .values()
            .map(|a| {
                let num = Tensor::from(a.num as f64).to_device(a.sum.device());
                Tensor::stack(&[num, a.sum.shallow_clone(), a.sumsq.shallow_clone()], 0)
            })
            .collect();
        let mut packed = Tensor::stack(&rows, 0)
            .to_device(tch::Device::Cpu)
            .contiguous();
        reduce(&mut packed)?;
        for (i, a) in self.acc.values_mut().enumerate() {
            let row = packed.get(i as i64);
            a.num = row.double_value(&[0]).round() as i64;
            a.sum = row.get(1);
            a.sumsq = row.get(2);
        }
        Ok(())
    }

    /// Close the tick: a JSON object with every name (and `timestamp`), and reset the sums.
    pub fn tick(&mut self, timestamp: f64) -> Value {
        for (name, a) in std::mem::take(&mut self.acc) {
            let n = a.num as f64;
            let mean = a.sum.double_value(&[]) / n;
            let var = (a.sumsq.double_value(&[]) / n - mean * mean).max(0.0);
            self.last
                .insert(name, json!({"num": a.num, "mean": mean, "std": var.sqrt()}));
        }
        let mut m: Map<String, Value> = self.last.clone().into_iter().collect();
        m.insert("timestamp".into(), json!(timestamp));
        Value::Object(m)
    }
}
