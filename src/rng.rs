//! A small deterministic generator (splitmix64) for things that must not depend on torch's global
//! RNG or on the device: the demo's synthetic images and the seeded CCM/CSM projections.
use tch::{Device, Kind, Tensor};

pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }

    /// Uniform float in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// A float32 tensor of `dims` with U(lo, hi) entries, on `device`.
    pub fn uniform_tensor(&mut self, dims: &[i64], lo: f64, hi: f64, device: Device) -> Tensor {
        let n: i64 = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.uniform(lo, hi) as f32).collect();
        Tensor::from_slice(&v)
            .reshape(dims)
            .to_kind(Kind::Float)
            .to_device(device)
    }
}
