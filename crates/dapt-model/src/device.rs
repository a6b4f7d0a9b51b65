//! Backend selection from a configuration string.

use anyhow::{Result, bail};
use burn::prelude::Device;

/// The device named by `name`: `"cpu"` (burn's pure-Rust flex backend), or, with the `tch`
/// feature, LibTorch's `"tch-cpu"`, `"cuda"` (GPU 0) or `"cuda:N"`, or, with the `ndarray`
/// feature, burn's deprecated `"ndarray"` backend (kept to compare against flex).
pub fn device_from_name(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::flex()),
        "tch-cpu" | "cuda" => libtorch_device(name),
        "ndarray" => ndarray_device(),
        _ if name.starts_with("cuda:") => libtorch_device(name),
        other => {
            bail!("unknown device {other:?}; expected \"cpu\", \"tch-cpu\", \"cuda\" or \"cuda:N\"")
        }
    }
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn-tch is deprecated upstream, but it is our GPU path for now
fn libtorch_device(name: &str) -> Result<Device> {
    Ok(match name {
        "tch-cpu" => Device::libtorch(),
        "cuda" => Device::libtorch_cuda(0usize),
        _ => {
            let index = name.trim_start_matches("cuda:");
            match index.parse::<usize>() {
                Ok(index) => Device::libtorch_cuda(index),
                Err(_) => bail!("device {name:?}: expected cuda:N with N a GPU index"),
            }
        }
    })
}

#[cfg(not(feature = "tch"))]
fn libtorch_device(name: &str) -> Result<Device> {
    bail!(
        "device {name:?} needs LibTorch: build with `--features dapt-model/tch` \
         (torch 2.9.0 from pip works: set LIBTORCH_USE_PYTORCH=1 in its virtualenv)"
    )
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // deprecated upstream in favour of flex; here only to measure against it
fn ndarray_device() -> Result<Device> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Device> {
    bail!(
        "device \"ndarray\" needs `--features dapt-model/ndarray` (it exists to compare with flex)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_available_and_unknown_names_are_explained() {
        assert!(device_from_name("cpu").is_ok());
        let message = device_from_name("tpu").unwrap_err().to_string();
        assert!(message.contains("expected \"cpu\""), "{message}");
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn cuda_without_tch_says_how_to_enable_it() {
        for name in ["cuda", "cuda:1", "tch-cpu"] {
            let message = device_from_name(name).unwrap_err().to_string();
            assert!(message.contains("--features dapt-model/tch"), "{message}");
        }
    }
}
