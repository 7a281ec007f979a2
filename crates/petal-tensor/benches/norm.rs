//! Training-mode batch normalization, forward (statistics and output) and backward
//! (input, `gamma` and `beta` gradients), on 2 threads, on the channels-last shapes of
//! the flowers network's BatchNorm layers and of an MNIST CNN. Throughput is in input
//! values per second.
//!
//! Memory comes from mimalloc keeping freed blocks mapped (`support`; with the system
//! allocator, page faults on each fresh output would take most of the time).

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use petal_tensor::norm::{batch_norm_backward, batch_norm_train};
use std::time::Duration;

fn bench_batch_norm(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_norm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let pool = support::threads(2);
    for (name, shape) in [
        ("flowers_32x128x128x32", [32, 128, 128, 32]),
        ("flowers_32x64x64x64", [32, 64, 64, 64]),
        ("flowers_32x16x16x256", [32, 16, 16, 256]),
        ("mnist_128x28x28x32", [128, 28, 28, 32]),
    ] {
        let channels = shape[3];
        let (x, dy) = (support::filled(&shape, 0), support::filled(&shape, 13));
        let gamma = support::filled(&[channels], 5);
        let beta = support::filled(&[channels], 7);
        let (_, stats) = batch_norm_train(&x, &gamma, &beta, 1e-3).unwrap();
        group.throughput(Throughput::Elements(x.len() as u64));
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            pool.install(|| b.iter(|| batch_norm_train(&x, &gamma, &beta, 1e-3).unwrap()))
        });
        group.bench_function(BenchmarkId::new("backward", name), |b| {
            pool.install(|| b.iter(|| batch_norm_backward(&dy, &x, &stats, &gamma, 1e-3).unwrap()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = bench_batch_norm
}
criterion_main!(benches);
