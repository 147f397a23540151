//! A linear layer for CPUs with AVX-512 whose weight is packed once, at load, into the panels its
//! kernel reads, instead of at every call.
//!
//! Why: candle's CPU matmul hands each product to the gemm crate, which re-packs the weight on
//! every call (40% of MiniLM's time at batch 1) and runs AVX2 kernels; its AVX-512 kernels are
//! all or nothing and halved batch 1 (BENCHMARKS.md, "Text encoder vs PyTorch"). Here the weight
//! is packed once, the input rows (small next to the weight) are packed per call, and an
//! 8 × 32 register tile is computed with AVX-512 FMAs.
//!
//! Every output element sums its products in input order, one after another, whatever the
//! batch: a row's output from this layer does not depend on the other rows (bit for bit), which
//! blocked GEMMs do not promise. (The encoders' attention still goes through candle's matmul;
//! their batch-invariance tests allow 1e-5.)
//!
//! Where AVX-512 is missing, or the tensor is not an f32 one on the CPU, [`PackedLinear::new`]
//! gives `None` and the caller keeps candle's layer.

use crate::cpu_ops::contiguous_f32;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Output columns per panel: two 16-float AVX-512 registers.
const NR: usize = 32;
/// Input rows per tile: 8 × 2 accumulator registers, half of the 32 AVX-512 has.
const MR: usize = 8;
/// Inputs per pass over a panel: 256 × 32 floats of weights (32 KiB) fit in L1.
const KC: usize = 256;
/// Input rows per parallel task: tiles of one task share each weight panel while it is in
/// cache.
const MC: usize = 64;

