//! The fast paths against a plain seven-loop reference, on random geometries and on
//! one and two threads.

use proptest::prelude::*;

use super::*;
use crate::elementwise::Unary;
use crate::pool::max_pool2d_backward;
use crate::{with_precision, within_bf16_rounding};

/// Visits every (n, oy, ox, o, ky, kx, ci) term of the convolution sum as flat indices
/// (input, filter, output), skipping padding.
fn reference_terms(s: &ConvShape, mut visit: impl FnMut(usize, usize, usize)) {
    let (cg, og) = (s.group_channels(), s.group_filters());
    for n in 0..s.batch {
        for oy in 0..s.rows.output {
            for ox in 0..s.cols.output {
                for o in 0..s.filters {
                    let g = o / og;
                    for ky in 0..s.rows.kernel {
                        for kx in 0..s.cols.kernel {
                            let (Some(iy), Some(ix)) =
                                (s.rows.input_index(oy, ky), s.cols.input_index(ox, kx))
                            else {
                                continue;
                            };
                            for ci in 0..cg {
                                let xi = ((n * s.rows.input + iy) * s.cols.input + ix) * s.channels
                                    + g * cg
                                    + ci;
                                let fi = ((ky * s.cols.kernel + kx) * cg + ci) * s.filters + o;
                                let yi =
                                    ((n * s.rows.output + oy) * s.cols.output + ox) * s.filters + o;
                                visit(xi, fi, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The output, input gradient and filter gradient by [`reference_terms`].
fn reference(s: &ConvShape, x: &Tensor, f: &Tensor, dy: &Tensor) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (x, f, dy) = (x.as_slice(), f.as_slice(), dy.as_slice());
    let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; f.len()]);
    reference_terms(s, |xi, fi, yi| {
        y[yi] += x[xi] * f[fi];
        dx[xi] += dy[yi] * f[fi];
        dw[fi] += dy[yi] * x[xi];
    });
    (y, dx, dw)
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0
                - 1.0
        })
        .collect()
}

fn assert_close(fast: &Tensor, reference: &[f32], what: &str) {
    for (i, (a, b)) in fast.as_slice().iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{what}[{i}]: fast {a} vs reference {b}"
        );
    }
}

/// The input, filter and output gradient every test of shape `s` uses ([`values`] with
/// seeds 1, 2 and 3).
fn operands(s: &ConvShape) -> (Tensor, Tensor, Tensor) {
    let tensor = |shape: [usize; 4], seed| {
        Tensor::from_vec(&shape, values(shape.iter().product(), seed)).unwrap()
    };
    (
        tensor(s.input_shape(), 1),
        tensor(s.filter_shape(), 2),
        tensor(s.output_shape(), 3),
    )
}

/// `Padding::Explicit` from `[top, bottom, left, right]`.
fn explicit([top, bottom, left, right]: [usize; 4]) -> Padding {
    Padding::Explicit {
        top,
        bottom,
        left,
        right,
    }
}

fn check_against_reference(
    input: [usize; 4],
    filter: [usize; 4],
    spec: Conv2dSpec,
    threads: usize,
) {
    check_kernel(input, filter, spec, threads, Kernel3x3::Auto);
}

/// [`check_against_reference`] with the 3x3 convolutions computed by `kernel`.
fn check_kernel(
    input: [usize; 4],
    filter: [usize; 4],
    spec: Conv2dSpec,
    threads: usize,
    kernel: Kernel3x3,
) {
    let s = ConvShape::new(&input, &filter, &spec).unwrap();
    let (x, f, dy) = operands(&s);
    let (y, dx, dw) = reference(&s, &x, &f, &dy);
    let pool = crate::parallel::pool_of(threads);
    // With a bias and a fused ReLU, and the bias gradient (per-filter sums of `dy`).
    let o = filter[3];
    let b = Tensor::from_vec(&[o], values(o, 4)).unwrap();
    let activated: Vec<f32> = y
        .iter()
        .enumerate()
        .map(|(i, y)| (y + b.as_slice()[i % o]).max(0.0))
        .collect();
    let mut db = vec![0.0; o];
    for (i, g) in dy.as_slice().iter().enumerate() {
        db[i % o] += g;
    }
    pool.install(|| {
        with_kernel_3x3(kernel, || {
            assert_close(&conv2d(&x, &f, None, &spec).unwrap(), &y, "forward");
            assert_bias_adds(&x, &f, &b, &spec);
            let fused = conv2d_activated(&x, &f, Some(&b), &spec, Unary::Relu).unwrap();
            assert_close(&fused, &activated, "bias + ReLU");
            assert_pooling_fuses(&x, &f, Some(&b), &spec, Some(Unary::Relu));
            assert_prepared_matches(&x, &f, Some(&b), &spec);
            assert_close(&conv2d_backward_bias(&dy).unwrap(), &db, "bias grad");
            assert_close(
                &conv2d_backward_input(&dy, &f, &input, &spec).unwrap(),
                &dx,
                "input grad",
            );
            assert_close(
                &conv2d_backward_filter(&x, &dy, &filter, &spec).unwrap(),
                &dw,
                "filter grad",
            );
        })
    });
}

/// [`conv2d_max_pooled`] gives the same bits as the convolution then the pooling, for
/// 2x2 windows (Keras' `MaxPooling2D()`) and overlapping 3x3 windows of stride 2, both
/// 'same' so that any output size pools; so does its filter gradient
/// ([`conv2d_max_pooled_backward_filter`], routing bands of rows on the small-patch path
/// under the 2x2 windows) against the filter gradient of the routed gradient.
fn assert_pooling_fuses(
    x: &Tensor,
    f: &Tensor,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
    activation: Option<Unary>,
) {
    let y = convolve(x, Filter::plain(f), bias, spec, activation).unwrap();
    for pool in [
        Pool2dSpec {
            padding: Padding::Same,
            ..Pool2dSpec::square(2)
        },
        Pool2dSpec {
            stride: [2, 2],
            padding: Padding::Same,
            ..Pool2dSpec::square(3)
        },
    ] {
        let (want, want_at) = max_pool2d(&y, &pool).unwrap();
        let (got, got_at) = conv2d_max_pooled(x, f, bias, spec, activation, &pool).unwrap();
        assert_eq!(got.shape(), want.shape(), "{pool:?}");
        assert_eq!(got.to_vec(), want.to_vec(), "pooled values, {pool:?}");
        assert_eq!(got_at, want_at, "argmax, {pool:?}");
        let grads = (0..got.len())
            .map(|i| ((i * 7919) % 13) as f32 - 6.0)
            .collect();
        let dy = Tensor::from_vec(got.shape(), grads).unwrap();
        let routed = max_pool2d_backward(&dy, &got_at, y.shape(), &pool).unwrap();
        let want = conv2d_backward_filter(x, &routed, f.shape(), spec).unwrap();
        let got = conv2d_max_pooled_backward_filter(x, &dy, &got_at, f.shape(), spec, &pool);
        assert_eq!(
            got.unwrap().to_vec(),
            want.to_vec(),
            "filter gradient, {pool:?}"
        );
    }
}

/// The banded filter gradient of a first layer fused with its pooling, over images of
/// several bands (128 positions a band: 3 rows of 40 columns), under a pooling padded
/// before, on one and two threads, and with no filters at all.
#[test]
fn a_first_layer_routes_its_pooled_gradient_band_by_band() {
    let spec = Conv2dSpec {
        padding: Padding::Same,
        ..Conv2dSpec::default()
    };
    let pool = Pool2dSpec {
        padding: explicit([1, 0, 1, 0]),
        ..Pool2dSpec::square(2)
    };
    for filters in [8, 0] {
        let s = ConvShape::new(&[3, 13, 40, 3], &[3, 3, 3, filters], &spec).unwrap();
        assert_eq!(s.path(), ConvPath::SmallPatch);
        let (x, f, _) = operands(&s);
        for threads in [1, 2] {
            crate::parallel::pool_of(threads).install(|| {
                let relu = Some(Unary::Relu);
                let (y, at) = conv2d_max_pooled(&x, &f, None, &spec, relu, &pool).unwrap();
                let dy = Tensor::from_vec(y.shape(), values(y.len(), 4)).unwrap();
                let routed = max_pool2d_backward(&dy, &at, &s.output_shape(), &pool).unwrap();
                let want = conv2d_backward_filter(&x, &routed, f.shape(), &spec).unwrap();
                let got = conv2d_max_pooled_backward_filter(&x, &dy, &at, f.shape(), &spec, &pool);
                let case = format!("{filters} filters, {threads} threads");
                assert_eq!(got.unwrap().to_vec(), want.to_vec(), "{case}");
            });
        }
    }
}

/// A [`PreparedFilter`] gives the same bits as the unprepared calls: the convolution,
/// with a ReLU, and max pooled.
fn assert_prepared_matches(x: &Tensor, f: &Tensor, bias: Option<&Tensor>, spec: &Conv2dSpec) {
    let prepared = PreparedFilter::new(f.clone(), spec).unwrap();
    let plain = convolve(x, Filter::plain(f), bias, spec, None).unwrap();
    let got = prepared.conv2d(x, bias, None).unwrap();
    assert_eq!(got.to_vec(), plain.to_vec(), "prepared");
    let relu = conv2d_activated(x, f, bias, spec, Unary::Relu).unwrap();
    let got = prepared.conv2d(x, bias, Some(Unary::Relu)).unwrap();
    assert_eq!(got.to_vec(), relu.to_vec(), "prepared, ReLU");
    let pool = Pool2dSpec {
        padding: Padding::Same,
        ..Pool2dSpec::square(2)
    };
    let want = conv2d_max_pooled(x, f, bias, spec, Some(Unary::Relu), &pool).unwrap();
    let got = prepared
        .conv2d_max_pooled(x, bias, Some(Unary::Relu), &pool)
        .unwrap();
    assert_eq!(
        (got.0.to_vec(), got.1),
        (want.0.to_vec(), want.1),
        "prepared, pooled"
    );
}

fn padding_strategy() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0..3usize, 0..3usize, 0..3usize, 0..3usize).prop_map(|(top, bottom, left, right)| {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_path_matches_the_reference(
        n in 1..4usize, h in 1..9usize, w in 1..9usize, groups in 1..4usize, cg in 1..4usize, og in 1..4usize,
        kh in 1..4usize, kw in 1..4usize, sh in 1..3usize, sw in 1..3usize, dh in 1..3usize, dw in 1..3usize,
        padding in padding_strategy(), threads in 1..3usize,
    ) {
        let spec = Conv2dSpec { stride: [sh, sw], padding, dilation: [dh, dw], groups };
        let (input, filter) = ([n, h, w, groups * cg], [kh, kw, cg, groups * og]);
        prop_assume!(ConvShape::new(&input, &filter, &spec).is_ok());
        check_against_reference(input, filter, spec, threads);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Both Winograd tilings over sizes that are and are not multiples of their tiles
    /// (tiles hanging over the edge), every padding a 3x3 window allows, and channel
    /// counts past the threshold.
    #[test]
    fn winograd_matches_the_reference(
        n in 1..3usize, h in 1..14usize, w in 1..14usize, c in 16..21usize, o in 16..19usize,
        padding in padding_strategy(), threads in 1..3usize,
        kernel in prop_oneof![Just(Kernel3x3::WinogradF2x2), Just(Kernel3x3::WinogradF4x4)],
    ) {
        let spec = Conv2dSpec { padding, ..Conv2dSpec::default() };
        let (input, filter) = ([n, h, w, c], [3, 3, c, o]);
        let Ok(shape) = ConvShape::new(&input, &filter, &spec) else {
            return Ok(());
        };
        prop_assert_eq!(shape.path(), ConvPath::Winograd(winograd::Tile::F2));
        check_kernel(input, filter, spec, threads, kernel);
    }
}

/// A filter prepared while one 3x3 kernel was chosen, run while another is: each pass
/// gives that kernel's numbers (the prepared matrices are used only by their tiling).
#[test]
fn a_filter_prepared_for_one_kernel_runs_with_another() {
    let spec = Conv2dSpec::default();
    let s = ConvShape::new(&[2, 9, 9, 32], &[3, 3, 32, 32], &spec).unwrap();
    let (x, f, _) = operands(&s);
    let kernels = [
        Kernel3x3::Im2col,
        Kernel3x3::WinogradF2x2,
        Kernel3x3::WinogradF4x4,
    ];
    for prepared_with in kernels {
        let prepared =
            with_kernel_3x3(prepared_with, || PreparedFilter::new(f.clone(), &spec)).unwrap();
        assert_eq!(prepared.filter().to_vec(), f.to_vec());
        for run_with in kernels {
            with_kernel_3x3(run_with, || {
                let want = conv2d(&x, &f, None, &spec).unwrap();
                let got = prepared.conv2d(&x, None, None).unwrap();
                assert_eq!(
                    got.to_vec(),
                    want.to_vec(),
                    "{prepared_with:?} run with {run_with:?}"
                );
            });
        }
    }
    let err = PreparedFilter::new(Tensor::zeros(&[3, 3, 32]), &spec)
        .err()
        .unwrap();
    assert!(err.to_string().contains("filter 4-D"), "{err}");
}

/// Whether this CPU runs bf16; when it does not, prints that the test skipped.
fn bf16_runs_here() -> bool {
    let supported = Precision::Bf16.supported();
    if let Err(e) = &supported {
        println!("skipped: {e}");
    }
    supported.is_ok()
}

/// In bf16, wide layers take F(2x2) with its stage in bf16; narrow ones keep F(4x4) (see
/// `choice.rs`).
#[test]
fn bf16_takes_f2x2_for_wide_layers() {
    if !bf16_runs_here() {
        return;
    }
    let spec = Conv2dSpec::default();
    let path = |c: usize, o: usize, precision| {
        with_precision(precision, || {
            ConvShape::new(&[1, 9, 9, c], &[3, 3, c, o], &spec)
                .unwrap()
                .path()
        })
    };
    use winograd::Tile::{F2, F4};
    assert_eq!(path(256, 256, Precision::Bf16), ConvPath::Winograd(F2));
    assert_eq!(path(128, 256, Precision::Bf16), ConvPath::Winograd(F2));
    assert_eq!(path(128, 128, Precision::Bf16), ConvPath::Winograd(F4));
    assert_eq!(path(32, 64, Precision::Bf16), ConvPath::Winograd(F4));
    assert_eq!(path(256, 256, Precision::F32), ConvPath::Winograd(F4));
    let forced = with_kernel_3x3(Kernel3x3::WinogradF2x2, || path(32, 64, Precision::Bf16));
    assert_eq!(forced, ConvPath::Winograd(F2));
}

/// A filter prepared in one precision and run in another gives the numbers of the
/// precision it runs in, and says whether it is current.
#[test]
fn a_filter_prepared_in_one_precision_runs_in_another() {
    if !bf16_runs_here() {
        return;
    }
    let spec = Conv2dSpec::default();
    let s = ConvShape::new(&[2, 9, 9, 32], &[3, 3, 32, 32], &spec).unwrap();
    let (x, f, _) = operands(&s);
    let precisions = [Precision::F32, Precision::Bf16];
    with_kernel_3x3(Kernel3x3::WinogradF2x2, || {
        for prepared_in in precisions {
            let prepared =
                with_precision(prepared_in, || PreparedFilter::new(f.clone(), &spec)).unwrap();
            for run_in in precisions {
                with_precision(run_in, || {
                    let want = conv2d(&x, &f, None, &spec).unwrap();
                    let got = prepared.conv2d(&x, None, None).unwrap();
                    let what = format!("prepared in {prepared_in}, run in {run_in}");
                    assert_eq!(got.to_vec(), want.to_vec(), "{what}");
                    assert_eq!(prepared.is_current(), prepared_in == run_in, "{what}");
                });
            }
        }
        let exact = conv2d(&x, &f, None, &spec).unwrap();
        let rounded = with_precision(Precision::Bf16, || conv2d(&x, &f, None, &spec)).unwrap();
        assert_ne!(exact.to_vec(), rounded.to_vec(), "no bf16 stage ran");
    });
}

/// In bf16, a filter prepared on the im2col or 1x1 path holds its packed matrices: the
/// same bits as unprepared calls in bf16, and current only in bf16.
#[test]
fn filters_prepared_in_bf16_on_the_im2col_and_1x1_paths_give_the_same_bits() {
    if !bf16_runs_here() {
        return;
    }
    for (input, filter, spec) in bf16_product_cases() {
        let s = ConvShape::new(&input, &filter, &spec).unwrap();
        let (x, f, _) = operands(&s);
        assert!(!PreparedFilter::worth_preparing(&filter, &spec));
        let prepared = with_precision(Precision::Bf16, || {
            assert!(PreparedFilter::worth_preparing(&filter, &spec));
            PreparedFilter::new(f.clone(), &spec)
        })
        .unwrap();
        with_precision(Precision::Bf16, || {
            let want = conv2d(&x, &f, None, &spec).unwrap();
            let got = prepared.conv2d(&x, None, None).unwrap();
            assert_eq!(got.to_vec(), want.to_vec(), "{filter:?}");
            assert!(prepared.is_current(), "{filter:?}");
        });
        let want = conv2d(&x, &f, None, &spec).unwrap();
        let got = prepared.conv2d(&x, None, None).unwrap();
        assert_eq!(got.to_vec(), want.to_vec(), "{filter:?} in f32");
        assert!(!prepared.is_current(), "{filter:?} in f32");
    }
}

/// Winograd over groups of images: a 28x28 output is 49 F(4x4) tiles, so the forward
/// pass and the filter gradient take 3 images at a time (7 images on one thread as
/// 3 + 3 + 1, on two as 3 + 1 and 3) and the input gradient (64 tiles) 2 at a time.
#[test]
fn winograd_on_groups_of_images_matches_the_reference() {
    check_winograd_passes([7, 30, 30, 16], [3, 3, 16, 16]);
}

/// Winograd in bands of one image's tiles: at 64 channels and filters an F(4x4) tile
/// and its products take 18 KiB, so the 100 tiles of a 38x38 output (the last row and
/// column of tiles hanging over the edge) go in bands of 56 and 44 (`winograd::tests`
/// pins the band), forward and input gradient.
#[test]
fn winograd_in_bands_of_one_images_tiles_matches_the_reference() {
    check_winograd_passes([1, 38, 38, 64], [3, 3, 64, 64]);
}

/// Winograd on the whole batch's tiles at once: 344 channels and filters make 16.3 MiB
/// of transformed F(4x4) filters, and a 6x6 output is 4 tiles an image, so all three
/// passes take the whole batch (`winograd::tests` pins the choice for this shape).
#[test]
fn winograd_on_the_whole_batch_matches_the_reference() {
    check_winograd_passes([3, 8, 8, 344], [3, 3, 344, 344]);
}

/// The output with the bias `b` is the output without it plus `b`, within rounding (a
/// kernel may start from the bias and add its sums, or add the bias to them).
fn assert_bias_adds(x: &Tensor, f: &Tensor, b: &Tensor, spec: &Conv2dSpec) {
    let plain = conv2d(x, f, None, spec).unwrap();
    let biased = conv2d(x, f, Some(b), spec).unwrap();
    let o = b.len();
    let want: Vec<f32> = (plain.as_slice().iter().enumerate())
        .map(|(i, v)| v + b.as_slice()[i % o])
        .collect();
    assert_eq!(biased.shape(), plain.shape());
    assert_close(&biased, &want, "bias");
}

/// An empty batch on the whole-batch path (its shape alone would take it): an empty
/// output and input gradient, a zero filter gradient.
#[test]
fn winograd_on_an_empty_whole_batch_gives_empty_outputs_and_zero_filter_sums() {
    let (input, filter, spec) = ([0, 8, 8, 344], [3, 3, 344, 344], Conv2dSpec::default());
    let (x, f) = (Tensor::zeros(&input), Tensor::ones(&filter));
    let dy = Tensor::zeros(&[0, 6, 6, 344]);
    with_kernel_3x3(Kernel3x3::WinogradF4x4, || {
        assert_eq!(conv2d(&x, &f, None, &spec).unwrap().shape(), [0, 6, 6, 344]);
        let dx = conv2d_backward_input(&dy, &f, &input, &spec).unwrap();
        assert_eq!(dx.shape(), input);
        let dw = conv2d_backward_filter(&x, &dy, &filter, &spec).unwrap();
        assert!(dw.as_slice().iter().all(|&v| v == 0.0));
    });
}

/// F(4x4)'s three passes on 1 and 2 threads against the direct sums. The filter
/// gradient sums thousands of products per value, so the bound is the module's,
/// relative to the results' RMS (2⁻¹², as in `tests/winograd_accuracy.rs`), not
/// [`assert_close`]'s per value.
fn check_winograd_passes(input: [usize; 4], filter: [usize; 4]) {
    let spec = Conv2dSpec::default();
    let s = ConvShape::new(&input, &filter, &spec).unwrap();
    let (x, f, dy) = operands(&s);
    let (y, dx, dw) = reference(&s, &x, &f, &dy);
    for threads in [1, 2] {
        let pool = crate::parallel::pool_of(threads);
        let passes = pool.install(|| {
            with_kernel_3x3(Kernel3x3::WinogradF4x4, || {
                assert_pooling_fuses(&x, &f, None, &spec, None);
                assert_prepared_matches(&x, &f, None, &spec);
                // With a bias and a ReLU too, as a network's layers have them.
                let b = Tensor::from_vec(&[filter[3]], values(filter[3], 4)).unwrap();
                assert_bias_adds(&x, &f, &b, &spec);
                assert_pooling_fuses(&x, &f, Some(&b), &spec, Some(Unary::Relu));
                assert_prepared_matches(&x, &f, Some(&b), &spec);
                [
                    conv2d(&x, &f, None, &spec).unwrap(),
                    conv2d_backward_input(&dy, &f, &input, &spec).unwrap(),
                    conv2d_backward_filter(&x, &dy, &filter, &spec).unwrap(),
                ]
            })
        });
        for ((fast, want), name) in
            passes
                .iter()
                .zip([&y, &dx, &dw])
                .zip(["output", "input grad", "filter grad"])
        {
            let rms = (want.iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
            let worst = fast
                .as_slice()
                .iter()
                .zip(want.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst <= rms / 4096.0,
                "{name}, {threads} threads: error {worst} against RMS {rms}"
            );
        }
    }
}

/// im2col's forward pass in blocks of output positions: a 5x5 patch of 3 channels a
/// group is 75 values, so a block is 873 positions; 34x29 outputs make 986 (a block
/// and a shorter one), in 2 groups, with padding on every side, on 1 and 2 threads.
/// ResNet's 7x7 stem on RGB (runs of 21 values, copied inline by its filter gradient and
/// by its small-patch forward pass at the borders), and 7x7 on 5 channels (runs of 35),
/// whose forward pass takes blocks of 267 positions. Images of 12 outputs
/// a block of several images (5 on one thread; 3 and 2 on two), in 2 groups.
#[test]
fn im2col_in_blocks_of_positions_matches_the_reference() {
    let spec = Conv2dSpec {
        padding: Padding::Same,
        groups: 2,
        ..Conv2dSpec::default()
    };
    let s = ConvShape::new(&[2, 34, 29, 6], &[5, 5, 3, 4], &spec).unwrap();
    assert_eq!(s.path(), ConvPath::Im2col);
    assert_eq!((im2col::block_positions(&s), s.positions()), (873, 986));
    let stem = Conv2dSpec {
        stride: [2, 2],
        padding: explicit([3, 3, 3, 3]),
        ..Conv2dSpec::default()
    };
    let s = ConvShape::new(&[1, 64, 60, 3], &[7, 7, 3, 8], &stem).unwrap();
    assert_eq!(s.forward_path(), ConvPath::SmallPatch);
    let s = ConvShape::new(&[1, 64, 60, 5], &[7, 7, 5, 8], &stem).unwrap();
    assert_eq!(s.forward_path(), ConvPath::Im2col);
    assert_eq!((im2col::block_positions(&s), s.positions()), (267, 960));
    let small_images = Conv2dSpec {
        stride: [2, 2],
        padding: Padding::Same,
        groups: 2,
        ..Conv2dSpec::default()
    };
    let s = ConvShape::new(&[5, 7, 6, 8], &[3, 3, 4, 6], &small_images).unwrap();
    assert_eq!(s.forward_path(), ConvPath::Im2col);
    for threads in [1, 2] {
        check_against_reference([2, 34, 29, 6], [5, 5, 3, 4], spec, threads);
        check_against_reference([1, 64, 60, 3], [7, 7, 3, 8], stem, threads);
        check_against_reference([1, 64, 60, 5], [7, 7, 5, 8], stem, threads);
        let images = crate::parallel::pool_of(threads).install(|| im2col::images_per_block(&s));
        assert_eq!(images, [5, 3][threads - 1]);
        check_against_reference([5, 7, 6, 8], [3, 3, 4, 6], small_images, threads);
    }
}

/// The small-patch forward pass reads the patches of 8 positions in one output row in
/// place when their windows lie inside the image, and unrolls the others (padding, a
/// wrap to the next row, a last short block): rows 40 wide take both kinds, with
/// 'same' padding, stride 2 with dilation 2, uneven explicit padding, and RGB.
#[test]
fn small_patches_read_in_place_match_the_reference() {
    let cases = [
        ([2, 6, 40, 1], [3, 3, 1, 32], same_padding()),
        ([2, 6, 37, 3], [3, 3, 3, 17], Conv2dSpec::default()),
        // Rows wider than a block of the filter gradient: one output row a block.
        ([1, 4, 131, 2], [3, 3, 2, 16], same_padding()),
        (
            [1, 9, 40, 2],
            [3, 2, 2, 16],
            Conv2dSpec {
                stride: [2, 2],
                dilation: [2, 2],
                ..Conv2dSpec::default()
            },
        ),
        (
            [2, 5, 44, 3],
            [2, 3, 3, 8],
            Conv2dSpec {
                padding: explicit([2, 0, 0, 3]),
                ..Conv2dSpec::default()
            },
        ),
    ];
    for (input, filter, spec) in cases {
        let shape = ConvShape::new(&input, &filter, &spec).unwrap();
        assert_eq!(shape.path(), ConvPath::SmallPatch, "{input:?} {filter:?}");
        for threads in [1, 2] {
            check_against_reference(input, filter, spec, threads);
        }
    }
}

/// First layers on images with patches longer than the small-patch path's take its
/// forward kernel (their gradients im2col), and with 64 filters or more the kernel
/// gives each patch value to four vectors of filters at once (AVX-512), then to pairs,
/// single vectors and single filters: ResNet's 7x7 stride-2 stem on RGB, 5x5 on four
/// channels with 80 filters, 100 filters under uneven padding, 5x5 on RGB with 116 (four
/// vectors, a pair, one and 4 filters), 9x9 on grey with 96, and a short RGB patch with
/// 64.
#[test]
fn first_layers_with_long_patches_take_the_small_patch_forward_kernel() {
    let stride_2 = Conv2dSpec {
        stride: [2, 2],
        padding: Padding::Same,
        ..Conv2dSpec::default()
    };
    let uneven = Conv2dSpec {
        padding: explicit([3, 1, 0, 2]),
        ..Conv2dSpec::default()
    };
    let cases = [
        ([2, 23, 30, 3], [7, 7, 3, 64], stride_2, ConvPath::Im2col),
        (
            [1, 11, 19, 4],
            [5, 5, 4, 80],
            Conv2dSpec::default(),
            ConvPath::Im2col,
        ),
        ([1, 9, 14, 3], [7, 7, 3, 100], uneven, ConvPath::Im2col),
        (
            [1, 10, 13, 3],
            [5, 5, 3, 116],
            Conv2dSpec::default(),
            ConvPath::Im2col,
        ),
        (
            [2, 12, 21, 1],
            [9, 9, 1, 96],
            same_padding(),
            ConvPath::Im2col,
        ),
        (
            [2, 6, 40, 3],
            [3, 3, 3, 64],
            same_padding(),
            ConvPath::SmallPatch,
        ),
    ];
    for (input, filter, spec, gradients) in cases {
        let shape = ConvShape::new(&input, &filter, &spec).unwrap();
        assert_eq!(shape.path(), gradients, "{input:?} {filter:?}");
        assert_eq!(
            shape.forward_path(),
            ConvPath::SmallPatch,
            "{input:?} {filter:?}"
        );
        for threads in [1, 2] {
            check_against_reference(input, filter, spec, threads);
        }
    }
    // Five channels, or a patch over 160 values, stay on im2col.
    for filter in [[3, 3, 5, 64], [9, 9, 2, 64]] {
        let shape = ConvShape::new(&[1, 12, 12, filter[2]], &filter, &same_padding()).unwrap();
        assert_eq!(shape.forward_path(), ConvPath::Im2col, "{filter:?}");
    }
}

fn same_padding() -> Conv2dSpec {
    Conv2dSpec {
        padding: Padding::Same,
        ..Conv2dSpec::default()
    }
}

#[test]
fn each_fast_path_is_taken_and_correct() {
    let pointwise = ConvShape::new(&[2, 4, 4, 3], &[1, 1, 3, 5], &Conv2dSpec::default()).unwrap();
    assert_eq!(pointwise.path(), ConvPath::Pointwise);
    check_against_reference([2, 4, 4, 3], [1, 1, 3, 5], Conv2dSpec::default(), 2);
    // The forward pass in row blocks: 765 short rows make one block per thread (383 +
    // 382 rows on 2); 800 rows of 764 values make blocks of the 192-row floor, 5 of
    // them, evened out (160 rows on 1 thread; 6 blocks of 134 on 2 or 3, the last 130).
    for (threads, rows) in [(1, [765, 160]), (2, [383, 134]), (3, [255, 134])] {
        let pool = crate::parallel::pool_of(threads);
        let blocks = pool.install(|| {
            [
                pointwise::block_rows(765, 12),
                pointwise::block_rows(800, 764),
            ]
        });
        assert_eq!(blocks, rows, "{threads} threads");

        check_against_reference([3, 15, 17, 5], [1, 1, 5, 7], Conv2dSpec::default(), threads);
        check_against_reference(
            [2, 20, 20, 64],
            [1, 1, 64, 700],
            Conv2dSpec::default(),
            threads,
        );
    }
    let depthwise = Conv2dSpec {
        groups: 6,
        padding: Padding::Same,
        stride: [2, 2],
        ..Default::default()
    };
    assert_eq!(
        ConvShape::new(&[3, 7, 7, 6], &[3, 3, 1, 12], &depthwise)
            .unwrap()
            .path(),
        ConvPath::Depthwise
    );
    check_against_reference([3, 7, 7, 6], [3, 3, 1, 12], depthwise, 2);
    check_against_reference([3, 7, 7, 6], [3, 3, 1, 6], depthwise, 1);
    let first_layer = Conv2dSpec {
        padding: Padding::Same,
        ..Default::default()
    };
    assert_eq!(
        ConvShape::new(&[2, 6, 6, 3], &[3, 3, 3, 8], &first_layer)
            .unwrap()
            .path(),
        ConvPath::SmallPatch
    );
    check_against_reference([2, 6, 6, 3], [3, 3, 3, 8], first_layer, 2);
    // Filter counts past one and two AVX-512 vectors (with a tail of 5), patches of 9
    // and 27 values (blocks of 8 taps and single taps), positions not a multiple of 8.
    check_against_reference([2, 7, 9, 3], [3, 3, 3, 37], first_layer, 2);
    // Winograd with 3 rows of padding in front: the input gradient falls back to im2col.
    let deep_padding = Conv2dSpec {
        padding: explicit([3, 0, 1, 1]),
        ..Default::default()
    };
    let winograd = ConvShape::new(&[2, 5, 6, 16], &[3, 3, 16, 16], &deep_padding).unwrap();
    assert_eq!(winograd.path(), ConvPath::Winograd(winograd::Tile::F2));
    assert!(!winograd::applies_to_input_gradient(&winograd));
    // From 32 channels and filters on, the larger tiles.
    let wide = ConvShape::new(&[1, 8, 8, 32], &[3, 3, 32, 32], &Conv2dSpec::default()).unwrap();
    assert_eq!(wide.path(), ConvPath::Winograd(winograd::Tile::F4));
    let narrow = ConvShape::new(&[1, 8, 8, 32], &[3, 3, 32, 31], &Conv2dSpec::default()).unwrap();
    assert_eq!(narrow.path(), ConvPath::Winograd(winograd::Tile::F2));
    for kernel in [
        Kernel3x3::WinogradF2x2,
        Kernel3x3::WinogradF4x4,
        Kernel3x3::Im2col,
    ] {
        check_kernel([2, 5, 6, 16], [3, 3, 16, 16], deep_padding, 2, kernel);
    }
    // F(4x4) on sizes with whole tiles (8x8 out) and with a hanging row and column of
    // tiles (9x7 out), same and valid padding, two images (the proptest draws these
    // only by chance).
    for (input, padding) in [
        ([2, 8, 8, 16], Padding::Same),
        ([2, 10, 10, 16], Padding::Valid),
        ([2, 9, 7, 17], Padding::Same),
        ([2, 11, 9, 17], Padding::Valid),
    ] {
        let spec = Conv2dSpec {
            padding,
            ..Default::default()
        };
        check_kernel(
            input,
            [3, 3, input[3], 18],
            spec,
            2,
            Kernel3x3::WinogradF4x4,
        );
    }
    check_against_reference([3, 11, 10, 1], [3, 3, 1, 32], Conv2dSpec::default(), 1);
    check_against_reference(
        [1, 9, 9, 2],
        [2, 3, 2, 16],
        Conv2dSpec {
            stride: [2, 1],
            ..first_layer
        },
        2,
    );
    assert_eq!(
        ConvShape::new(&[2, 6, 6, 4], &[3, 3, 4, 8], &first_layer)
            .unwrap()
            .path(),
        ConvPath::Im2col
    );
}

/// The depthwise kernels (multiplier 1) with each vector code this CPU runs, on 1 and 2
/// threads: channel tails around the 16-lane vector, stride 1 and 2, same and valid
/// padding, 3x3 and 5x5 windows, odd image sizes, blocks of every length.
#[test]
fn depthwise_kernels_match_the_reference_on_every_isa() {
    let isas = depthwise::Isa::available();
    if isas.len() == 1 {
        println!("skipped the AVX-512 depthwise kernels: this CPU has no AVX-512F");
    }
    let mut cases = 0;
    for (channels, side) in [(1, 13), (15, 11), (16, 9), (17, 21), (40, 7), (96, 5)] {
        for kernel in [3, 5] {
            for stride in [1, 2] {
                for padding in [Padding::Same, Padding::Valid] {
                    let spec = Conv2dSpec {
                        stride: [stride, stride],
                        padding,
                        groups: channels,
                        ..Default::default()
                    };
                    let (input, filter) =
                        ([2, side, side + 2, channels], [kernel, kernel, 1, channels]);
                    let s = ConvShape::new(&input, &filter, &spec).unwrap();
                    // One channel is one group: the other paths take it, this kernel still
                    // has to be right on it.
                    assert!(channels == 1 || s.path() == ConvPath::Depthwise);
                    for threads in [1, 2] {
                        check_depthwise(&s, threads, &isas);
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 48);
    // Dilation, explicit padding wider than the window's reach on one side, stride 3.
    let spec = Conv2dSpec {
        stride: [3, 2],
        dilation: [2, 1],
        padding: explicit([3, 0, 2, 4]),
        groups: 18,
    };
    let s = ConvShape::new(&[3, 10, 9, 18], &[3, 4, 1, 18], &spec).unwrap();
    check_depthwise(&s, 2, &isas);
    // Rows no tap reaches (of 12 output rows, row 0 and rows 9-11 read only padding):
    // they hold the bias, activated.
    let spec = Conv2dSpec {
        padding: explicit([3, 5, 1, 1]),
        groups: 16,
        ..Default::default()
    };
    let s = ConvShape::new(&[2, 6, 5, 16], &[3, 3, 1, 16], &spec).unwrap();
    check_depthwise(&s, 2, &isas);
}

/// The three depthwise passes with each of `isas` against [`reference`], with a bias
/// on the forward pass, and with a bias and ReLU6 or ReLU (applied by the kernel, or in
/// a pass of its own where some output pixel reads only padding).
fn check_depthwise(s: &ConvShape, threads: usize, isas: &[depthwise::Isa]) {
    let (x, f, dy) = operands(s);
    let (y, dx, dw) = reference(s, &x, &f, &dy);
    let bias = values(s.filters, 4);
    let biased: Vec<f32> = y
        .iter()
        .enumerate()
        .map(|(i, y)| y + bias[i % s.filters])
        .collect();
    let pool = crate::parallel::pool_of(threads);
    let tensor = |shape: [usize; 4], values: Vec<f32>| Tensor::from_vec(&shape, values).unwrap();
    for &isa in isas {
        let what = |pass: &str| format!("{pass} {isa:?} {:?} {threads} threads", s);
        pool.install(|| {
            let output = Output {
                start: crate::parallel::Start::Repeat(&bias),
                activation: None,
                reduce: None,
            };
            let fast = depthwise::forward_on(isa, s, x.as_slice(), f.as_slice(), output).unwrap();
            assert_close(&tensor(s.output_shape(), fast), &biased, &what("forward"));
            for activation in [Unary::Relu6, Unary::Relu] {
                let activated = Output {
                    activation: Some(activation),
                    ..output
                };
                let fast = depthwise::forward_on(isa, s, x.as_slice(), f.as_slice(), activated);
                let want: Vec<f32> = biased.iter().map(|&y| activation.apply(y)).collect();
                assert_close(
                    &tensor(s.output_shape(), fast.unwrap()),
                    &want,
                    &what(&format!("{activation:?}")),
                );
            }
            let fast = depthwise::backward_input_on(isa, s, dy.as_slice(), f.as_slice()).unwrap();
            assert_close(&tensor(s.input_shape(), fast), &dx, &what("input grad"));
            let filter_grad =
                || depthwise::backward_filter_on(isa, s, x.as_slice(), dy.as_slice()).unwrap();
            let fast = filter_grad();
            assert_eq!(
                fast,
                filter_grad(),
                "{}: not the same bits twice",
                what("filter grad")
            );
            assert_close(&tensor(s.filter_shape(), fast), &dw, &what("filter grad"));
        });
    }
}

#[test]
fn bias_is_added_per_filter() {
    let x = Tensor::zeros(&[1, 2, 2, 1]);
    let f = Tensor::ones(&[1, 1, 1, 2]);
    let b = Tensor::from_vec(&[2], vec![1.0, -2.0]).unwrap();
    let y = conv2d(&x, &f, Some(&b), &Conv2dSpec::default()).unwrap();
    assert_eq!(y.to_vec(), vec![1.0, -2.0, 1.0, -2.0, 1.0, -2.0, 1.0, -2.0]);
    let grad = conv2d_backward_bias(&Tensor::ones(&[1, 2, 2, 2])).unwrap();
    assert_eq!(grad.to_vec(), vec![4.0, 4.0]);
}

#[test]
fn no_channels_or_no_filters_give_the_bias_and_zero_gradients() {
    let grouped = Conv2dSpec {
        groups: 2,
        ..Default::default()
    };
    let b = Tensor::from_vec(&[4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let y = conv2d(
        &Tensor::zeros(&[1, 3, 3, 0]),
        &Tensor::zeros(&[3, 3, 0, 4]),
        Some(&b),
        &grouped,
    );
    assert_eq!(y.unwrap().to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    let dx = conv2d_backward_input(
        &Tensor::zeros(&[1, 1, 1, 0]),
        &Tensor::zeros(&[3, 3, 1, 0]),
        &[1, 3, 3, 2],
        &grouped,
    );
    assert_eq!(dx.unwrap().to_vec(), vec![0.0; 18]);
}

#[test]
fn a_1x1_layer_with_no_channels_gives_its_activated_bias() {
    let s = ConvShape::new(&[1, 2, 2, 0], &[1, 1, 0, 2], &Conv2dSpec::default()).unwrap();
    assert_eq!(s.path(), ConvPath::Pointwise);
    let b = Tensor::from_vec(&[2], vec![1.5, -2.0]).unwrap();
    let (x, f) = (Tensor::zeros(&[1, 2, 2, 0]), Tensor::zeros(&[1, 1, 0, 2]));
    let y = conv2d_activated(&x, &f, Some(&b), &Conv2dSpec::default(), Unary::Relu);
    assert_eq!(y.unwrap().to_vec(), [1.5, 0.0].repeat(4));
}

/// Each output of the paths that write their sums once, finished (1x1 and small
/// patches), is its product's sum, plus the bias, then activated, bit for bit (the sums
/// from the same layer without a bias or activation), in f32 and, where the CPU has it,
/// bf16. With 600 channels the 1x1 products run in more than one depth block; 53
/// filters are, with AVX-512, a pair of vectors, one vector, and a scalar tail of the
/// small-patch kernel.
#[test]
fn written_once_outputs_are_each_sum_plus_the_bias_then_activated() {
    check_against_reference([1, 6, 6, 600], [1, 1, 600, 9], Conv2dSpec::default(), 2);
    let stride_2_same = Conv2dSpec {
        stride: [2, 2],
        padding: Padding::Same,
        ..Conv2dSpec::default()
    };
    let mut precisions = vec![Precision::F32];
    if bf16_runs_here() {
        precisions.push(Precision::Bf16);
    }
    for (input, filter, spec, path) in [
        (
            [2, 7, 9, 24],
            [1, 1, 24, 40],
            Conv2dSpec::default(),
            ConvPath::Pointwise,
        ),
        (
            [1, 6, 6, 600],
            [1, 1, 600, 9],
            Conv2dSpec::default(),
            ConvPath::Pointwise,
        ),
        (
            [2, 9, 11, 3],
            [3, 3, 3, 37],
            stride_2_same,
            ConvPath::SmallPatch,
        ),
        (
            [2, 8, 8, 1],
            [3, 3, 1, 32],
            Conv2dSpec::default(),
            ConvPath::SmallPatch,
        ),
    ] {
        let s = ConvShape::new(&input, &filter, &spec).unwrap();
        assert_eq!(s.path(), path);
        let (x, f, _) = operands(&s);
        let o = filter[3];
        let b = Tensor::from_vec(&[o], values(o, 4)).unwrap();
        for &precision in &precisions {
            let layer = |bias, op| {
                let pass = || match op {
                    Some(op) => conv2d_activated(&x, &f, bias, &spec, op).unwrap(),
                    None => conv2d(&x, &f, bias, &spec).unwrap(),
                };
                crate::parallel::pool_of(2).install(|| with_precision(precision, pass))
            };
            let sums = layer(None, None);
            for (bias, op) in [
                (Some(&b), Some(Unary::Relu6)),
                (None, Some(Unary::Relu6)),
                (Some(&b), Some(Unary::Sigmoid)),
                (Some(&b), None),
            ] {
                let want: Vec<u32> = (sums.as_slice().iter().enumerate())
                    .map(|(i, &v)| bias.map_or(v, |b| v + b.as_slice()[i % o]))
                    .map(|v| op.map_or(v, |op| op.apply(v)).to_bits())
                    .collect();
                let got: Vec<u32> = layer(bias, op)
                    .to_vec()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let what = format!("{input:?} {precision:?} bias {} {op:?}", bias.is_some());
                assert_eq!(want, got, "{what}");
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors_naming_both_shapes() {
    let x = Tensor::zeros(&[1, 5, 5, 3]);
    let f = Tensor::zeros(&[3, 3, 2, 4]);
    let err = conv2d(&x, &f, None, &Conv2dSpec::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[1, 5, 5, 3]") && err.contains("[3, 3, 2, 4]"),
        "{err}"
    );
    let err = conv2d(&Tensor::zeros(&[5, 5, 3]), &f, None, &Conv2dSpec::default()).unwrap_err();
    assert!(err.to_string().contains("4-D"), "{err}");
    let big = Tensor::zeros(&[7, 7, 3, 4]);
    assert!(conv2d(&x, &big, None, &Conv2dSpec::default()).is_err());
    let groups = Conv2dSpec {
        groups: 2,
        ..Default::default()
    };
    assert!(conv2d(&x, &Tensor::zeros(&[3, 3, 1, 4]), None, &groups).is_err());
    let bias = Tensor::zeros(&[3]);
    assert!(conv2d(
        &x,
        &Tensor::zeros(&[3, 3, 3, 4]),
        Some(&bias),
        &Conv2dSpec::default()
    )
    .is_err());
    let wrong_grad = Tensor::zeros(&[1, 2, 2, 4]);
    assert!(conv2d_backward_input(
        &wrong_grad,
        &Tensor::zeros(&[3, 3, 3, 4]),
        &[1, 5, 5, 3],
        &Conv2dSpec::default()
    )
    .is_err());
}

/// Shapes whose products run in bf16 on the im2col and 1x1 paths: a 3x3 over 8
/// channels (too few for Winograd), a strided 3x3, a 1x1.
fn bf16_product_cases() -> [([usize; 4], [usize; 4], Conv2dSpec); 3] {
    let strided = Conv2dSpec {
        stride: [2, 2],
        padding: Padding::Same,
        ..Conv2dSpec::default()
    };
    [
        ([2, 9, 9, 8], [3, 3, 8, 12], Conv2dSpec::default()),
        ([2, 10, 10, 32], [3, 3, 32, 16], strided),
        ([3, 5, 5, 24], [1, 1, 24, 40], Conv2dSpec::default()),
    ]
}

#[test]
fn bf16_im2col_and_pointwise_passes_match_f32_within_bf16_rounding() {
    if !bf16_runs_here() {
        return;
    }
    for (input, filter, spec) in bf16_product_cases() {
        let s = ConvShape::new(&input, &filter, &spec).unwrap();
        assert!(
            matches!(s.path(), ConvPath::Im2col | ConvPath::Pointwise),
            "{input:?}"
        );
        let (x, f, dy) = operands(&s);
        let passes = |x: &Tensor, f: &Tensor, dy: &Tensor| {
            [
                conv2d(x, f, None, &spec).unwrap(),
                conv2d_backward_input(dy, f, &input, &spec).unwrap(),
                conv2d_backward_filter(x, dy, &filter, &spec).unwrap(),
            ]
        };
        let exact = passes(&x, &f, &dy);
        let bf16 = with_precision(Precision::Bf16, || passes(&x, &f, &dy));
        // Σ|x||w| (and the like) per result: the scale of its rounding error.
        let abs = |t: &Tensor| {
            Tensor::from_vec(t.shape(), t.as_slice().iter().map(|v| v.abs()).collect()).unwrap()
        };
        let magnitude = passes(&abs(&x), &abs(&f), &abs(&dy));
        let terms = [
            s.patch_len(),
            s.rows.kernel * s.cols.kernel * s.filters,
            s.batch * s.positions(),
        ];
        for (pass, name) in ["output", "input gradient", "filter gradient"]
            .iter()
            .enumerate()
        {
            let (got, want) = (bf16[pass].as_slice(), exact[pass].as_slice());
            let magnitude = magnitude[pass].as_slice();
            if let Err(e) = within_bf16_rounding(got, want, magnitude, terms[pass]) {
                panic!("{input:?} {name} {e}");
            }
            assert!(got != want, "{input:?} {name}: no bf16 rounding happened");
        }
    }
}

/// Whether [`conv2d_expand_depthwise`] runs an input of shape `input` through its band
/// pass (rather than as the two calls).
fn takes_the_band_pass(
    input: &[usize],
    expand: &Tensor,
    depthwise: &Tensor,
    spec: &Conv2dSpec,
) -> bool {
    let s1 = ConvShape::new(input, expand.shape(), &Conv2dSpec::default()).unwrap();
    let s2 = ConvShape::new(&s1.output_shape(), depthwise.shape(), spec).unwrap();
    let shapes = expand_depthwise::Shapes {
        expand: &s1,
        depthwise: &s2,
    };
    shapes.fusable()
}

/// The fused 1x1-then-depthwise pass gives the bits of the two layers one after the
/// other: 3x3 and 5x5 windows, stride 1 and 2, same, explicit (torchvision's) and
/// valid padding; images whose expanded rows fit one band, and images cut into many:
/// 128 expanded channels on 64 columns (32 KiB a row, 8 rows to a band: 6 output rows
/// a band at stride 1, 3 at stride 2), 512 (128 KiB a row: one output row a band),
/// where a 5x5 window's bands are clipped at the bottom before the last, and a 1x1
/// window of stride 2, which steps past the rows the last band read; the kernel's own
/// ReLU6, a sigmoid left to a pass of its own, no activation; biases on either layer;
/// 1 and 2 threads, f32 and (where the CPU has it) bf16; and, run as the two calls,
/// windows all in the padding and a depth multiplier of 2.
#[test]
fn expand_then_depthwise_gives_the_bits_of_the_two_layers() {
    let mut precisions = vec![Precision::F32];
    if bf16_runs_here() {
        precisions.push(Precision::Bf16);
    }
    let spec = |kernel_stride_padding: (usize, Padding), expanded| Conv2dSpec {
        stride: [kernel_stride_padding.0; 2],
        padding: kernel_stride_padding.1,
        groups: expanded,
        ..Conv2dSpec::default()
    };
    let tensor = |shape: &[usize], seed| {
        Tensor::from_vec(shape, values(shape.iter().product(), seed)).unwrap()
    };
    // (input, expanded channels, kernel, stride, padding)
    let cases = [
        ([2, 9, 7, 8], 48, 3, 1, Padding::Same),
        ([3, 11, 10, 4], 24, 3, 2, explicit([1, 1, 1, 1])),
        ([1, 16, 64, 16], 512, 3, 1, Padding::Same),
        ([1, 17, 64, 16], 512, 3, 2, Padding::Same),
        ([1, 16, 64, 8], 512, 5, 1, Padding::Same),
        ([2, 15, 13, 8], 40, 5, 2, Padding::Same),
        ([1, 12, 64, 8], 512, 3, 1, Padding::Valid),
        ([1, 30, 64, 8], 128, 3, 1, Padding::Same),
        ([1, 31, 64, 8], 128, 3, 2, Padding::Same),
        ([1, 30, 64, 8], 128, 5, 1, Padding::Same),
        ([1, 16, 64, 8], 512, 1, 2, Padding::Valid),
        // A top row of windows all in the padding: the two calls.
        ([1, 6, 7, 4], 16, 3, 1, explicit([3, 0, 1, 1])),
    ];
    for (input, expanded, kernel, stride, padding) in cases {
        let x = tensor(&input, 1);
        let expand = tensor(&[1, 1, input[3], expanded], 2);
        let depthwise = tensor(&[kernel, kernel, 1, expanded], 3);
        let (b1, b2) = (tensor(&[expanded], 4), tensor(&[expanded], 5));
        let spec = spec((stride, padding), expanded);
        // Every case but the last takes the band pass (else the bits compared below
        // would be the two calls' against themselves).
        let all_padding = matches!(padding, Padding::Explicit { top: 3, .. });
        let fusable = takes_the_band_pass(&input, &expand, &depthwise, &spec);
        assert_eq!(fusable, !all_padding, "{input:?} {padding:?}");
        for (bias, activation) in [
            (true, Some(Unary::Relu6)),
            (false, Some(Unary::Sigmoid)),
            (true, None),
        ] {
            let step = |filter, b| ConvStep {
                filter,
                bias: bias.then_some(b),
                activation,
            };
            for &precision in &precisions {
                for threads in [1, 2] {
                    let pass = || {
                        let fused = conv2d_expand_depthwise(
                            &x,
                            step(&expand, &b1),
                            step(&depthwise, &b2),
                            &spec,
                        )
                        .unwrap();
                        let one = |x: &Tensor, f, b, spec: &Conv2dSpec| match activation {
                            Some(op) => conv2d_activated(x, f, b, spec, op).unwrap(),
                            None => conv2d(x, f, b, spec).unwrap(),
                        };
                        let mid = one(&x, &expand, bias.then_some(&b1), &Conv2dSpec::default());
                        (fused, one(&mid, &depthwise, bias.then_some(&b2), &spec))
                    };
                    let (fused, layers) = crate::parallel::pool_of(threads)
                        .install(|| with_precision(precision, pass));
                    let what = format!(
                        "{input:?} -> {expanded}, {kernel}x{kernel} stride {stride} \
                         {padding:?}, bias {bias} {activation:?}, {precision:?}, {threads} threads"
                    );
                    assert_eq!(fused.shape(), layers.shape(), "{what}");
                    assert!(fused.to_vec() == layers.to_vec(), "{what}");
                }
            }
        }
    }
    // A depth multiplier of 2: the two calls.
    let x = tensor(&[1, 6, 6, 3], 1);
    let expand = tensor(&[1, 1, 3, 4], 2);
    let depthwise = tensor(&[3, 3, 1, 8], 3);
    let spec = spec((1, Padding::Same), 4);
    assert!(!takes_the_band_pass(x.shape(), &expand, &depthwise, &spec));
    let step = |filter| ConvStep {
        filter,
        bias: None,
        activation: None,
    };
    let fused = conv2d_expand_depthwise(&x, step(&expand), step(&depthwise), &spec).unwrap();
    let mid = conv2d(&x, &expand, None, &Conv2dSpec::default()).unwrap();
    let layers = conv2d(&mid, &depthwise, None, &spec).unwrap();
    assert_eq!(fused.to_vec(), layers.to_vec());
    // A bias of the wrong length is an error naming it.
    let short = tensor(&[3], 4);
    let err = conv2d_expand_depthwise(
        &x,
        ConvStep {
            bias: Some(&short),
            ..step(&expand)
        },
        step(&depthwise),
        &spec,
    )
    .unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
}
