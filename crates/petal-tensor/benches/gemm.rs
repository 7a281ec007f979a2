//! GEMM throughput in FLOP/s: Petal's `gemm` (the gemm crate's kernels) on 1 and 2
//! threads next to matrixmultiply, for square f32 matrices.
//!
//! matrixmultiply reads its thread count once per process from `MATMUL_NUM_THREADS`
//! (this bench sets 2 when unset); run `MATMUL_NUM_THREADS=1 cargo bench --bench gemm`
//! for its one-thread figure.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use petal_tensor::gemm::{gemm, MatMut, MatRef};
use std::time::Duration;

fn matrix(n: usize, seed: u32) -> Vec<f32> {
    (0..n * n)
        .map(|i| ((i as u32 ^ seed).wrapping_mul(2654435761) >> 20) as f32 / 4096.0 - 0.5)
        .collect()
}

fn bench_gemm(c: &mut Criterion) {
    let matmul_threads = std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| {
        // SAFETY: set before any thread of this process reads the environment.
        unsafe { std::env::set_var("MATMUL_NUM_THREADS", "2") };
        "2".into()
    });
    let mut group = c.benchmark_group("gemm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in [256, 512, 1024, 2048] {
        let (a, b) = (matrix(n, 1), matrix(n, 2));
        let mut out = vec![0.0; n * n];
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            group.bench_with_input(
                BenchmarkId::new(format!("petal/{threads}t"), n),
                &n,
                |bench, &n| {
                    pool.install(|| {
                        bench.iter(|| {
                            gemm(
                                MatRef::row_major(&a, n, n).unwrap(),
                                MatRef::row_major(&b, n, n).unwrap(),
                                MatMut::row_major(&mut out, n, n).unwrap(),
                                false,
                                true,
                            )
                            .unwrap()
                        })
                    })
                },
            );
        }
        group.bench_with_input(
            BenchmarkId::new(format!("matrixmultiply/{matmul_threads}t"), n),
            &n,
            |bench, &n| {
                bench.iter(|| unsafe {
                    // SAFETY: a, b and out each hold n*n values laid out row-major.
                    matrixmultiply::sgemm(
                        n,
                        n,
                        n,
                        1.0,
                        a.as_ptr(),
                        n as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
