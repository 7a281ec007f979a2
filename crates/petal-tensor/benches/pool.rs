//! Max pooling, forward (maxima and where they won) and backward (routing each output
//! gradient to its winner), on 2 threads, on the channels-last shapes that a pooling
//! follows in the Keras MNIST CNN, the MNIST-same CNN and the flowers CNN, and on
//! ResNet18's 3x3 stride-2 'same' stem pooling. Throughput is in input values per
//! second.
//!
//! Memory comes from mimalloc keeping freed blocks mapped (`support`).

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use petal_tensor::pool::{max_pool2d, max_pool2d_backward};
use petal_tensor::{Padding, Pool2dSpec};
use std::time::Duration;

fn bench_max_pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("max_pool");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let pool = support::threads(2);
    let stem = Pool2dSpec {
        window: [3, 3],
        stride: [2, 2],
        padding: Padding::Same,
    };
    let two = Pool2dSpec::square(2);
    for (name, shape, spec) in [
        ("keras_128x26x26x32", [128, 26, 26, 32], two),
        ("keras_128x11x11x64", [128, 11, 11, 64], two),
        ("same_128x28x28x32", [128, 28, 28, 32], two),
        ("flowers_32x128x128x32", [32, 128, 128, 32], two),
        ("resnet_stem_16x112x112x64", [16, 112, 112, 64], stem),
    ] {
        let x = support::filled(&shape, 0);
        let (y, argmax) = max_pool2d(&x, &spec).unwrap();
        let dy = support::filled(y.shape(), 13);
        group.throughput(Throughput::Elements(x.len() as u64));
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            pool.install(|| b.iter(|| max_pool2d(&x, &spec).unwrap()))
        });
        group.bench_function(BenchmarkId::new("backward", name), |b| {
            pool.install(|| b.iter(|| max_pool2d_backward(&dy, &argmax, &shape, &spec).unwrap()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = bench_max_pool
}
criterion_main!(benches);