/// `y = x · Wᵀ + b` with `W` packed for the AVX-512 kernel.
pub struct PackedLinear {
    /// Panel `p` holds output columns `p·NR ..` for every input index, input-major
    /// (`[panels][inputs][NR]`), zero past the last output.
    panels: Vec<f32>,
    /// One per output (zeros without a bias).
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl std::fmt::Debug for PackedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedLinear")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

/// Whether this CPU runs the packed kernel (x86-64 with AVX-512F and FMA).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl PackedLinear {
    /// Packs `weight` (`[outputs, inputs]`, transformers' and candle-nn's layout) and `bias`
    /// (`[outputs]`). `None` where the kernel cannot run: no AVX-512 here, or a weight that is
    /// not f32 on the CPU.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Option<Self>> {
        if !available() || !weight.device().is_cpu() || weight.dtype() != DType::F32 {
            return Ok(None);
        }
        let (outputs, inputs) = weight.dims2()?;
        if inputs == 0 || outputs == 0 {
            return Ok(None);
        }
        let rows = weight.to_vec2::<f32>()?;
        let mut panels = vec![0f32; outputs.div_ceil(NR) * inputs * NR];
        for (o, row) in rows.iter().enumerate() {
            let panel = &mut panels[(o / NR) * inputs * NR..][..inputs * NR];
            for (slot, &w) in panel.iter_mut().skip(o % NR).step_by(NR).zip(row) {
                *slot = w;
            }
        }
        let bias = match bias {
            Some(b) => {
                let b = b.to_vec1::<f32>()?;
                if b.len() != outputs {
                    candle_core::bail!("bias of {} for {outputs} outputs", b.len());
                }
                b
            }
            None => vec![0.0; outputs],
        };
        Ok(Some(PackedLinear {
            panels,
            bias,
            inputs,
            outputs,
        }))
    }

    /// `x` `[…, inputs]` → `[…, outputs]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `y` (`m × outputs`, row-major) = `x` (`m × inputs`) · Wᵀ + b, as `threads` or more
    /// tasks on rayon's pool: tasks of MC rows when there are enough of them, else (a text or
    /// two) tasks of panels.
    fn product(&self, x: &[f32], y: &mut [f32], threads: usize) {
        let (k, n) = (self.inputs, self.outputs);
        let panels = n.div_ceil(NR);
        if x.len().div_ceil(MC * k) >= threads || panels < 2 {
            y.par_chunks_mut(MC * n)
                .zip(x.par_chunks(MC * k))
                .for_each(|(y, x)| self.panel_range(&pack_rows(x, k), 0..panels, y, n));
            return;
        }
        let packed = pack_rows(x, k);
        let per_task = panels.div_ceil(threads);
        let blocks: Vec<(usize, usize, Vec<f32>)> = (0..panels)
            .step_by(per_task)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|first| {
                let panels = first..(first + per_task).min(panels);
                let (c0, c1) = (panels.start * NR, (panels.end * NR).min(n));
                let mut block = vec![0f32; x.len() / k * (c1 - c0)];
                self.panel_range(&packed, panels, &mut block, c1 - c0);
                (c0, c1 - c0, block)
            })
            .collect();
        for (c0, width, block) in blocks {
            for (row, part) in y.chunks_exact_mut(n).zip(block.chunks_exact(width)) {
                row[c0..c0 + width].copy_from_slice(part);
            }
        }
    }

    /// Computes the output columns of `panels` for the rows in `packed` ([`pack_rows`]) into
    /// `out`, whose rows are `stride` wide and start at the first of those columns.
    fn panel_range(
        &self,
        packed: &[f32],
        panels: std::ops::Range<usize>,
        out: &mut [f32],
        stride: usize,
    ) {
        let k = self.inputs;
        let first_panel = panels.start;
        let mut sums = vec![[[0f32; NR]; MR]; packed.len() / (k * MR)];
        for p in panels {
            let panel = &self.panels[p * k * NR..][..k * NR];
            let first_col = p * NR;
            let cols = NR.min(self.outputs - first_col);
            let bias = &self.bias[first_col..first_col + cols];
            let at = first_col - first_panel * NR;
            sums.fill([[0f32; NR]; MR]);
            // KC inputs at a time, so that the panel's slice stays in L1 while every tile
            // uses it; each sum still adds its products in input order (a tile resumes its
            // running sums).
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                let weights = &panel[k0 * NR..(k0 + kc) * NR];
                for (tile, acc) in packed.chunks_exact(k * MR).zip(&mut sums) {
                    self.tile_product(&tile[k0 * MR..(k0 + kc) * MR], weights, acc);
                }
            }
            for (out, acc) in out.chunks_exact_mut(stride).zip(sums.iter().flatten()) {
                for ((o, &a), &b) in out[at..at + cols].iter_mut().zip(acc).zip(bias) {
                    *o = a + b;
                }
            }
        }
    }

    /// Adds one `MR × NR` tile of the product to `acc`: `tile` holds MR rows input-major,
    /// `panel` NR weight columns input-major, over the same inputs. A method so that only a
    /// `PackedLinear`, which proves the CPU's features, can reach the kernel.
    #[allow(unsafe_code)]
    fn tile_product(&self, tile: &[f32], panel: &[f32], acc: &mut [[f32; NR]; MR]) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `self` exists, and `PackedLinear::new`, its only constructor, builds one
            // only where `available()` found AVX-512F and FMA, the features
            // `tile_product_avx512` is compiled for.
            unsafe { tile_product_avx512(tile, panel, acc) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            // Unreachable (no `PackedLinear` is built without AVX-512); plain arithmetic keeps
            // other targets compiling.
            for (a, w) in tile
                .as_chunks::<MR>()
                .0
                .iter()
                .zip(panel.as_chunks::<NR>().0)
            {
                for (acc_row, &a) in acc.iter_mut().zip(a) {
                    for (c, &w) in acc_row.iter_mut().zip(w) {
                        *c = a.mul_add(w, *c);
                    }
                }
            }
        }
    }
}

/// Rows `x` (`k` wide), MR at a time, input-major (`[tiles][k][MR]`), zero past the last row:
/// the kernel reads them in the order it multiplies.
fn pack_rows(x: &[f32], k: usize) -> Vec<f32> {
    let rows = x.len() / k;
    let mut packed = vec![0f32; rows.div_ceil(MR) * k * MR];
    for (r, row) in x.chunks_exact(k).enumerate() {
        let tile = &mut packed[(r / MR) * k * MR..][..k * MR];
        for (slot, &v) in tile.iter_mut().skip(r % MR).step_by(MR).zip(row) {
            *slot = v;
        }
    }
    packed
}

