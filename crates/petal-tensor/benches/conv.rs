//! conv2d forward, filter gradient and forward+backward (input, filter and bias
//! gradients) on the layer shapes of the lecture's MNIST CNN, a flowers CNN and a
//! MobileNet depthwise layer, on 1 and 2 threads. Throughput is in FLOP/s (2 per
//! multiply-add; backward counts twice the forward).
//!
//! `kernel3x3`: each pass of a few 3x3 layers by im2col, Winograd F(2x2, 3x3) and
//! F(4x4, 3x3) one after another, on 2 threads (direct-convolution FLOP/s), and, on a
//! CPU with AVX512-BF16, im2col and F(2x2) with bf16 products (`im2col_bf16`,
//! `f2x2_bf16`; F(4x4)'s products stay f32 in bf16, see `petal_tensor::conv`).
//!
//! `depthwise`: each pass of the MobileNetV2 and EfficientNet-Lite0 depthwise layers
//! that take the most time (batch 16), on 2 threads (direct-convolution FLOP/s).
//!
//! `pointwise`: the forward pass of 1x1 layers of MobileNetV2 and EfficientNet-Lite0
//! (batch 16) with their bias and activation (ReLU6 after an expansion, none after a
//! projection), as in their inference with batch norm folded, on 2 threads
//! (direct-convolution FLOP/s).
//!
//! `conv_pool`: a convolution with ReLU then 2x2 max pooling, as two ops and fused
//! (`conv2d_max_pooled`), on the MNIST and flowers layers that a pooling follows, on 2
//! threads (direct-convolution FLOP/s).
//!
//! Memory comes from mimalloc keeping freed blocks mapped, as in `cargo xtask`
//! (`support`).

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use petal_tensor::conv::{
    conv2d, conv2d_activated, conv2d_backward_bias, conv2d_backward_filter, conv2d_backward_input,
    conv2d_max_pooled, with_kernel_3x3, Kernel3x3,
};
use petal_tensor::elementwise::Unary;
use petal_tensor::pool::max_pool2d;
use petal_tensor::{with_precision, Conv2dSpec, Padding, Pool2dSpec, Precision, Tensor};
use std::time::Duration;

struct Layer {
    name: &'static str,
    input: [usize; 4],
    filter: [usize; 4],
    spec: Conv2dSpec,
}

/// 'Same' padding, stride 1, one group.
fn same_padding() -> Conv2dSpec {
    Conv2dSpec {
        padding: Padding::Same,
        ..Conv2dSpec::default()
    }
}

impl Layer {
    /// A layer with [`same_padding`].
    fn same(name: &'static str, input: [usize; 4], filter: [usize; 4]) -> Self {
        Self {
            name,
            input,
            filter,
            spec: same_padding(),
        }
    }
}

fn layers() -> Vec<Layer> {
    vec![
        Layer {
            name: "mnist1_128x28x28x1_32",
            input: [128, 28, 28, 1],
            filter: [3, 3, 1, 32],
            spec: Conv2dSpec::default(),
        },
        Layer {
            name: "mnist2_128x13x13x32_64",
            input: [128, 13, 13, 32],
            filter: [3, 3, 32, 64],
            spec: Conv2dSpec::default(),
        },
        Layer::same("flowers1_32x128x128x3_32", [32, 128, 128, 3], [3, 3, 3, 32]),
        Layer::same("flowers2_32x64x64x32_64", [32, 64, 64, 32], [3, 3, 32, 64]),
        Layer {
            name: "depthwise_8x112x112x96",
            input: [8, 112, 112, 96],
            filter: [3, 3, 1, 96],
            spec: Conv2dSpec {
                groups: 96,
                ..same_padding()
            },
        },
    ]
}

/// Multiply-adds of the direct convolution, 2 FLOPs each.
fn direct_flops(filter: &[usize; 4], out_shape: &[usize]) -> u64 {
    let [kh, kw, cg, _] = *filter;
    2 * out_shape.iter().product::<usize>() as u64 * (kh * kw * cg) as u64
}

