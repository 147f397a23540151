//! The BERT encoder (transformers' `BertModel`, absolute positions) on candle-nn, shaped for CPU
//! throughput rather than generality. Measured against candle-transformers' `BertModel` (see
//! BENCHMARKS.md), the differences are where the profile pointed:
//! - GELU: candle's `gelu_erf` calls libm's scalar `erf` per element (13% of MiniLM's time);
//!   [`crate::cpu_ops::gelu_erf`] uses a rational approximation (error < 1e-6, far below f32 noise after a layer)
//!   that the compiler vectorises, on the CPU; other devices keep candle's kernel;
//! - attention: one fused QKV matmul instead of three, the padding mask turned into an additive
//!   bias once per batch instead of per layer, and the fused last-dim softmax.
//! - projections: on CPUs with AVX-512, [`crate::packed_linear`]'s layer with the weight packed
//!   once at load, instead of candle's matmul re-packing it for gemm's AVX2 kernels every call.

use crate::cpu_ops::gelu_erf;
use crate::packed_linear::Projection;
use candle_core::{DType, Module, Tensor};
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
