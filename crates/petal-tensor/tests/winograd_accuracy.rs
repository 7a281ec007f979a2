//! How far the Winograd tilings F(2x2, 3x3) and F(4x4, 3x3) fall from the exact
//! convolution on the lecture's 3x3 layer shapes (MNIST CNN, flowers CNN, VGG16,
//! ResNet18), forward and both gradients, with im2col (the direct convolution in f32)
//! beside them as the floor f32 itself sets.
//!
//! Values as in training: ReLU'd inputs (`max(0, N(0, 1))`), He-initialized weights
//! (`N(0, 2 / (9 c))`), output gradients `N(0, 1)`. The exact values are f64 sums at a
//! few hundred sampled entries of each result; an entry's error is `|fast - exact|`
//! over the RMS of the exact entries (relative to the result's typical size, so that
//! entries near zero do not blow up).
//!
//! `cargo test -p petal-tensor --release --test winograd_accuracy -- --nocapture`
//! prints the whole table.

use petal_tensor::conv::{
    conv2d, conv2d_backward_filter, conv2d_backward_input, with_kernel_3x3, Kernel3x3,
};
use petal_tensor::{with_precision, Conv2dSpec, Padding, Precision, Tensor};

/// One 3x3 layer: `input` is `(n, h, w, c)`.
struct Layer {
    name: &'static str,
    input: [usize; 4],
    filters: usize,
    padding: Padding,
}

const fn layer(name: &'static str, input: [usize; 4], filters: usize, same: bool) -> Layer {
    let padding = if same { Padding::Same } else { Padding::Valid };
    Layer {
        name,
        input,
        filters,
        padding,
    }
}

/// The 3x3 stride-1 layers with at least 16 channels (the shapes Winograd takes).
const LAYERS: [Layer; 16] = [
    layer("mnist conv2 13px 32->64", [8, 13, 13, 32], 64, false),
    layer("flowers 128px 32->32", [1, 128, 128, 32], 32, true),
    layer("flowers 64px 32->64", [2, 64, 64, 32], 64, true),
    layer("flowers 32px 64->128", [4, 32, 32, 64], 128, true),
    layer("flowers 16px 128->256", [8, 16, 16, 128], 256, true),
    layer("vgg16 224px 64->64", [1, 224, 224, 64], 64, true),
    layer("vgg16 112px 64->128", [1, 112, 112, 64], 128, true),
    layer("vgg16 112px 128->128", [1, 112, 112, 128], 128, true),
    layer("vgg16 56px 128->256", [1, 56, 56, 128], 256, true),
    layer("vgg16 56px 256->256", [1, 56, 56, 256], 256, true),
    layer("vgg16 28px 256->512", [1, 28, 28, 256], 512, true),
    layer("vgg16 28px 512->512", [1, 28, 28, 512], 512, true),
    layer("vgg16 14px 512->512", [2, 14, 14, 512], 512, true),
    layer("resnet18 28px 128->128", [2, 28, 28, 128], 128, true),
    layer("resnet18 14px 256->256", [4, 14, 14, 256], 256, true),
    layer("resnet18 7px 512->512", [8, 7, 7, 512], 512, true),
];

/// Max and mean error of one result (see the module comment).
#[derive(Clone, Copy, Debug)]
struct Error {
    max: f64,
    mean: f64,
}

const KERNELS: [Kernel3x3; 3] = [
    Kernel3x3::Im2col,
    Kernel3x3::WinogradF2x2,
    Kernel3x3::WinogradF4x4,
];
const PASSES: [&str; 3] = ["forward", "input grad", "filter grad"];

/// A deterministic generator of uniform and normal values.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n - 1)
    }
    fn tensor(&mut self, shape: &[usize], value: impl Fn(&mut Self) -> f64) -> Tensor {
        let len = shape.iter().product();
        let values = (0..len).map(|_| value(self) as f32).collect();
        Tensor::from_vec(shape, values).unwrap()
    }
}

/// The layer's operands and exact values at sampled entries of its three results.
struct Case {
    x: Tensor,
    f: Tensor,
    dy: Tensor,
    spec: Conv2dSpec,
    /// For each pass, `(flat index, exact value)`.
    exact: [Vec<(usize, f64)>; 3],
}

