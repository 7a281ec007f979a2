//! conv2d forward and forward+backward (input, filter and bias gradients) on the layer
//! shapes of the lecture's MNIST CNN, a flowers CNN and a MobileNet depthwise layer,
//! on 1 and 2 threads. Throughput is in FLOP/s (2 per multiply-add; backward counts
//! twice the forward).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use petal_tensor::conv::{
    conv2d, conv2d_backward_bias, conv2d_backward_filter, conv2d_backward_input,
};
use petal_tensor::{Conv2dSpec, Padding, Tensor};
use std::time::Duration;

struct Layer {
    name: &'static str,
    input: [usize; 4],
    filter: [usize; 4],
    spec: Conv2dSpec,
}

fn layers() -> Vec<Layer> {
    let same = Conv2dSpec {
        padding: Padding::Same,
        ..Conv2dSpec::default()
    };
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
        Layer {
            name: "flowers1_32x128x128x3_32",
            input: [32, 128, 128, 3],
            filter: [3, 3, 3, 32],
            spec: same,
        },
        Layer {
            name: "flowers2_32x64x64x32_64",
            input: [32, 64, 64, 32],
            filter: [3, 3, 32, 64],
            spec: same,
        },
        Layer {
            name: "depthwise_8x112x112x96",
            input: [8, 112, 112, 96],
            filter: [3, 3, 1, 96],
            spec: Conv2dSpec { groups: 96, ..same },
        },
    ]
}

fn filled(shape: &[usize]) -> Tensor {
    let len = shape.iter().product();
    Tensor::from_vec(
        shape,
        (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect(),
    )
    .unwrap()
}

fn bench_conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for layer in layers() {
        let (x, w) = (filled(&layer.input), filled(&layer.filter));
        let bias = Tensor::zeros(&[layer.filter[3]]);
        let out_shape =
            petal_tensor::conv::conv2d_output_shape(&layer.input, &layer.filter, &layer.spec)
                .unwrap();
        let dy = filled(&out_shape);
        let [kh, kw, cg, _] = layer.filter;
        let flops = 2 * out_shape.iter().product::<usize>() as u64 * (kh * kw * cg) as u64;
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            group.throughput(Throughput::Elements(flops));
            group.bench_function(
                BenchmarkId::new(format!("forward/{threads}t"), layer.name),
                |b| pool.install(|| b.iter(|| conv2d(&x, &w, Some(&bias), &layer.spec).unwrap())),
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

criterion_group!(benches, bench_conv);
criterion_main!(benches);
