//! Turning per-token hidden states into one vector per text.

use candle_core::{D, DType, Result, Tensor};

/// How token vectors become a sentence vector (sentence-transformers' pooling modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average of the real (unmasked) tokens.
    Mean,
    /// The first token (`[CLS]`).
    Cls,
}

/// Pools `hidden` (`batch × seq × dim`) into `batch × dim`, ignoring padded positions of `mask`
/// (`batch × seq`, 1 = real token).
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Result<Tensor> {
    match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
        Pooling::Mean => {
            let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            // A text with no real tokens cannot happen (special tokens are always added), but
            // clamping keeps a bad tokenizer from producing NaN.
            let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            summed.broadcast_div(&counts)
        }
    }
}

/// Scales each row to unit L2 norm (rows of zeros stay zero).
pub fn l2_normalize(vectors: &Tensor) -> Result<Tensor> {
    let norms = vectors
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12f32, f32::MAX)?;
    vectors.broadcast_div(&norms)
}

/// Converts a `batch × dim` f32 tensor into rows.
pub fn to_rows(vectors: &Tensor) -> Result<Vec<Vec<f32>>> {
    vectors.to_dtype(DType::F32)?.to_vec2::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mean_pooling_ignores_padding() -> Result<()> {
        let hidden = Tensor::new(&[[[1f32, 2.], [3., 4.], [100., 100.]]], &Device::Cpu)?;
        let mask = Tensor::new(&[[1u32, 1, 0]], &Device::Cpu)?;
        assert_eq!(
            to_rows(&pool(&hidden, &mask, Pooling::Mean)?)?,
            vec![vec![2f32, 3.]]
        );
        assert_eq!(
            to_rows(&pool(&hidden, &mask, Pooling::Cls)?)?,
            vec![vec![1f32, 2.]]
        );
        Ok(())
    }

    #[test]
    fn normalizes_rows() -> Result<()> {
        let v = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu)?;
        assert_eq!(
            to_rows(&l2_normalize(&v)?)?,
            vec![vec![0.6f32, 0.8], vec![0., 0.]]
        );
        Ok(())
    }
}