/// A projection layer: [`PackedLinear`] where it runs, candle-nn's `Linear` elsewhere.
#[derive(Debug)]
pub enum Projection {
    /// Packed for this CPU's AVX-512.
    Packed(PackedLinear),
    /// candle-nn's layer (GPUs, CPUs without AVX-512, other dtypes).
    Candle(candle_nn::Linear),
}

impl Projection {
    /// Packs `linear` where the packed kernel runs, else keeps it. `TESSERA_PACKED_LINEAR=0`
    /// keeps candle's layer everywhere (to compare the two, or to rule the kernel out).
    pub fn new(linear: candle_nn::Linear) -> candle_core::Result<Self> {
        if std::env::var_os("TESSERA_PACKED_LINEAR").is_some_and(|v| v == "0") {
            return Ok(Projection::Candle(linear));
        }
        Ok(match PackedLinear::new(linear.weight(), linear.bias())? {
            Some(packed) => Projection::Packed(packed),
            None => Projection::Candle(linear),
        })
    }

    /// `x` `[…, inputs]` → `[…, outputs]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Projection::Packed(p) => p.forward(x),
            Projection::Candle(l) => candle_core::Module::forward(l, x),
        }
    }
}

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "packed-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32("packed-linear", storage, layout)?;
        let mut dims = layout.dims().to_vec();
        match dims.last_mut() {
            Some(last) if *last == self.inputs => *last = self.outputs,
            _ => candle_core::bail!(
                "packed-linear with {} inputs got shape {:?}",
                self.inputs,
                layout.dims()
            ),
        }
        let mut y = vec![0f32; x.len() / self.inputs * self.outputs];
        if !x.is_empty() {
            self.product(x, &mut y, rayon::current_num_threads());
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }
}

