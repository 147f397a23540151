//! The BERT encoder (transformers' `BertModel`, absolute positions) on candle-nn, shaped for CPU
//! throughput rather than generality. Measured against candle-transformers' `BertModel` (see
//! BENCHMARKS.md), the differences are where the profile pointed:
//! - GELU: candle's `gelu_erf` calls libm's scalar `erf` per element (13% of MiniLM's time);
//!   [`gelu_erf`] uses a rational approximation (error < 1e-6, far below f32 noise after a layer)
//!   that the compiler vectorises, on the CPU; other devices keep candle's kernel;
//! - attention: one fused QKV matmul instead of three, the padding mask turned into an additive
//!   bias once per batch instead of per layer, and the fused last-dim softmax.
//! - projections: on CPUs with AVX-512, [`crate::packed_linear`]'s layer with the weight packed
//!   once at load, instead of candle's matmul re-packing it for gemm's AVX2 kernels every call.

use crate::packed_linear::{Projection, contiguous_f32};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Shape, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};

/// Weights and shape of one encoder layer.
#[derive(Debug)]
struct Layer {
    qkv: Projection,
    attn_out: Projection,
    attn_norm: LayerNorm,
    ffn_in: Projection,
    ffn_out: Projection,
    ffn_norm: LayerNorm,
}

/// A loaded BERT encoder.
#[derive(Debug)]
pub struct Bert {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    act: HiddenAct,
}

fn norm(dim: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    // Old TF-converted checkpoints name the parameters gamma/beta.
    if vb.contains_tensor("gamma") {
        let weight = vb.get(dim, "gamma")?;
        let bias = vb.get(dim, "beta")?;
        return Ok(LayerNorm::new(weight, bias, eps));
    }
    candle_nn::layer_norm(dim, eps, vb)
}

impl Layer {
    fn load(c: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let s = vb.pp("attention.self");
        // One [3h × h] projection: q, k and v rows stacked, so one matmul serves all three.
        let weight = Tensor::cat(
            &[
                s.get((h, h), "query.weight")?,
                s.get((h, h), "key.weight")?,
                s.get((h, h), "value.weight")?,
            ],
            0,
        )?;
        let bias = Tensor::cat(
            &[
                s.get(h, "query.bias")?,
                s.get(h, "key.bias")?,
                s.get(h, "value.bias")?,
            ],
            0,
        )?;
        let linear = |inputs, outputs, name| {
            Projection::new(candle_nn::linear(inputs, outputs, vb.pp(name))?)
        };
        Ok(Layer {
            qkv: Projection::new(Linear::new(weight, Some(bias)))?,
            attn_out: linear(h, h, "attention.output.dense")?,
            attn_norm: norm(h, c.layer_norm_eps, vb.pp("attention.output.LayerNorm"))?,
            ffn_in: linear(h, c.intermediate_size, "intermediate.dense")?,
            ffn_out: linear(c.intermediate_size, h, "output.dense")?,
            ffn_norm: norm(h, c.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        heads: usize,
        act: HiddenAct,
    ) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let d = h / heads;
        // [b, t, 3, heads, d] → three [b, heads, t, d] views.
        let qkv = self.qkv.forward(x)?.reshape((b, t, 3, heads, d))?;
        let part = |i: usize| {
            qkv.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = (part(0)? * (d as f64).powf(-0.5))?;
        let (k, v) = (part(1)?, part(2)?);
        let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let x = self
            .attn_norm
            .forward(&(self.attn_out.forward(&context)? + x)?)?;
        let inner = self.ffn_in.forward(&x)?;
        let inner = match act {
            HiddenAct::Gelu => gelu_erf(&inner)?,
            HiddenAct::GeluApproximate => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
        };
        self.ffn_norm.forward(&(self.ffn_out.forward(&inner)? + x)?)
    }
}

impl Bert {
    /// Loads a `BertModel` checkpoint (with or without a `bert.` prefix).
    pub fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        if c.position_embedding_type != PositionEmbeddingType::Absolute {
            candle_core::bail!("only absolute position embeddings are supported");
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!(
                "{} heads do not divide hidden size {}",
                c.num_attention_heads,
                c.hidden_size
            );
        }
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let e = vb.pp("embeddings");
        let h = c.hidden_size;
        Ok(Bert {
            words: candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?,
            positions: candle_nn::embedding(
                c.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            token_types: candle_nn::embedding(c.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            embed_norm: norm(h, c.layer_norm_eps, e.pp("LayerNorm"))?,
            layers: (0..c.num_hidden_layers)
                .map(|i| Layer::load(c, vb.pp(format!("encoder.layer.{i}"))))
                .collect::<candle_core::Result<_>>()?,
            heads: c.num_attention_heads,
            act: c.hidden_act,
        })
    }

    /// Hidden states `[batch, seq, hidden]` for `ids`, `type_ids` and a 0/1 `mask` (all
    /// `[batch, seq]`, u32).
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let positions = Tensor::arange(0u32, t as u32, ids.device())?;
        let x = self
            .words
            .forward(ids)?
            .add(&self.token_types.forward(type_ids)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let mut x = self.embed_norm.forward(&x)?;
        // Padding keys get the dtype's minimum, as transformers' extended attention mask does;
        // [b, 1, 1, t] broadcasts over heads and queries.
        let keep = mask.to_dtype(DType::F32)?.unsqueeze(1)?.unsqueeze(1)?;
        let bias = ((1.0 - keep)? * f64::from(f32::MIN))?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.heads, self.act)?;
        }
        Ok(x)
    }
}

/// `x · Φ(x)` with the exact (erf) GELU, fast on the CPU.
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.apply_op1_no_bwd(&FastGeluErf)
    } else {
        x.gelu_erf()
    }
}

/// erf(x) for f32 by a rational approximation on [-4, 4] (|error| < 1e-6; outside it erf is ±1
/// in f32). Branch-free so that loops over it vectorise.
#[inline]
pub fn erf_f32(x: f32) -> f32 {
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
                *o = 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
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
            let expected = 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
            assert_eq!(g, expected, "element {i}");
        }
        Ok(())
    }
}