impl Case {
    fn new(l: &Layer, seed: u64) -> Self {
        let [n, h, w, c] = l.input;
        let o = l.filters;
        let pad = usize::from(l.padding == Padding::Same);
        let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
        let mut rng = Rng(seed);
        let he = (2.0 / (9 * c) as f64).sqrt();
        let x = rng.tensor(&l.input, |r| r.normal().max(0.0));
        let f = rng.tensor(&[3, 3, c, o], |r| he * r.normal());
        let dy = rng.tensor(&[n, oh, ow, o], Rng::normal);
        let (xs, fs, dys) = (x.as_slice(), f.as_slice(), dy.as_slice());
        let xv =
            |b: usize, y: usize, x: usize, ch: usize| f64::from(xs[((b * h + y) * w + x) * c + ch]);
        let fv = |ky: usize, kx: usize, ch: usize, k: usize| {
            f64::from(fs[((ky * 3 + kx) * c + ch) * o + k])
        };
        let dyv = |b: usize, y: usize, x: usize, k: usize| {
            f64::from(dys[((b * oh + y) * ow + x) * o + k])
        };
        // Input pixel of output `out` and tap `tap` along an axis of `len` inputs.
        let at =
            |out: usize, tap: usize, len: usize| (out + tap).checked_sub(pad).filter(|&i| i < len);
        let taps = || (0..3).flat_map(|ky| (0..3).map(move |kx| (ky, kx)));
        let forward = (0..256)
            .map(|_| {
                let (b, y, xx, k) = (rng.below(n), rng.below(oh), rng.below(ow), rng.below(o));
                let mut sum = 0.0;
                for (ky, kx) in taps() {
                    if let (Some(iy), Some(ix)) = (at(y, ky, h), at(xx, kx, w)) {
                        sum += (0..c)
                            .map(|ch| xv(b, iy, ix, ch) * fv(ky, kx, ch, k))
                            .sum::<f64>();
                    }
                }
                ((((b * oh + y) * ow + xx) * o) + k, sum)
            })
            .collect();
        let input_grad = (0..256)
            .map(|_| {
                let (b, iy, ix, ch) = (rng.below(n), rng.below(h), rng.below(w), rng.below(c));
                let mut sum = 0.0;
                for (ky, kx) in taps() {
                    // Output `out` reads input `out + tap - pad`.
                    let (Some(y), Some(xx)) =
                        ((iy + pad).checked_sub(ky), (ix + pad).checked_sub(kx))
                    else {
                        continue;
                    };
                    if y < oh && xx < ow {
                        sum += (0..o)
                            .map(|k| dyv(b, y, xx, k) * fv(ky, kx, ch, k))
                            .sum::<f64>();
                    }
                }
                ((((b * h + iy) * w + ix) * c) + ch, sum)
            })
            .collect();
        let filter_grad = (0..64)
            .map(|_| {
                let (ky, kx, ch, k) = (rng.below(3), rng.below(3), rng.below(c), rng.below(o));
                let mut sum = 0.0;
                for b in 0..n {
                    for y in 0..oh {
                        for xx in 0..ow {
                            if let (Some(iy), Some(ix)) = (at(y, ky, h), at(xx, kx, w)) {
                                sum += xv(b, iy, ix, ch) * dyv(b, y, xx, k);
                            }
                        }
                    }
                }
                ((((ky * 3 + kx) * c + ch) * o) + k, sum)
            })
            .collect();
        let spec = Conv2dSpec {
            padding: l.padding,
            ..Conv2dSpec::default()
        };
        Self {
            x,
            f,
            dy,
            spec,
            exact: [forward, input_grad, filter_grad],
        }
    }

    /// `kernel`'s three results.
    fn results(&self, kernel: Kernel3x3) -> [Tensor; 3] {
        self.results_in(kernel, Precision::F32)
    }

    /// `kernel`'s three results with products in `precision`.
    fn results_in(&self, kernel: Kernel3x3, precision: Precision) -> [Tensor; 3] {
        let (x, f, dy, spec) = (&self.x, &self.f, &self.dy, &self.spec);
        with_precision(precision, || {
            with_kernel_3x3(kernel, || {
                [
                    conv2d(x, f, None, spec),
                    conv2d_backward_input(dy, f, x.shape(), spec),
                    conv2d_backward_filter(x, dy, f.shape(), spec),
                ]
            })
        })
        .map(Result::unwrap)
    }

    /// The errors of three results.
    fn errors(&self, results: &[Tensor; 3]) -> [Error; 3] {
        std::array::from_fn(|pass| {
            let fast = results[pass].as_slice();
            let exact = &self.exact[pass];
            let rms = (exact.iter().map(|(_, e)| e * e).sum::<f64>() / exact.len() as f64).sqrt();
            let errors: Vec<f64> = exact
                .iter()
                .map(|&(i, e)| (f64::from(fast[i]) - e).abs() / rms)
                .collect();
            Error {
                max: errors.iter().copied().fold(0.0, f64::max),
                mean: errors.iter().sum::<f64>() / errors.len() as f64,
            }
        })
    }
}

/// One layer's errors, `[kernel][pass]`, and for each pass whether F(4x4)'s result
/// is bit for bit F(2x2)'s or im2col's (a sign that it fell back to one of them).
fn study(l: &Layer, seed: u64) -> ([[Error; 3]; 3], [bool; 3]) {
    let case = Case::new(l, seed);
    let [im2col, f2x2, f4x4] = KERNELS.map(|k| case.results(k));
    let copied = std::array::from_fn(|pass| {
        let f4 = f4x4[pass].as_slice();
        f4 == f2x2[pass].as_slice() || f4 == im2col[pass].as_slice()
    });
    ([&im2col, &f2x2, &f4x4].map(|r| case.errors(r)), copied)
}

