//! GEMM throughput in FLOP/s: Petal's `gemm` (the gemm crate's kernels) on 1 and 2
//! threads next to matrixmultiply, for square f32 matrices; then `gemm` against
//! `gemm_bf16` on 2 threads, each shape's two rows measured one after the other, for
//! 2048^3 and the im2col products of the lecture's convolutions (skipped, with a line
//! saying so, on a CPU without AVX512-BF16).
//!
//! matrixmultiply reads its thread count once per process from `MATMUL_NUM_THREADS`
//! (this bench sets 2 when unset); run `MATMUL_NUM_THREADS=1 cargo bench --bench gemm`
//! for its one-thread figure.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use petal_tensor::gemm::{gemm, gemm_bf16, MatMut, MatRef};
use petal_tensor::Precision;
use rayon::prelude::*;
use std::time::Duration;

fn matrix(n: usize, seed: u32) -> Vec<f32> {
    values(n * n, seed)
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
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

/// `(name, batch, positions, k, n)`: the square product (a batch of one), and the
/// im2col GEMMs of 3x3 convolutions in the lecture's networks (per image: positions x
/// patch values, times patch values x filters).
const BF16_SHAPES: [(&str, usize, usize, usize, usize); 4] = [
    ("square2048", 1, 2048, 2048, 2048),
    ("keras_mnist_conv2", 128, 11 * 11, 288, 64),
    ("flowers_conv2", 32, 64 * 64, 288, 64),
    ("vgg_conv3_1", 16, 56 * 56, 1152, 128),
];

type Product = fn(MatRef<'_>, MatRef<'_>, MatMut<'_>, bool, bool) -> petal_tensor::Result<()>;

/// `a (rows x k) * b (k x n)` into `out`, parallel inside the product.
fn whole(product: Product, a: &[f32], b: &[f32], out: &mut [f32], (k, n): (usize, usize)) {
    let rows = out.len() / n;
    let (a, b) = (
        MatRef::row_major(a, rows, k).unwrap(),
        MatRef::row_major(b, k, n).unwrap(),
    );
    product(a, b, MatMut::row_major(out, rows, n).unwrap(), false, true).unwrap()
}

/// One product per image, the images over the pool, as the im2col convolution runs them
/// (each image's columns, just written and still in cache, modelled by one shared `a`).
fn per_image(product: Product, a: &[f32], b: &[f32], out: &mut [f32], (k, n): (usize, usize)) {
    let positions = a.len() / k;
    out.par_chunks_mut(positions * n).for_each(|image| {
        let (a, b) = (
            MatRef::row_major(a, positions, k).unwrap(),
            MatRef::row_major(b, k, n).unwrap(),
        );
        product(
            a,
            b,
            MatMut::row_major(image, positions, n).unwrap(),
            false,
            false,
        )
        .unwrap()
    });
}

fn bench_bf16(c: &mut Criterion) {
    if let Err(e) = Precision::Bf16.supported() {
        println!("gemm_bf16 rows skipped: {e}");
        return;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("gemm_precision_2t");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, batch, positions, k, n) in BF16_SHAPES {
        let b = values(k * n, 2);
        let whole_a = values(batch * positions * k, 1);
        let mut out = vec![0.0; batch * positions * n];
        group.throughput(Throughput::Elements(2 * (batch * positions * k * n) as u64));
        let mut modes = vec![("whole", whole as fn(_, &_, &_, &mut _, _), &whole_a[..])];
        if batch > 1 {
            modes.push(("per_image", per_image, &whole_a[..positions * k]));
        }
        for (mode, run, a) in modes {
            for precision in [Precision::F32, Precision::Bf16] {
                let product: Product = match precision {
                    Precision::F32 => gemm,
                    Precision::Bf16 => gemm_bf16,
                };
                let id = BenchmarkId::new(format!("{precision}/{mode}"), name);
                group.bench_function(id, |bench| {
                    pool.install(|| bench.iter(|| run(product, a, &b, &mut out, (k, n))))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_bf16);
criterion_main!(benches);