/// The kernel: 16 accumulator registers (MR rows × two 16-float halves of the panel), per
/// input index two loads of weights and MR broadcasts of the rows' values. Written with
/// intrinsics because the compiler, left to vectorise the plain loops, gathered along the
/// wrong axis (20× slower).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(unsafe_code)]
fn tile_product_avx512(tile: &[f32], panel: &[f32], sums: &mut [[f32; NR]; MR]) {
    use std::arch::x86_64::{__m512, _mm512_storeu_ps};
    use std::arch::x86_64::{_mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps};
    let mut acc: [[__m512; 2]; MR] = sums.map(|row| {
        // SAFETY: `row` is NR = 32 floats; the loads read its two halves.
        unsafe {
            [
                _mm512_loadu_ps(row.as_ptr()),
                _mm512_loadu_ps(row.as_ptr().add(16)),
            ]
        }
    });
    for (a, w) in tile
        .as_chunks::<MR>()
        .0
        .iter()
        .zip(panel.as_chunks::<NR>().0)
    {
        // SAFETY: `w` is NR = 32 floats; the loads read its two halves.
        let (w0, w1) = unsafe {
            (
                _mm512_loadu_ps(w.as_ptr()),
                _mm512_loadu_ps(w.as_ptr().add(16)),
            )
        };
        for (acc, &a) in acc.iter_mut().zip(a) {
            let a = _mm512_set1_ps(a);
            acc[0] = _mm512_fmadd_ps(a, w0, acc[0]);
            acc[1] = _mm512_fmadd_ps(a, w1, acc[1]);
        }
    }
    for (row, acc) in sums.iter_mut().zip(&acc) {
        // SAFETY: `row` is NR = 32 floats; the stores write its two halves.
        unsafe {
            _mm512_storeu_ps(row.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), acc[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Deterministic test values: normal, standard deviation 0.5.
    fn noise(shape: &[usize], seed: u64) -> candle_core::Result<Tensor> {
        crate::tiny::normal_tensor(shape, 0.5, seed)
    }

    /// Whether to skip: the kernel does not run on this CPU (said on stderr).
    fn no_kernel_here() -> bool {
        let missing = !available();
        if missing {
            eprintln!("SKIP: this CPU has no AVX-512; the packed layer is not used here");
        }
        missing
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<f32> {
        let a = a.flatten_all()?.to_vec1::<f32>()?;
        let b = b.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a.len(), b.len());
        Ok(a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max))
    }

    fn packed(weight: &Tensor, bias: Option<&Tensor>) -> Result<PackedLinear, String> {
        PackedLinear::new(weight, bias)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "not packed although AVX-512 is here".to_string())
    }

    #[test]
    fn matches_candles_linear_on_ragged_shapes() -> TestResult {
        if no_kernel_here() {
            return Ok(());
        }
        // Outputs not a multiple of the panel width, rows not a multiple of the tile or the
        // task (few rows split the panels between threads, many split the rows), inputs over
        // one KC block, a 3-d input, with and without bias.
        for (rows, inputs, outputs, bias) in [
            (1, 7, 5, true),
            (13, 40, 33, false),
            (16, 600, 200, true),
            (150, 64, 96, true),
            (70, 384, 1152, true),
        ] {
            let w = noise(&[outputs, inputs], 1)?;
            let b = noise(&[outputs], 2)?;
            let x = noise(&[1, rows, inputs], 3)?;
            let b = bias.then_some(&b);
            let reference = candle_nn::Linear::new(w.clone(), b.cloned());
            let expected = candle_core::Module::forward(&reference, &x)?;
            let got = packed(&w, b)?.forward(&x)?;
            assert_eq!(got.dims(), &[1, rows, outputs]);
            let diff = max_abs_diff(&got, &expected)?;
            assert!(
                diff < 1e-4,
                "{rows}×{inputs}→{outputs}: max abs diff {diff}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_row_is_the_same_alone_and_inside_any_batch() -> TestResult {
        if no_kernel_here() {
            return Ok(());
        }
        let layer = packed(&noise(&[96, 600], 4)?, None)?;
        let batch = noise(&[131, 600], 5)?;
        let all = layer.forward(&batch)?;
        for r in [0, 7, 8, 63, 64, 130] {
            let alone = layer.forward(&batch.narrow(0, r, 1)?)?;
            let inside = all.narrow(0, r, 1)?;
            assert_eq!(max_abs_diff(&alone, &inside)?, 0.0, "row {r}");
        }
        Ok(())
    }

    #[test]
    fn row_tasks_and_panel_tasks_give_the_same_bits() -> TestResult {
        if no_kernel_here() {
            return Ok(());
        }
        // 100 rows: two row tasks, so 1 or 2 threads split rows and 3 or more split panels;
        // 300 inputs span two input blocks; 200 outputs leave a ragged last panel.
        let (rows, inputs, outputs) = (100, 300, 200);
        let layer = packed(&noise(&[outputs, inputs], 8)?, Some(&noise(&[outputs], 9)?))?;
        let x = noise(&[rows, inputs], 10)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let run = |rows: usize, threads: usize| {
            let mut y = vec![f32::NAN; rows * outputs];
            layer.product(&x[..rows * inputs], &mut y, threads);
            y
        };
        let reference = run(rows, 1);
        assert!(
            reference.iter().all(|v| v.is_finite()),
            "an output was not written"
        );
        for threads in [2, 3, 4, 7, 64] {
            assert!(run(rows, threads) == reference, "{threads} threads");
        }
        for r in [1, 9, 64, 65] {
            for threads in [1, 4] {
                assert!(
                    run(r, threads)[..] == reference[..r * outputs],
                    "first {r} rows, {threads} threads"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn refuses_a_wrong_width_and_non_f32_weights() -> TestResult {
        if no_kernel_here() {
            return Ok(());
        }
        let layer = packed(&noise(&[8, 16], 6)?, None)?;
        let err = layer
            .forward(&noise(&[2, 15], 7)?)
            .err()
            .ok_or("a 15-wide input was accepted by a 16-input layer")?
            .to_string();
        assert!(
            err.contains("16 inputs") && err.contains("[2, 15]"),
            "{err}"
        );
        let half = noise(&[8, 16], 6)?.to_dtype(DType::F16)?;
        assert!(PackedLinear::new(&half, None)?.is_none());
        Ok(())
    }
}
