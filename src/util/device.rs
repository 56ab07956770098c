//! Devices from the command line: `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
use anyhow::{bail, Result};
use tch::Device;

/// How the command line writes `d` (`cpu`, `cuda:0`): for messages, logs and JSON.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        d => format!("{d:?}").to_lowercase(),
    }
}

/// `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device> {
    let cuda_ok = |i: usize| -> Result<Device> {
        if !tch::Cuda::is_available() || i >= tch::Cuda::device_count() as usize {
            bail!("--device {s}: CUDA device {i} is not available (no GPU, or libtorch without CUDA); use --device cpu");
        }
        Ok(Device::Cuda(i))
    };
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda_ok(0),
        _ => match s.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => cuda_ok(i),
            None => bail!("--device '{s}': use auto, cpu, cuda or cuda:N"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_the_same_device() {
        assert_eq!(device_name(Device::Cpu), "cpu");
        assert_eq!(device_name(Device::Cuda(1)), "cuda:1");
        assert_eq!(
            parse_device(&device_name(Device::Cpu)).unwrap(),
            Device::Cpu
        );
        assert!(parse_device("cuda:x").is_err());
    }
}
