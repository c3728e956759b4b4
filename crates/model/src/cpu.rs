//! A fused forward pass of a trained [`Net`] for inference on the CPU.
//!
//! The same network, read out of the burn module once: batch norm is folded into the
//! convolutions (scale into the weights, shift into a bias), ReLU is applied as each
//! convolution writes its output, and every image (one view of one patch) runs through all
//! six convolutions, the poolings and the global average by itself, in channels-last buffers
//! with a zero border, which stay in the core's cache. Burn's CPU backend instead runs layer by
//! layer over the whole batch, converting layouts and building im2col matrices for each
//! convolution; on the 2-core benchmark machine that made it about half as fast as PyTorch
//! (`scripts/bench_models.sh`).
//!
//! Nothing here defines the architecture: [`CpuNet::new`] reads the layers of a [`Net`], so
//! a network trained and shipped with burn is exactly what runs. The tests (and
//! `tests/parity.rs` on the shipped weights) check it against burn's forward pass.
//!
//! x86-64 machines with AVX2 and FMA (checked at run time) and wasm32 (WebAssembly SIMD,
//! which the page requires anyway) get an explicit SIMD kernel; every other target runs the
//! portable one, which the compiler vectorises where it can.

use crate::{ModelError, Net, Stage};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// Output channels are computed in blocks of this many (two AVX registers); layers whose width
/// is not a multiple get zero-weight padding channels, which stay 0 through ReLU and pooling.
const LANES: usize = 16;

/// One 3×3 convolution with batch norm folded in.
#[derive(Clone)]
struct ConvLayer {
    /// Input channels as stored in the activation buffers (the previous layer's padded width).
    cin: usize,
    /// Output channels, padded to a multiple of [`LANES`].
    cout: usize,
    /// `[ky][kx][cin][cout]`.
    weights: Vec<f32>,
    /// `[cout]`.
    bias: Vec<f32>,
}

/// A dense layer, weights `[inputs][outputs]` as burn's `Linear` stores them.
#[derive(Clone)]
struct Dense {
    inputs: usize,
    outputs: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

/// The inference-only, CPU form of a [`Net`].
#[derive(Clone)]
pub struct CpuNet {
    views: usize,
    channels: usize,
    patch_size: usize,
    /// Two convolutions per stage, then a 2×2 max-pool.
    convs: [ConvLayer; 6],
    /// Real width of the last stage (the features per view; the rest is padding).
    features: usize,
    fc1: Dense,
    fc2: Dense,
    simd: Kernel,
}

impl std::fmt::Debug for CpuNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuNet")
            .field(
                "widths",
                &self.convs.iter().map(|c| c.cout).collect::<Vec<_>>(),
            )
            .field("kernel", &self.simd)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// 128-bit WebAssembly SIMD: without it the browser ran the models 30× slower than
    /// native (the portable kernel is not vectorised for wasm32 without `+simd128`).
    #[cfg(target_arch = "wasm32")]
    Simd128,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Kernel::Avx2Fma;
        }
        #[cfg(target_arch = "wasm32")]
        return Kernel::Simd128;
        #[cfg(not(target_arch = "wasm32"))]
        Kernel::Portable
    }
}

fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    tensor
        .try_into_data()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))?
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))
}

fn round_up(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

impl ConvLayer {
    /// Folds inference batch norm, `(x − mean) / √(var + ε) · γ + β`, into a bias-free conv.
    fn fold(conv: &Conv2d, norm: &BatchNorm, cin: usize) -> Result<Self, ModelError> {
        let [cout, real_cin, kh, kw] = conv.weight.dims();
        if [kh, kw] != [3, 3] || conv.stride != [1, 1] || conv.dilation != [1, 1] {
            return Err(ModelError::Config(
                "the CPU kernel runs 3×3, stride 1 convolutions only".into(),
            ));
        }
        if real_cin > cin || conv.groups != 1 {
            return Err(ModelError::Config(format!(
                "convolution has {real_cin} input channels in {} groups, expected ≤ {cin} in 1",
                conv.groups
            )));
        }
        let w = values(conv.weight.val())?;
        let conv_bias = match &conv.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; cout],
        };
        let gamma = values(norm.gamma.val())?;
        let beta = values(norm.beta.val())?;
        let mean = values(norm.running_mean.value())?;
        let var = values(norm.running_var.value())?;
        let padded = round_up(cout);
        let mut weights = vec![0.0f32; 9 * cin * padded];
        let mut bias = vec![0.0f32; padded];
        for co in 0..cout {
            let scale = f64::from(gamma[co]) / (f64::from(var[co]) + norm.epsilon).sqrt();
            bias[co] = ((f64::from(conv_bias[co]) - f64::from(mean[co])) * scale
                + f64::from(beta[co])) as f32;
            for ci in 0..real_cin {
                for k in 0..9 {
                    let v = f64::from(w[(co * real_cin + ci) * 9 + k]) * scale;
                    weights[(k * cin + ci) * padded + co] = v as f32;
                }
            }
        }
        Ok(Self {
            cin,
            cout: padded,
            weights,
            bias,
        })
    }
}

