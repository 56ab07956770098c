//! TensorBoard event files (`events.out.tfevents.*`): scalars, images and restarts, as records of
//! TensorFlow's `Event` protocol buffer (encoded with prost) framed with masked CRC-32C checksums.
use crate::util::clock::unix_time;
use anyhow::{Context, Result};
use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};

/// tensorflow/core/util/event.proto `Event` (the fields fpgan writes).
#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
    #[prost(message, optional, tag = "7")]
    session_log: Option<SessionLog>,
}

/// tensorflow/core/framework/summary.proto `Summary`.
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// `Summary.Value`: a tag with a simple value or an image.
#[derive(Clone, PartialEq, Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "4")]
    image: Option<Image>,
}

/// `Summary.Image`: an encoded (PNG) image.
#[derive(Clone, PartialEq, Message)]
struct Image {
    #[prost(int32, tag = "1")]
    height: i32,
    #[prost(int32, tag = "2")]
    width: i32,
    #[prost(int32, tag = "3")]
    colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    encoded_image_string: Vec<u8>,
}

/// event.proto `SessionLog`; status START = 1 makes TensorBoard drop what a dead run wrote at
/// steps from this one on.
#[derive(Clone, PartialEq, Message)]
struct SessionLog {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// TFRecord's masked CRC-32C.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One event file, appended record by record (each record is flushed, so a killed run loses at
/// most the record being written, which TensorBoard skips).
pub struct EventWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl EventWriter {
    /// A new `events.out.tfevents.<time>.<host>.<pid>` in `dir`, starting with the file version.
    pub fn create(dir: &Path) -> Result<Self> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let t = unix_time();
        let name = format!(
            "events.out.tfevents.{}.{host}.{}",
            t as u64,
            std::process::id()
        );
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut w = EventWriter { file, path };
        w.write(&Event {
            wall_time: t,
            file_version: Some("brain.Event:2".into()),
            ..Default::default()
        })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, e: &Event) -> Result<()> {
        let data = e.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        let mut rec = Vec::with_capacity(data.len() + 16);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&masked_crc(&len).to_le_bytes());
        rec.extend_from_slice(&data);
        rec.extend_from_slice(&masked_crc(&data).to_le_bytes());
        self.file
            .write_all(&rec)
            .with_context(|| format!("cannot append to {} (disk full?)", self.path.display()))
    }

    fn summary(&mut self, step: i64, wall_time: f64, value: Value) -> Result<()> {
        self.write(&Event {
            wall_time,
            step,
            summary: Some(Summary { value: vec![value] }),
            ..Default::default()
        })
    }

    /// A scalar (stored as float32, as TensorBoard's simple values).
    pub fn scalar(&mut self, tag: &str, step: i64, wall_time: f64, v: f64) -> Result<()> {
        let value = Value {
            tag: tag.into(),
            simple_value: Some(v as f32),
            image: None,
        };
        self.summary(step, wall_time, value)
    }

    /// An RGB PNG image of `width` x `height`.
    pub fn png(
        &mut self,
        tag: &str,
        step: i64,
        wall_time: f64,
        png: Vec<u8>,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let image = Image {
            height: height as i32,
            width: width as i32,
            colorspace: 3,
            encoded_image_string: png,
        };
        let value = Value {
            tag: tag.into(),
            simple_value: None,
            image: Some(image),
        };
        self.summary(step, wall_time, value)
    }

    /// A restart at `step`: TensorBoard forgets the events of steps `step` and later written
    /// before it (what a dead run wrote after the snapshot a resume starts from).
    pub fn restart(&mut self, step: i64) -> Result<()> {
        self.write(&Event {
            wall_time: unix_time(),
            step,
            session_log: Some(SessionLog { status: 1 }),
            ..Default::default()
        })
    }
}