fn bench_conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for layer in layers() {
        let (x, w) = (
            support::filled(&layer.input, 0),
            support::filled(&layer.filter, 0),
        );
        let bias = Tensor::zeros(&[layer.filter[3]]);
        let out_shape =
            petal_tensor::conv::conv2d_output_shape(&layer.input, &layer.filter, &layer.spec)
                .unwrap();
        let dy = support::filled(&out_shape, 0);
        let flops = direct_flops(&layer.filter, &out_shape);
        for threads in [1, 2] {
            let pool = support::threads(threads);
            group.throughput(Throughput::Elements(flops));
            group.bench_function(
                BenchmarkId::new(format!("forward/{threads}t"), layer.name),
                |b| pool.install(|| b.iter(|| conv2d(&x, &w, Some(&bias), &layer.spec).unwrap())),
            );
            group.bench_function(
                BenchmarkId::new(format!("filter_grad/{threads}t"), layer.name),
                |b| {
                    pool.install(|| {
                        b.iter(|| {
                            conv2d_backward_filter(&x, &dy, &layer.filter, &layer.spec).unwrap()
                        })
                    })
                },
            );
            group.throughput(Throughput::Elements(3 * flops));
            group.bench_function(
                BenchmarkId::new(format!("forward_backward/{threads}t"), layer.name),
                |b| {
                    pool.install(|| {
                        b.iter(|| {
                            let y = conv2d(&x, &w, Some(&bias), &layer.spec).unwrap();
                            let dx =
                                conv2d_backward_input(&dy, &w, &layer.input, &layer.spec).unwrap();
                            let dw = conv2d_backward_filter(&x, &dy, &layer.filter, &layer.spec)
                                .unwrap();
                            let db = conv2d_backward_bias(&dy).unwrap();
                            (y, dx, dw, db)
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

fn bench_kernels_3x3(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel3x3");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    // The lecture's layers the Winograd path takes, the 'same' MNIST CNN's two (the
    // bench's workload 2), two with 128 channels, and ResNet18's 256- and 512-filter
    // layers at the bench's batch of 16 (the 512-filter one on the whole batch).
    let winograd = |l: &Layer| l.filter[..2] == [3, 3] && l.spec.groups == 1 && l.input[3] >= 16;
    let shapes = layers().into_iter().filter(winograd).chain([
        Layer::same(
            "mnist_same2_128x28x28x32_32",
            [128, 28, 28, 32],
            [3, 3, 32, 32],
        ),
        Layer::same(
            "mnist_same4_128x14x14x64_64",
            [128, 14, 14, 64],
            [3, 3, 64, 64],
        ),
        Layer::same(
            "flowers4_32x16x16x128_256",
            [32, 16, 16, 128],
            [3, 3, 128, 256],
        ),
        Layer::same("vgg_4x56x56x128_128", [4, 56, 56, 128], [3, 3, 128, 128]),
        Layer::same(
            "resnet18_16x14x14x256_256",
            [16, 14, 14, 256],
            [3, 3, 256, 256],
        ),
        Layer::same("resnet18_16x7x7x512_512", [16, 7, 7, 512], [3, 3, 512, 512]),
    ]);
    let mut kernels = vec![
        ("im2col", Kernel3x3::Im2col, Precision::F32),
        ("f2x2", Kernel3x3::WinogradF2x2, Precision::F32),
        ("f4x4", Kernel3x3::WinogradF4x4, Precision::F32),
    ];
    match Precision::Bf16.supported() {
        Ok(bf16) => kernels.extend([
            ("im2col_bf16", Kernel3x3::Im2col, bf16),
            ("f2x2_bf16", Kernel3x3::WinogradF2x2, bf16),
        ]),
        Err(e) => println!("kernel3x3 im2col_bf16 skipped: {e}"),
    }
    let pool = support::threads(2);
    for Layer {
        name,
        input,
        filter,
        spec,
    } in shapes
    {
        let (x, w) = (support::filled(&input, 0), support::filled(&filter, 0));
        let out_shape = petal_tensor::conv::conv2d_output_shape(&input, &filter, &spec).unwrap();
        let dy = support::filled(&out_shape, 0);
        group.throughput(Throughput::Elements(direct_flops(&filter, &out_shape)));
        for &(kernel_name, kernel, precision) in &kernels {
            let id = |pass: &str| BenchmarkId::new(format!("{pass}/{kernel_name}"), name);
            let run = |b: &mut criterion::Bencher, pass: &(dyn Fn() -> Tensor + Sync)| {
                pool.install(|| {
                    with_precision(precision, || with_kernel_3x3(kernel, || b.iter(pass)))
                })
            };
            group.bench_function(id("forward"), |b| {
                run(b, &|| conv2d(&x, &w, None, &spec).unwrap())
            });
            group.bench_function(id("input_grad"), |b| {
                run(b, &|| {
                    conv2d_backward_input(&dy, &w, &input, &spec).unwrap()
                })
            });
            group.bench_function(id("filter_grad"), |b| {
                run(b, &|| {
                    conv2d_backward_filter(&x, &dy, &filter, &spec).unwrap()
                })
            });
        }
    }
    group.finish();
}

/// A depthwise layer of batch 16: `side x side x channels`, a square `kernel`, `stride`,
/// same padding.
fn depthwise_layer(
    name: &'static str,
    side: usize,
    channels: usize,
    kernel: usize,
    stride: usize,
) -> Layer {
    Layer {
        name,
        input: [16, side, side, channels],
        filter: [kernel, kernel, 1, channels],
        spec: Conv2dSpec {
            stride: [stride, stride],
            padding: Padding::Same,
            groups: channels,
            ..Conv2dSpec::default()
        },
    }
}

fn bench_depthwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("depthwise");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let pool = support::threads(2);
    for Layer {
        name,
        input,
        filter,
        spec,
    } in [
        depthwise_layer("mbv2_16x112x112x32_k3s1", 112, 32, 3, 1),
        depthwise_layer("mbv2_16x112x112x96_k3s2", 112, 96, 3, 2),
        depthwise_layer("mbv2_16x56x56x144_k3s1", 56, 144, 3, 1),
        depthwise_layer("mbv2_16x28x28x192_k3s1", 28, 192, 3, 1),
        depthwise_layer("mbv2_16x14x14x576_k3s1", 14, 576, 3, 1),
        depthwise_layer("effl0_16x56x56x144_k5s2", 56, 144, 5, 2),
        depthwise_layer("effl0_16x28x28x240_k5s1", 28, 240, 5, 1),
    ] {
        let (x, w) = (support::filled(&input, 0), support::filled(&filter, 0));
        let out_shape = petal_tensor::conv::conv2d_output_shape(&input, &filter, &spec).unwrap();
        let dy = support::filled(&out_shape, 0);
        group.throughput(Throughput::Elements(direct_flops(&filter, &out_shape)));
        let run = |b: &mut criterion::Bencher, pass: &(dyn Fn() -> Tensor + Sync)| {
            pool.install(|| b.iter(pass))
        };
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            run(b, &|| conv2d(&x, &w, None, &spec).unwrap())
        });
        group.bench_function(BenchmarkId::new("input_grad", name), |b| {
            run(b, &|| {
                conv2d_backward_input(&dy, &w, &input, &spec).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("filter_grad", name), |b| {
            run(b, &|| {
                conv2d_backward_filter(&x, &dy, &filter, &spec).unwrap()
            })
        });
    }
    group.finish();
}

fn bench_pointwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("pointwise");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let pool = support::threads(2);
    let relu6 = Some(Unary::Relu6);
    for (name, input, filters, activation) in [
        ("mbv2_expand_16x56x56x24_144", [16, 56, 56, 24], 144, relu6),
        ("mbv2_project_16x56x56x144_24", [16, 56, 56, 144], 24, None),
        ("mbv2_expand_16x14x14x96_576", [16, 14, 14, 96], 576, relu6),
        ("effl0_expand_16x28x28x40_240", [16, 28, 28, 40], 240, relu6),
        ("effl0_project_16x28x28x240_40", [16, 28, 28, 240], 40, None),
        ("mbv2_head_16x7x7x320_1280", [16, 7, 7, 320], 1280, relu6),
    ] {
        let filter = [1, 1, input[3], filters];
        let spec = Conv2dSpec::default();
        let (x, w) = (support::filled(&input, 0), support::filled(&filter, 0));
        let bias = support::filled(&[filters], 1);
        let out_shape = petal_tensor::conv::conv2d_output_shape(&input, &filter, &spec).unwrap();
        group.throughput(Throughput::Elements(direct_flops(&filter, &out_shape)));
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            pool.install(|| {
                b.iter(|| match activation {
                    Some(op) => conv2d_activated(&x, &w, Some(&bias), &spec, op).unwrap(),
                    None => conv2d(&x, &w, Some(&bias), &spec).unwrap(),
                })
            })
        });
    }
    group.finish();
}

fn bench_conv_pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv_pool");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let pool = support::threads(2);
    let window = Pool2dSpec::square(2);
    for layer in layers().into_iter().filter(|l| l.spec.groups == 1) {
        let (x, w) = (
            support::filled(&layer.input, 0),
            support::filled(&layer.filter, 0),
        );
        let bias = Tensor::zeros(&[layer.filter[3]]);
        let out_shape =
            petal_tensor::conv::conv2d_output_shape(&layer.input, &layer.filter, &layer.spec)
                .unwrap();
        group.throughput(Throughput::Elements(direct_flops(
            &layer.filter,
            &out_shape,
        )));
        group.bench_function(BenchmarkId::new("separate", layer.name), |b| {
            pool.install(|| {
                b.iter(|| {
                    let y = conv2d_activated(&x, &w, Some(&bias), &layer.spec, Unary::Relu);
                    max_pool2d(&y.unwrap(), &window).unwrap()
                })
            })
        });
        group.bench_function(BenchmarkId::new("fused", layer.name), |b| {
            pool.install(|| {
                b.iter(|| {
                    let relu = Some(Unary::Relu);
                    conv2d_max_pooled(&x, &w, Some(&bias), &layer.spec, relu, &window).unwrap()
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = bench_conv, bench_kernels_3x3, bench_depthwise, bench_pointwise, bench_conv_pool
}
criterion_main!(benches);