impl Dense {
    fn read(linear: &burn::nn::Linear) -> Result<Self, ModelError> {
        let [inputs, outputs] = linear.weight.dims();
        let weights = values(linear.weight.val())?;
        let bias = match &linear.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; outputs],
        };
        Ok(Self {
            inputs,
            outputs,
            weights,
            bias,
        })
    }

    fn apply(&self, input: &[f32], output: &mut [f32]) {
        output.copy_from_slice(&self.bias);
        for (x, row) in input.iter().zip(self.weights.chunks_exact(self.outputs)) {
            for (o, w) in output.iter_mut().zip(row) {
                *o += x * w;
            }
        }
    }
}

/// Per-thread activation buffers, channels-last with a one-pixel zero border. Only interiors
/// are ever written, so the borders stay zero from one image to the next.
struct Scratch {
    input: Vec<f32>,
    /// After each convolution.
    conv: [Vec<f32>; 6],
    /// After the first two poolings (the inputs of stages 2 and 3).
    pooled: [Vec<f32>; 2],
}

impl CpuNet {
    /// Reads a trained network (in inference mode) into its CPU form.
    pub fn new(net: &Net) -> Result<Self, ModelError> {
        let stage = |s: &Stage, cin: usize| -> Result<[ConvLayer; 2], ModelError> {
            let first = ConvLayer::fold(&s.conv1, &s.bn1, cin)?;
            let second = ConvLayer::fold(&s.conv2, &s.bn2, first.cout)?;
            Ok([first, second])
        };
        let [c1, c2] = stage(&net.stage1, net.channels)?;
        let [c3, c4] = stage(&net.stage2, c2.cout)?;
        let [c5, c6] = stage(&net.stage3, c4.cout)?;
        let features = net.stage3.conv2.weight.dims()[0];
        let fc1 = Dense::read(&net.fc1)?;
        let fc2 = Dense::read(&net.fc2)?;
        if fc1.inputs != net.views * features || fc2.inputs != fc1.outputs || fc2.outputs != 1 {
            return Err(ModelError::Config(
                "head does not fit the convolution stages".into(),
            ));
        }
        if !net.patch_size.is_multiple_of(8) {
            return Err(ModelError::Config(
                "patch size must be a multiple of 8".into(),
            ));
        }
        Ok(Self {
            views: net.views,
            channels: net.channels,
            patch_size: net.patch_size,
            convs: [c1, c2, c3, c4, c5, c6],
            features,
            fc1,
            fc2,
            simd: Kernel::detect(),
        })
    }

    /// The same network on the portable kernel only (to test it on machines with AVX2).
    pub fn portable(mut self) -> Self {
        self.simd = Kernel::Portable;
        self
    }

    fn patch_len(&self) -> usize {
        self.views * self.channels * self.patch_size * self.patch_size
    }

    fn scratch(&self) -> Scratch {
        let plane = |side: usize, channels: usize| vec![0.0f32; (side + 2) * (side + 2) * channels];
        let s = self.patch_size;
        let sides = [s, s, s / 2, s / 2, s / 4, s / 4];
        Scratch {
            input: plane(s, self.channels),
            conv: std::array::from_fn(|i| plane(sides[i], self.convs[i].cout)),
            pooled: [
                plane(s / 2, self.convs[1].cout),
                plane(s / 4, self.convs[3].cout),
            ],
        }
    }