/// The direct f32 sum keeps about 20 of f32's 24 bits here (largest error 2⁻²⁰ of the
/// result's RMS). F(2x2) only adds and halves: it must keep 16 bits. F(4x4)'s weights
/// (up to 8 and 1/24) cost more: it must keep 12 bits, 4 more than bf16 arithmetic
/// (2⁻⁸ per product), which a bf16 training path accepts. Neither bound is set from
/// F(2x2)'s or F(4x4)'s own errors (measured at least 5x and 8x below them).
const F2X2_MAX: f64 = 1.0 / 65536.0;
const F4X4_MAX: f64 = 1.0 / 4096.0;

#[test]
fn winograd_errors_stay_within_bounds() {
    let studies: Vec<_> = (1..).zip(&LAYERS).map(|(seed, l)| study(l, seed)).collect();
    println!("| layer | pass | im2col max / mean | F(2x2) max / mean | F(4x4) max / mean |");
    println!("|---|---|---|---|---|");
    for (l, (kernels, _)) in LAYERS.iter().zip(&studies) {
        for (pass, name) in PASSES.iter().enumerate() {
            let cells: Vec<String> = kernels
                .iter()
                .map(|k| format!("{:.1e} / {:.1e}", k[pass].max, k[pass].mean))
                .collect();
            println!(
                "| {} {:?} | {name} | {} |",
                l.name,
                l.input,
                cells.join(" | ")
            );
        }
    }
    for (l, ([im2col, f2x2, f4x4], copied)) in LAYERS.iter().zip(&studies) {
        for pass in 0..3 {
            let what = format!("{} {}", l.name, PASSES[pass]);
            assert!(
                im2col[pass].max < F2X2_MAX,
                "{what}: im2col {:?}",
                im2col[pass]
            );
            assert!(f2x2[pass].max < F2X2_MAX, "{what}: F(2x2) {:?}", f2x2[pass]);
            assert!(f4x4[pass].max < F4X4_MAX, "{what}: F(4x4) {:?}", f4x4[pass]);
            assert!(
                !copied[pass],
                "{what}: F(4x4)'s result is bit for bit F(2x2)'s or im2col's"
            );
        }
    }
}

/// im2col with bf16 factors rounds each product's factors (2⁻⁹ each): it must keep 6
/// bits of the result (measured at most 1.0e-2 of the RMS). F(2x2) with its element-wise
/// stage in bf16 rounds the transformed tiles and filters, whose sums of up to four
/// values carry more: it must keep 5 bits (measured at most 1.6e-2), in all three
/// passes. F(4x4) stays f32 in bf16 (rounding its stage left errors up to 0.26 of the
/// RMS, 4.7e-2 for the filter gradient).
const IM2COL_BF16_MAX: f64 = 1.0 / 64.0;
const F2X2_BF16_MAX: f64 = 1.0 / 32.0;

#[test]
fn bf16_errors_stay_within_bounds() {
    if let Err(e) = Precision::Bf16.supported() {
        println!("skipped: {e}");
        return;
    }
    println!("| layer | pass | im2col bf16 max / mean | F(2x2) bf16 max / mean |");
    println!("|---|---|---|---|");
    for (seed, l) in (1..).zip(&LAYERS) {
        let case = Case::new(l, seed);
        let bf16 = KERNELS.map(|kernel| case.results_in(kernel, Precision::Bf16));
        let f32 = KERNELS.map(|kernel| case.results(kernel));
        let errors = bf16.each_ref().map(|r| case.errors(r));
        for (pass, name) in PASSES.iter().enumerate() {
            let cells: Vec<String> = errors[..2]
                .iter()
                .map(|e| format!("{:.1e} / {:.1e}", e[pass].max, e[pass].mean))
                .collect();
            println!("| {} | {name} | {} |", l.name, cells.join(" | "));
            let what = format!("{} {name}", l.name);
            let [im2col, f2x2, _] = errors.map(|e| e[pass]);
            assert!(
                im2col.max < IM2COL_BF16_MAX,
                "{what}: im2col in bf16 {im2col:?}"
            );
            assert!(f2x2.max < F2X2_BF16_MAX, "{what}: F(2x2) in bf16 {f2x2:?}");
            for (kernel, rounds) in [(1, true), (2, false)] {
                let rounded = bf16[kernel][pass].as_slice() != f32[kernel][pass].as_slice();
                assert_eq!(rounded, rounds, "{what}: {:?} in bf16", KERNELS[kernel]);
            }
        }
    }
}
