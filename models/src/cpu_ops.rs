//! Element-wise CPU ops shared by the encoders, as candle custom ops: a fast exact-erf GELU
//! (BERT's and Whisper's feed-forward layers and Whisper's convolutions), and the accessor custom
//! ops use to read a contiguous f32 tensor.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

/// The f32 values of a contiguous CPU tensor, for custom ops; `op` names the op in the error.
pub(crate) fn contiguous_f32<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!(
            "{op} takes f32 tensors, got {:?} of shape {:?}",
            candle_core::backend::BackendStorage::dtype(storage),
            layout.dims()
        );
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!(
            "{op} takes a contiguous tensor, got shape {:?} with strides {:?}",
            layout.dims(),
            layout.stride()
        );
    };
    Ok(&data[start..end])
}

/// `x · Φ(x)` with the exact (erf) GELU, fast on the CPU.
pub(crate) fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        // The op reads its input as one slice; a strided view is copied first.
        x.contiguous()?.apply_op1_no_bwd(&FastGeluErf)
    } else {
        x.gelu_erf()
    }
}

/// erf(x) for f32 by a rational approximation on [-4, 4] (|error| < 1e-6; outside it erf is ±1
/// in f32). Branch-free so that loops over it vectorise.
#[inline]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = [
        -2.726_142_3e-10_f32,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ]
    .iter()
    .fold(0.0f32, |acc, c| acc * x2 + c);
    let q = [
        -1.456_607_2e-5_f32,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329e-3,
        -1.426_474e-2,
    ]
    .iter()
    .fold(0.0f32, |acc, c| acc * x2 + c);
    x * p / q
}

/// GELU of one value, with [`erf_f32`].
#[inline]
fn gelu_f32(v: f32) -> f32 {
    0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))
}

struct FastGeluErf;

impl CustomOp1 for FastGeluErf {
    fn name(&self) -> &'static str {
        "tessera-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous_f32("gelu_erf", storage, layout)?;
        let mut out = vec![0.0f32; input.len()];
        let gelu = |src: &[f32], dst: &mut [f32]| {
            for (o, &v) in dst.iter_mut().zip(src) {
                *o = gelu_f32(v);
            }
        };
        // Split large tensors over rayon's threads: the op sits between two matmuls that use
        // every core.
        if input.len() >= 1 << 16 {
            use rayon::prelude::*;
            input
                .par_chunks(1 << 14)
                .zip(out.par_chunks_mut(1 << 14))
                .for_each(|(src, dst)| gelu(src, dst));
        } else {
            gelu(input, &mut out);
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_erf_is_accurate() -> candle_core::Result<()> {
        // candle's erf is libm's, accurate to the last bit or two of f32.
        let xs: Vec<f32> = (-6000..=6000).map(|i| i as f32 / 1000.0).collect();
        let reference = Tensor::new(xs.as_slice(), &candle_core::Device::Cpu)?
            .erf()?
            .to_vec1::<f32>()?;
        let worst = xs
            .iter()
            .zip(&reference)
            .map(|(x, r)| (erf_f32(*x) - r).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "max |erf error| {worst}");
        Ok(())
    }

    #[test]
    fn fast_gelu_matches_candle() -> candle_core::Result<()> {
        let values: Vec<f32> = (-500..500).map(|i| i as f32 / 60.0).collect();
        let x = Tensor::from_vec(values, (10, 100), &candle_core::Device::Cpu)?;
        let ours = gelu_erf(&x)?.flatten_all()?.to_vec1::<f32>()?;
        let theirs = x.gelu_erf()?.flatten_all()?.to_vec1::<f32>()?;
        let diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "max abs diff {diff}");
        Ok(())
    }

    #[test]
    fn fast_gelu_splits_large_tensors_without_changing_values() -> candle_core::Result<()> {
        // Over the size that goes to rayon's threads, and not a multiple of their chunks.
        let n = (1 << 16) + 12_345;
        let values: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 / 100.0 - 5.0).collect();
        let x = Tensor::from_vec(values.clone(), n, &candle_core::Device::Cpu)?;
        let ours = gelu_erf(&x)?.to_vec1::<f32>()?;
        assert_eq!(ours.len(), n);
        for (i, (&v, &g)) in values.iter().zip(&ours).enumerate() {
            assert_eq!(g, gelu_f32(v), "element {i}");
        }
        Ok(())
    }
}