    /// Probabilities for `patches` (`n × patch_len` values, laid out as
    /// [`Net::input_tensor`] takes them), one per patch.
    pub fn probabilities(&self, patches: &[f32]) -> Result<Vec<f32>, ModelError> {
        let features = self.features(patches)?;
        let mut hidden = vec![0.0f32; self.fc1.outputs];
        let mut logit = [0.0f32];
        Ok(features
            .chunks_exact(self.fc1.inputs)
            .map(|f| {
                self.fc1.apply(f, &mut hidden);
                hidden.iter_mut().for_each(|h| *h = h.max(0.0));
                self.fc2.apply(&hidden, &mut logit);
                1.0 / (1.0 + (-logit[0]).exp())
            })
            .collect())
    }

    /// The convolution stages' output, averaged: `features` values per view, the views of
    /// each patch one after the other (the head's input).
    fn features(&self, patches: &[f32]) -> Result<Vec<f32>, ModelError> {
        let per_patch = self.patch_len();
        if per_patch == 0 || !patches.len().is_multiple_of(per_patch) {
            return Err(ModelError::InputSize {
                got: patches.len(),
                per_patch,
            });
        }
        let images = patches.len() / per_patch * self.views;
        let view_len = per_patch / self.views;
        let mut features = vec![0.0f32; images * self.features];
        let run = |scratch: &mut Scratch, (image, out): (usize, &mut [f32])| {
            let view = &patches[image * view_len..(image + 1) * view_len];
            self.trunk(view, scratch, out);
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            features
                .par_chunks_mut(self.features)
                .enumerate()
                .for_each_init(|| self.scratch(), run);
        }
        #[cfg(target_arch = "wasm32")]
        {
            let mut scratch = self.scratch();
            features
                .chunks_mut(self.features)
                .enumerate()
                .for_each(|item| run(&mut scratch, item));
        }
        Ok(features)
    }

    /// One view (`channels × side × side`, channel-major) → its `features` averages.
    fn trunk(&self, view: &[f32], scratch: &mut Scratch, out: &mut [f32]) {
        let side = self.patch_size;
        let wp = side + 2;
        let c = self.channels;
        for ch in 0..c {
            let plane = &view[ch * side * side..(ch + 1) * side * side];
            for y in 0..side {
                for x in 0..side {
                    scratch.input[((y + 1) * wp + x + 1) * c + ch] = plane[y * side + x];
                }
            }
        }
        let Scratch {
            input,
            conv,
            pooled,
        } = scratch;
        let [a1, a2, a3, a4, a5, a6] = conv;
        let [p1, p2] = pooled;
        self.conv(0, side, input, a1);
        self.conv(1, side, a1, a2);
        max_pool(side, self.convs[1].cout, a2, p1);
        self.conv(2, side / 2, p1, a3);
        self.conv(3, side / 2, a3, a4);
        max_pool(side / 2, self.convs[3].cout, a4, p2);
        self.conv(4, side / 4, p2, a5);
        self.conv(5, side / 4, a5, a6);
        // The last pool and the global average, in one pass over the interior.
        let s = side / 4;
        let wp = s + 2;
        let cout = self.convs[5].cout;
        let cells = (s / 2) * (s / 2);
        out.fill(0.0);
        for y in 0..s / 2 {
            for x in 0..s / 2 {
                let at = |dy: usize, dx: usize| ((2 * y + 1 + dy) * wp + 2 * x + 1 + dx) * cout;
                let [q0, q1, q2, q3] = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                // `out` has the real channels only; the padding ones are zero.
                for (ch, o) in out.iter_mut().enumerate() {
                    let m = a6[q0 + ch]
                        .max(a6[q1 + ch])
                        .max(a6[q2 + ch])
                        .max(a6[q3 + ch]);
                    *o += m;
                }
            }
        }
        let scale = 1.0 / cells as f32;
        out.iter_mut().for_each(|o| *o *= scale);
    }

    fn conv(&self, layer: usize, side: usize, input: &[f32], output: &mut [f32]) {
        let layer = &self.convs[layer];
        let plane = (side + 2) * (side + 2);
        assert_eq!(input.len(), plane * layer.cin, "conv input buffer");
        assert_eq!(output.len(), plane * layer.cout, "conv output buffer");
        match self.simd {
            Kernel::Portable => portable::conv3x3_relu(layer, side, input, output),
            // SAFETY: `Kernel::detect` saw AVX2 and FMA on this CPU; the buffer sizes were
            // checked above and the kernel stays inside them (see `x86`).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => unsafe { x86::conv3x3_relu(layer, side, input, output) },
            #[cfg(target_arch = "wasm32")]
            Kernel::Simd128 => wasm::conv3x3_relu(layer, side, input, output),
        }
    }
}

