use crate::ModelError;
use candle_core::Device;
use std::str::FromStr;

/// Where models run: `auto` (a GPU when this build and machine have one, else CPU), `cpu`,
/// `cuda[:N]` or `metal[:N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The first CUDA device when built with the `cuda` feature and one is present, else CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N (needs the `cuda` feature).
    Cuda(usize),
    /// Metal device N (Apple GPUs; needs the `metal` feature).
    Metal(usize),
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceChoice::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            "metal" => Ok(DeviceChoice::Metal(0)),
            _ => {
                let numbered = |prefix: &str| s.strip_prefix(prefix).map(str::parse::<usize>);
                match (numbered("cuda:"), numbered("metal:")) {
                    (Some(Ok(n)), _) => Ok(DeviceChoice::Cuda(n)),
                    (_, Some(Ok(n))) => Ok(DeviceChoice::Metal(n)),
                    _ => Err(ModelError::Device(format!(
                        "{s:?} is not a device; use auto, cpu, cuda, cuda:N, metal or metal:N"
                    ))),
                }
            }
        }
    }
}

/// Threads candle's CPU kernels use: `RAYON_NUM_THREADS` when set, else candle's own default
/// (the machine's physical cores, or its preferred ones on a hybrid CPU).
///
/// candle-core 0.11 works that default out again on every matmul (an empty, zero or unparsable
/// `RAYON_NUM_THREADS` counts as unset), and on Linux it comes from reading and parsing
/// `/proc/cpuinfo` each time: 36 reads per MiniLM forward pass, 6% of the samples at batch 1,
/// and batch-1 throughput rose 30–40% without them (BENCHMARKS.md, "Text encoder vs PyTorch").
/// A binary that embeds this library sets `RAYON_NUM_THREADS` to this value once at startup,
/// before any thread runs, and candle finds it there from then on (`tessera` does, in `main`).
/// That also sizes rayon's global pool, which gemm's and our kernels' tasks run on: on a machine
/// with SMT, physical cores instead of logical ones. (`CANDLE_NUM_THREADS`, when set, sizes
/// candle's own barrier pool separately.)
pub fn cpu_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// Opens the chosen device. `Auto` never falls back silently: it logs which device it picked.
pub fn select_device(choice: DeviceChoice) -> Result<Device, ModelError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(n) => Device::new_cuda(n).map_err(|e| {
            ModelError::Device(format!(
                "cuda:{n} is unavailable ({e}); build with `--features cuda` on a machine with an NVIDIA GPU"
            ))
        }),
        DeviceChoice::Metal(n) => Device::new_metal(n).map_err(|e| {
            ModelError::Device(format!(
                "metal:{n} is unavailable ({e}); build with `--features metal` on an Apple machine"
            ))
        }),
        DeviceChoice::Auto => {
            // A GPU build on a machine whose GPU cannot be opened says why, at warn level.
            let mut why_not = Vec::new();
            if candle_core::utils::cuda_is_available() {
                match Device::new_cuda(0) {
                    Ok(device) => {
                        tracing::info!("models run on cuda:0");
                        return Ok(device);
                    }
                    Err(e) => why_not.push(format!("cuda:0: {e}")),
                }
            }
            if candle_core::utils::metal_is_available() {
                match Device::new_metal(0) {
                    Ok(device) => {
                        tracing::info!("models run on metal:0");
                        return Ok(device);
                    }
                    Err(e) => why_not.push(format!("metal:0: {e}")),
                }
            }
            if why_not.is_empty() {
                tracing::info!("models run on the CPU (this build has no GPU support)");
            } else {
                tracing::warn!(
                    unavailable = %why_not.join("; "),
                    "models run on the CPU: this build supports a GPU but none could be opened"
                );
            }
            Ok(Device::Cpu)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!(
            "auto".parse::<DeviceChoice>().ok(),
            Some(DeviceChoice::Auto)
        );
        assert_eq!("cpu".parse::<DeviceChoice>().ok(), Some(DeviceChoice::Cpu));
        assert_eq!(
            "cuda:2".parse::<DeviceChoice>().ok(),
            Some(DeviceChoice::Cuda(2))
        );
        let err = "tpu"
            .parse::<DeviceChoice>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("\"tpu\" is not a device"), "{err}");
        assert_eq!(
            "metal:1".parse::<DeviceChoice>().ok(),
            Some(DeviceChoice::Metal(1))
        );
        for choice in [
            DeviceChoice::Auto,
            DeviceChoice::Cpu,
            DeviceChoice::Cuda(3),
            DeviceChoice::Metal(0),
        ] {
            assert_eq!(
                choice.to_string().parse::<DeviceChoice>().ok(),
                Some(choice)
            );
        }
    }

    #[test]
    fn an_unbuilt_gpu_is_a_clear_error_not_a_fallback() {
        if candle_core::utils::cuda_is_available() {
            return;
        }
        let err = select_device(DeviceChoice::Cuda(0))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("build with `--features cuda`"), "{err}");
        if !candle_core::utils::metal_is_available() {
            let err = select_device(DeviceChoice::Metal(0))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("build with `--features metal`"), "{err}");
        }
    }
}
