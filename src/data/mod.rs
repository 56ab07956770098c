//! Datasets: `prepare` turns any folder or zip of images into the reference layout
//! (`00000/img00000000.png` + `dataset.json`), `loader` reads such a set into memory for training.
pub mod dest;
pub mod image_ops;
pub mod jpeg;
pub mod labels;
pub mod loader;
pub mod prepare;
pub mod resample;
pub mod source;
pub mod stream;
pub mod synthetic;
pub mod writer;

pub use image_ops::{Background, Transform};
pub use loader::{DataPrint, ImageSet};
pub use prepare::{prepare, prepare_into, PrepareOptions, RawFit, Summary};
pub use source::Source;
pub use writer::DatasetWriter;