/// 2×2, stride-2 max-pool of a bordered `side × side × channels` image into the interior of a
/// bordered `side/2 × side/2` one.
fn max_pool(side: usize, channels: usize, input: &[f32], output: &mut [f32]) {
    let wp = side + 2;
    let half = side / 2;
    let wo = half + 2;
    for y in 0..half {
        for x in 0..half {
            let at = |dy: usize, dx: usize| ((2 * y + 1 + dy) * wp + 2 * x + 1 + dx) * channels;
            let [a, b, c, d] = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
            let o = ((y + 1) * wo + x + 1) * channels;
            let out = &mut output[o..o + channels];
            let (a, b) = (&input[a..a + channels], &input[b..b + channels]);
            let (c, d) = (&input[c..c + channels], &input[d..d + channels]);
            for i in 0..channels {
                out[i] = a[i].max(b[i]).max(c[i]).max(d[i]);
            }
        }
    }
}

/// Output pixels per block of the kernels: 4 pixels × 16 channels = 8 AVX accumulators.
const PIXELS: usize = 4;

mod portable {
    use super::{ConvLayer, LANES, PIXELS};

    /// `output = ReLU(conv3x3(input) + bias)` on bordered channels-last images.
    pub(super) fn conv3x3_relu(layer: &ConvLayer, side: usize, input: &[f32], output: &mut [f32]) {
        let (c, cout, wp) = (layer.cin, layer.cout, side + 2);
        for cb in (0..cout).step_by(LANES) {
            let bias: [f32; LANES] = layer.bias[cb..cb + LANES].try_into().expect("lanes");
            for y in 0..side {
                let mut x = 0;
                while x + PIXELS <= side {
                    block::<PIXELS>(layer, wp, input, output, bias, cb, y, x, c, cout);
                    x += PIXELS;
                }
                while x < side {
                    block::<1>(layer, wp, input, output, bias, cb, y, x, c, cout);
                    x += 1;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn block<const P: usize>(
        layer: &ConvLayer,
        wp: usize,
        input: &[f32],
        output: &mut [f32],
        bias: [f32; LANES],
        cb: usize,
        y: usize,
        x: usize,
        c: usize,
        cout: usize,
    ) {
        let mut acc = [bias; P];
        for ky in 0..3 {
            for kx in 0..3 {
                let a = ((y + ky) * wp + x + kx) * c;
                let wk = (ky * 3 + kx) * c * cout + cb;
                for ci in 0..c {
                    let w: &[f32; LANES] = layer.weights[wk + ci * cout..wk + ci * cout + LANES]
                        .try_into()
                        .expect("lanes");
                    for (p, acc) in acc.iter_mut().enumerate() {
                        let v = input[a + p * c + ci];
                        for l in 0..LANES {
                            acc[l] += v * w[l];
                        }
                    }
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            let o = ((y + 1) * wp + x + 1 + p) * cout + cb;
            for (out, v) in output[o..o + LANES].iter_mut().zip(acc) {
                *out = v.max(0.0);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{ConvLayer, LANES, PIXELS};
    use std::arch::x86_64::*;

    /// As [`super::portable::conv3x3_relu`], with AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; `input` must hold `(side+2)² × cin` values and `output`
    /// `(side+2)² × cout` (the reads stay within `(side+2)²` bordered pixels, the writes within
    /// the interior).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn conv3x3_relu(
        layer: &ConvLayer,
        side: usize,
        input: &[f32],
        output: &mut [f32],
    ) {
        let (c, cout, wp) = (layer.cin, layer.cout, side + 2);
        debug_assert_eq!(layer.weights.len(), 9 * c * cout);
        let (inp, w, out) = (input.as_ptr(), layer.weights.as_ptr(), output.as_mut_ptr());
        for cb in (0..cout).step_by(LANES) {
            // SAFETY: `bias` has `cout` values and `cb + 16 ≤ cout`.
            let bias = unsafe {
                [
                    _mm256_loadu_ps(layer.bias.as_ptr().add(cb)),
                    _mm256_loadu_ps(layer.bias.as_ptr().add(cb + 8)),
                ]
            };
            for y in 0..side {
                let mut x = 0;
                while x + PIXELS <= side {
                    // SAFETY: as the function's contract.
                    unsafe { block::<PIXELS>(inp, w, out, bias, wp, cb, y, x, c, cout) };
                    x += PIXELS;
                }
                while x < side {
                    // SAFETY: as the function's contract.
                    unsafe { block::<1>(inp, w, out, bias, wp, cb, y, x, c, cout) };
                    x += 1;
                }
            }
        }
    }

    /// `P` output pixels starting at interior `(y, x)`, channels `cb..cb + 16`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block<const P: usize>(
        inp: *const f32,
        w: *const f32,
        out: *mut f32,
        bias: [__m256; 2],
        wp: usize,
        cb: usize,
        y: usize,
        x: usize,
        c: usize,
        cout: usize,
    ) {
        let mut lo = [bias[0]; P];
        let mut hi = [bias[1]; P];
        for ky in 0..3 {
            for kx in 0..3 {
                // SAFETY (whole loop): pixel (y+ky, x+kx+p) with x+p < side lies inside the
                // bordered image; weight row (k, ci) has `cout` ≥ cb + 16 values.
                unsafe {
                    let a = inp.add(((y + ky) * wp + x + kx) * c);
                    let wk = w.add((ky * 3 + kx) * c * cout + cb);
                    for ci in 0..c {
                        let w0 = _mm256_loadu_ps(wk.add(ci * cout));
                        let w1 = _mm256_loadu_ps(wk.add(ci * cout + 8));
                        for p in 0..P {
                            let v = _mm256_broadcast_ss(&*a.add(p * c + ci));
                            lo[p] = _mm256_fmadd_ps(v, w0, lo[p]);
                            hi[p] = _mm256_fmadd_ps(v, w1, hi[p]);
                        }
                    }
                }
            }
        }
        let zero = _mm256_setzero_ps();
        for p in 0..P {
            // SAFETY: interior pixel (y+1, x+1+p), channels cb..cb+16 < cout.
            unsafe {
                let o = out.add(((y + 1) * wp + x + 1 + p) * cout + cb);
                _mm256_storeu_ps(o, _mm256_max_ps(lo[p], zero));
                _mm256_storeu_ps(o.add(8), _mm256_max_ps(hi[p], zero));
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{ConvLayer, LANES};
    use std::arch::wasm32::*;

    /// Output pixels per block: 2 pixels × 16 channels = 8 accumulators, which with the 4
    /// weight vectors stay in the 16 vector registers of the x86 machines most browsers run on
    /// (4 pixels spilled and were slower).
    const PIXELS: usize = 2;

    /// As [`super::portable::conv3x3_relu`], with 128-bit WebAssembly SIMD. Every load and
    /// store goes through a bounds-checked slice first (cheap next to the 9·cin multiply-adds
    /// of each block).
    #[target_feature(enable = "simd128")]
    pub(super) fn conv3x3_relu(layer: &ConvLayer, side: usize, input: &[f32], output: &mut [f32]) {
        let (c, cout, wp) = (layer.cin, layer.cout, side + 2);
        for cb in (0..cout).step_by(LANES) {
            let bias = load4(&layer.bias[cb..cb + LANES]);
            for y in 0..side {
                let mut x = 0;
                while x + PIXELS <= side {
                    block::<PIXELS>(layer, wp, input, output, bias, cb, y, x, c, cout);
                    x += PIXELS;
                }
                while x < side {
                    block::<1>(layer, wp, input, output, bias, cb, y, x, c, cout);
                    x += 1;
                }
            }
        }
    }

    /// Four vectors from 16 values.
    #[target_feature(enable = "simd128")]
    #[inline]
    fn load4(values: &[f32]) -> [v128; 4] {
        let v = &values[..LANES];
        // SAFETY: `v` holds 16 values; wasm loads need no alignment.
        std::array::from_fn(|i| unsafe { v128_load(v.as_ptr().add(4 * i).cast::<v128>()) })
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "simd128")]
    #[inline]
    fn block<const P: usize>(
        layer: &ConvLayer,
        wp: usize,
        input: &[f32],
        output: &mut [f32],
        bias: [v128; 4],
        cb: usize,
        y: usize,
        x: usize,
        c: usize,
        cout: usize,
    ) {
        let mut acc = [bias; P];
        for ky in 0..3 {
            for kx in 0..3 {
                let a = ((y + ky) * wp + x + kx) * c;
                let wk = (ky * 3 + kx) * c * cout + cb;
                let pixels = &input[a..a + (P - 1) * c + c];
                for ci in 0..c {
                    let w = load4(&layer.weights[wk + ci * cout..]);
                    for (p, acc) in acc.iter_mut().enumerate() {
                        let v = f32x4_splat(pixels[p * c + ci]);
                        for l in 0..4 {
                            acc[l] = f32x4_add(acc[l], f32x4_mul(v, w[l]));
                        }
                    }
                }
            }
        }
        let zero = f32x4_splat(0.0);
        for (p, acc) in acc.iter().enumerate() {
            let o = ((y + 1) * wp + x + 1 + p) * cout + cb;
            let out = &mut output[o..o + LANES];
            for (l, &v) in acc.iter().enumerate() {
                // SAFETY: `out` holds 16 values; wasm stores need no alignment.
                unsafe {
                    v128_store(
                        out.as_mut_ptr().add(4 * l).cast::<v128>(),
                        f32x4_max(v, zero),
                    )
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NetConfig;
    use crate::reference::uniform_values;
    use burn::tensor::Distribution;
    use nodulens_core::preprocess::PreprocessConfig;

    /// A network with random weights *and* non-trivial batch-norm statistics, so folding is
    /// really tested (fresh batch norm is the identity).
    fn random_net(widths: [usize; 3], device: &Device) -> Net {
        let config = NetConfig::for_preprocess(&PreprocessConfig::default())
            .with_widths(widths)
            .with_hidden(24);
        let mut net = config.init(device);
        let perturb = |norm: &mut BatchNorm, seed: u64| {
            let n = norm.gamma.dims()[0];
            device.seed(seed);
            let r =
                |lo: f64, hi: f64| Tensor::<1>::random([n], Distribution::Uniform(lo, hi), device);
            norm.gamma = burn::module::Param::from_tensor(r(0.5, 1.5));
            norm.beta = burn::module::Param::from_tensor(r(-0.3, 0.3));
            norm.running_mean = burn::module::RunningState::new(r(-0.2, 0.2));
            norm.running_var = burn::module::RunningState::new(r(0.5, 2.0));
        };
        for (i, stage) in [&mut net.stage1, &mut net.stage2, &mut net.stage3]
            .into_iter()
            .enumerate()
        {
            perturb(&mut stage.bn1, 10 + i as u64);
            perturb(&mut stage.bn2, 20 + i as u64);
        }
        net.valid()
    }

    fn compare(widths: [usize; 3]) {
        let device = Device::flex();
        let net = random_net(widths, &device);
        let patches = uniform_values(5 * PreprocessConfig::default().patch_len());
        let burn_features =
            values(net.features(net.input_tensor(&patches, &device).unwrap())).unwrap();
        let burn_p =
            values(net.probabilities(net.input_tensor(&patches, &device).unwrap())).unwrap();
        let largest = burn_features.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let cpu = CpuNet::new(&net).unwrap();
        for k in [cpu.clone(), cpu.portable()] {
            let features = k.features(&patches).unwrap();
            assert_eq!(features.len(), burn_features.len());
            for (i, (a, b)) in features.iter().zip(&burn_features).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * largest.max(1.0),
                    "{:?} feature {i}: {a} vs burn {b}",
                    k.simd
                );
            }
            let p = k.probabilities(&patches).unwrap();
            assert_eq!(p.len(), 5);
            for (a, b) in p.iter().zip(&burn_p) {
                assert!((a - b).abs() < 1e-6, "{:?}: {a} vs burn {b}", k.simd);
            }
        }
        // Real signal, not zeros: the features differ between images and channels.
        let spread = |v: &[f32]| {
            let (lo, hi) = v
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
            hi - lo
        };
        assert!(spread(&burn_features) > 0.1 * largest && largest > 0.0);
    }

    #[test]
    fn matches_burn_at_the_shipped_widths() {
        compare([16, 32, 64]);
    }

    #[test]
    fn matches_burn_when_widths_need_padding() {
        compare([4, 20, 8]);
    }

    #[test]
    fn wrong_input_length_is_an_error() {
        let device = Device::flex();
        let cpu = CpuNet::new(&random_net([4, 4, 8], &device)).unwrap();
        assert!(cpu.probabilities(&[0.0; 7]).is_err());
        assert!(cpu.probabilities(&[]).unwrap().is_empty());
    }
}
