use super::*;

/// `rows x c` values: per channel an offset of `3 + j` (so that the sums of squares
/// about zero would cancel badly) plus noise in [-0.5, 0.5), from `seed`.
fn values(rows: usize, c: usize, seed: u64) -> Tensor {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data = (0..rows * c)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            3.0 + (i % c) as f32 + noise
        })
        .collect();
    Tensor::from_vec(&[rows, c], data).unwrap()
}

/// One value per channel, from `seed`.
fn per_channel(c: usize, seed: u64) -> Tensor {
    Tensor::from_vec(&[c], values(1, c, seed).to_vec()).unwrap()
}

/// Per channel, the values of column `j` of a `rows x c` tensor, in f64.
fn column(t: &Tensor, c: usize, j: usize) -> Vec<f64> {
    t.as_slice()
        .iter()
        .skip(j)
        .step_by(c)
        .map(|&v| f64::from(v))
        .collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The shapes the tests run on: channel counts with and without a tail after the runs
/// of 16, row counts that are no multiple of the blocks, and several tasks.
const SHAPES: [(usize, usize); 7] = [
    (1, 1),
    (7, 3),
    (300, 17),
    (5000, 1),
    (4500, 17),
    (4100, 64),
    (9000, 3),
];

#[test]
fn statistics_and_gradients_match_an_f64_reference() {
    let epsilon = 1e-3;
    for (rows, c) in SHAPES {
        let (x, dy) = (values(rows, c, 1), values(rows, c, 2));
        let gamma = per_channel(c, 3);
        let beta = per_channel(c, 4);
        let (y, stats) = batch_norm_train(&x, &gamma, &beta, epsilon).unwrap();
        let (dx, dgamma, dbeta) = batch_norm_backward(&dy, &x, &stats, &gamma, epsilon).unwrap();
        let shape = format!("{rows} x {c}");
        for j in 0..c {
            let (xs, dys) = (column(&x, c, j), column(&dy, c, j));
            let m = mean(&xs);
            let var = mean(&xs.iter().map(|v| (v - m) * (v - m)).collect::<Vec<_>>());
            let std = var.sqrt();
            let got_mean = f64::from(stats.mean[j]);
            assert!(
                (got_mean - m).abs() <= 1e-6 * (m.abs() + std),
                "{shape}, channel {j}: mean {got_mean} vs {m}"
            );
            let got_var = f64::from(stats.variance[j]);
            assert!(
                (got_var - var).abs() <= 1e-5 * var + 1e-12,
                "{shape}, channel {j}: variance {got_var} vs {var}"
            );
            // The backward pass with the statistics it was given.
            let (m, inv_std) = (
                f64::from(stats.mean[j]),
                1.0 / (f64::from(stats.variance[j]) + f64::from(epsilon)).sqrt(),
            );
            let xhat: Vec<f64> = xs.iter().map(|v| (v - m) * inv_std).collect();
            let g = f64::from(gamma.as_slice()[j]);
            let sum_dy: f64 = dys.iter().sum();
            let sum_dy_xhat: f64 = dys.iter().zip(&xhat).map(|(d, h)| d * h).sum();
            let scale_dy: f64 = dys.iter().map(|d| d.abs()).sum();
            let got = f64::from(dbeta.as_slice()[j]);
            assert!(
                (got - sum_dy).abs() <= 1e-6 * scale_dy,
                "{shape}, channel {j}: dbeta {got} vs {sum_dy}"
            );
            let got = f64::from(dgamma.as_slice()[j]);
            let scale: f64 = dys.iter().zip(&xhat).map(|(d, h)| (d * h).abs()).sum();
            assert!(
                (got - sum_dy_xhat).abs() <= 1e-6 * scale,
                "{shape}, channel {j}: dgamma {got} vs {sum_dy_xhat}"
            );
            let n = rows as f64;
            for (r, ((d, h), v)) in dys.iter().zip(&xhat).zip(&xs).enumerate() {
                let want = g * inv_std / n * (n * d - sum_dy - h * sum_dy_xhat);
                // What f32 rounding of the terms alone allows.
                let bound = 1e-6
                    * (g * inv_std).abs()
                    * (d.abs() + (sum_dy.abs() + (h * sum_dy_xhat).abs()) / n);
                let got = f64::from(dx.as_slice()[r * c + j]);
                assert!(
                    (got - want).abs() <= bound,
                    "{shape}, channel {j}, row {r}: dx {got} vs {want}"
                );
                let want_y = (v - m) * inv_std * g + f64::from(beta.as_slice()[j]);
                let got_y = f64::from(y.as_slice()[r * c + j]);
                assert!(
                    (got_y - want_y).abs() <= 1e-6 * (1.0 + want_y.abs() + (m * inv_std * g).abs()),
                    "{shape}, channel {j}, row {r}: y {got_y} vs {want_y}"
                );
            }
        }
    }
}

#[test]
fn results_are_the_same_bits_on_every_run_and_thread_count() {
    // Several tasks, blocks with a short last one, runs of 16 channels and a tail.
    let (rows, c) = (3 * 4096 + 77, 21);
    let (x, dy) = (values(rows, c, 5), values(rows, c, 6));
    let (gamma, beta) = (per_channel(c, 7), per_channel(c, 8));
    let run = || {
        let (y, stats) = batch_norm_train(&x, &gamma, &beta, 1e-3).unwrap();
        let (dx, dgamma, dbeta) = batch_norm_backward(&dy, &x, &stats, &gamma, 1e-3).unwrap();
        [y, dx, dgamma, dbeta]
            .iter()
            .flat_map(|t| t.to_vec())
            .chain(stats.mean)
            .chain(stats.variance)
            .map(f32::to_bits)
            .collect::<Vec<u32>>()
    };
    let first = run();
    for threads in [1, 2, 3, 1] {
        let pool = crate::parallel::pool_of(threads);
        assert!(pool.install(run) == first, "{threads} threads");
    }
}

#[test]
fn statistics_of_another_length_are_refused() {
    let x = Tensor::zeros(&[4, 2]);
    let stats = BatchStats {
        mean: vec![0.0; 3],
        variance: vec![1.0; 3],
    };
    let gamma = Tensor::ones(&[2]);
    let error = batch_norm_backward(&x, &x, &stats, &gamma, 1e-3).unwrap_err();
    assert!(
        error.to_string().contains("one value per channel"),
        "{error}"
    );
}
