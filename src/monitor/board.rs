//! A run's TensorBoard log: every stats.jsonl scalar at each tick, every metric when evaluated,
//! and a small sample grid at each snapshot, at the official step (whole kimg).
use super::tfevents::EventWriter;
use crate::util::clock::unix_time;
use crate::util::images::{grid_image, png_bytes};
use anyhow::Result;
use std::path::Path;
use tch::{Kind, Tensor};

/// Images of the sample grid written to TensorBoard, in columns, and their largest side.
const GRID_IMAGES: i64 = 32;
const GRID_COLS: usize = 8;
const GRID_SIDE: i64 = 128;

/// The official global step: int(cur_nimg / 1e3).
pub fn step(cur_nimg: i64) -> i64 {
    cur_nimg / 1000
}

pub struct Board {
    events: EventWriter,
}

impl Board {
    /// A new event file in `run_dir`; a resumed run (`resumed_nimg`) first tells TensorBoard to
    /// drop what a dead predecessor wrote after the snapshot.
    pub fn open(run_dir: &Path, resumed_nimg: Option<i64>) -> Result<Self> {
        let mut events = EventWriter::create(run_dir)?;
        if let Some(nimg) = resumed_nimg {
            events.restart(step(nimg) + 1)?;
        }
        Ok(Board { events })
    }

    /// The `mean` of every entry of a stats.jsonl line (`timestamp` is the wall time).
    pub fn stats(&mut self, line: &serde_json::Value, cur_nimg: i64) -> Result<()> {
        let Some(map) = line.as_object() else {
            return Ok(());
        };
        let wall = line["timestamp"].as_f64().unwrap_or_else(unix_time);
        for (name, v) in map {
            if let Some(mean) = v["mean"].as_f64() {
                self.events.scalar(name, step(cur_nimg), wall, mean)?;
            }
        }
        Ok(())
    }

    /// `Metrics/<name>`, as the official loop names them.
    pub fn metric(&mut self, name: &str, value: f64, cur_nimg: i64) -> Result<()> {
        self.events.scalar(
            &format!("Metrics/{name}"),
            step(cur_nimg),
            unix_time(),
            value,
        )
    }

    /// The first images of a sample grid (uint8 N x 3 x R x R), at most 128 pixels a side
    /// (area average), as the image `fakes`.
    pub fn fakes(&mut self, images: &Tensor, cur_nimg: i64) -> Result<()> {
        let n = images.size()[0].min(GRID_IMAGES);
        let mut x = images.narrow(0, 0, n).to_device(tch::Device::Cpu);
        let r = x.size()[2];
        if r > GRID_SIDE {
            let k = r / GRID_SIDE;
            x = x
                .to_kind(Kind::Float)
                .avg_pool2d([k, k], [k, k], [0, 0], false, true, None::<i64>)
                .round()
                .to_kind(Kind::Uint8);
        }
        let img = grid_image(&x, GRID_COLS.min(n as usize))?;
        let (w, h) = img.dimensions();
        self.events
            .png("fakes", step(cur_nimg), unix_time(), png_bytes(&img)?, w, h)
    }
}
