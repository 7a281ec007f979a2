//! A model of data-parallel scaling past one machine: the step time at N ranks from
//! the measured compute per step and the cost of a ring allreduce of the gradients.
//!
//! A ring allreduce of `b` bytes over `N` ranks sends `2 (N - 1) / N x b` bytes from
//! every rank in `2 (N - 1)` rounds, so it takes
//! `2 (N - 1) / N x b / bandwidth + 2 (N - 1) x latency`. With a fixed per-rank batch
//! (weak scaling) the compute per step stays that of one rank, and without overlap a
//! step takes compute + allreduce; the scaling efficiency is compute / step. Gradients
//! sent in several buckets pay the latency rounds once per bucket; buckets sent while
//! the backward pass still runs hide that much of the allreduce behind the compute.

/// One workload on one network: what a step computes and sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RingModel {
    /// Seconds of forward and backward per step on one rank (measured).
    pub compute_seconds: f64,
    /// Bytes of gradients averaged per step (4 per parameter in f32, 2 in bf16).
    pub gradient_bytes: f64,
    /// Link bandwidth, bits per second (10 Gb/s: `10e9`).
    pub bandwidth_bits: f64,
    /// Latency of one message, seconds.
    pub latency_seconds: f64,
    /// Allreduces per step: the gradients go in this many buckets, each paying the
    /// latency rounds (1: one allreduce of them all).
    pub buckets: usize,
    /// The share of the compute the allreduce can run behind: up to the backward pass's
    /// (about 2/3 of a step) when each bucket is sent as soon as its gradients are
    /// ready; 0 when the allreduce starts after backward, as Petal's does.
    pub overlap: f64,
}

impl RingModel {
    /// The model of how Petal averages today: one allreduce of `parameters` f32
    /// gradients after the backward pass (one bucket, no overlap).
    pub fn after_backward(
        compute_seconds: f64,
        parameters: usize,
        bandwidth_bits: f64,
        latency_seconds: f64,
    ) -> Self {
        Self {
            compute_seconds,
            gradient_bytes: 4.0 * parameters as f64,
            bandwidth_bits,
            latency_seconds,
            buckets: 1,
            overlap: 0.0,
        }
    }

    /// Seconds of one ring allreduce of the gradients over `ranks` processes (0 for one).
    ///
    /// ```
    /// use petal_distributed::scaling::RingModel;
    /// // 100 MB of gradients at 10 Gb/s over 2 ranks: 2 x 1/2 x 0.8 Gbit / 10 Gb/s.
    /// let model = RingModel { compute_seconds: 1.0, gradient_bytes: 1e8, bandwidth_bits: 10e9, latency_seconds: 0.0, buckets: 1, overlap: 0.0 };
    /// assert!((model.allreduce_seconds(2) - 0.08).abs() < 1e-12);
    /// assert_eq!(model.allreduce_seconds(1), 0.0);
    /// ```
    pub fn allreduce_seconds(&self, ranks: usize) -> f64 {
        if ranks < 2 {
            return 0.0;
        }
        let n = ranks as f64;
        let rounds = 2.0 * (n - 1.0);
        rounds / n * self.gradient_bytes * 8.0 / self.bandwidth_bits
            + self.buckets as f64 * rounds * self.latency_seconds
    }

    /// Seconds of one step at `ranks` ranks: the compute, then what of the allreduce
    /// it could not hide.
    ///
    /// ```
    /// use petal_distributed::scaling::RingModel;
    /// // 10 ms of compute and 8 ms of allreduce: 18 ms in sequence; with 2/3 of the
    /// // compute to hide behind, only 8 - 6.67 ms show.
    /// let model = RingModel { compute_seconds: 0.01, gradient_bytes: 1e7, bandwidth_bits: 10e9, latency_seconds: 0.0, buckets: 1, overlap: 0.0 };
    /// assert!((model.step_seconds(2) - 0.018).abs() < 1e-12);
    /// let overlapped = RingModel { overlap: 2.0 / 3.0, ..model };
    /// assert!((overlapped.step_seconds(2) - (0.01 + 0.008 - 0.02 / 3.0)).abs() < 1e-12);
    /// ```
    pub fn step_seconds(&self, ranks: usize) -> f64 {
        let hidden = self.overlap * self.compute_seconds;
        self.compute_seconds + (self.allreduce_seconds(ranks) - hidden).max(0.0)
    }

    /// The share of the ideal speed-up reached at `ranks` ranks: compute / step.
    pub fn efficiency(&self, ranks: usize) -> f64 {
        self.compute_seconds / self.step_seconds(ranks)
    }

    /// The smallest rank count in `ranks` whose efficiency falls under `threshold`.
    ///
    /// ```
    /// use petal_distributed::scaling::RingModel;
    /// let model = RingModel { compute_seconds: 0.01, gradient_bytes: 4e6, bandwidth_bits: 10e9, latency_seconds: 5e-6, buckets: 1, overlap: 0.0 };
    /// assert_eq!(model.first_below(0.8, [2, 4, 8, 16, 32, 64]), Some(2));
    /// let faster = RingModel { bandwidth_bits: 25e9, ..model };
    /// assert_eq!(faster.first_below(0.8, [2, 4, 8, 16, 32, 64]), Some(16));
    /// ```
    pub fn first_below(
        &self,
        threshold: f64,
        ranks: impl IntoIterator<Item = usize>,
    ) -> Option<usize> {
        ranks.into_iter().find(|&n| self.efficiency(n) < threshold)
    }
}

/// A markdown table of the step time and efficiency of a workload at each rank count
/// and bandwidth: `compute_seconds` per step on one rank, `parameters` f32 gradients,
/// `latency_seconds` per message. The last column is the first rank count under 80%
/// efficiency at each bandwidth (`-` when none of `ranks` is).
///
/// ```
/// use petal_distributed::scaling::table;
/// let text = table(0.05, 1_000_000, 5e-6, &[2, 64], &[10e9]);
/// assert!(text.starts_with("| Gb/s | 2 ranks | 64 ranks | under 80% from |"));
/// assert!(text.contains("| 10 | 53.2 ms (94%) |")); // 4 MB over 10 Gb/s: 3.2 ms
/// ```
pub fn table(
    compute_seconds: f64,
    parameters: usize,
    latency_seconds: f64,
    ranks: &[usize],
    bandwidths_bits: &[f64],
) -> String {
    let header: Vec<String> = ranks.iter().map(|n| format!("{n} ranks")).collect();
    let mut out = format!("| Gb/s | {} | under 80% from |\n", header.join(" | "));
    out += &format!("|---|{}---|\n", "---|".repeat(ranks.len()));
    for &bandwidth_bits in bandwidths_bits {
        let model =
            RingModel::after_backward(compute_seconds, parameters, bandwidth_bits, latency_seconds);
        let cells: Vec<String> = (ranks.iter())
            .map(|&n| {
                format!(
                    "{:.1} ms ({:.0}%)",
                    model.step_seconds(n) * 1e3,
                    model.efficiency(n) * 100.0
                )
            })
            .collect();
        let first = model
            .first_below(0.8, ranks.iter().copied())
            .map_or("-".to_string(), |n| n.to_string());
        out += &format!(
            "| {} | {} | {first} |\n",
            bandwidth_bits / 1e9,
            cells.join(" | ")
        );
    }
    out
}

/// Bytes per bucket when the allreduce overlaps the backward pass in [`levers`] (Petal's
/// default bucket, `Distributed::bucket_floats` x 4 bytes).
const BUCKET_BYTES: f64 = 4.0 * 1024.0 * 1024.0;

/// What moves the point where efficiency falls under 80%: for each bandwidth, the first
/// rank count under it (`-`: none of `ranks`) as Petal runs (one allreduce of f32
/// gradients after the backward pass), with bf16 gradients (half the bytes), with the
/// allreduce in 4 MiB buckets overlapping the backward pass (2/3 of the compute), and
/// with both.
///
/// ```
/// use petal_distributed::scaling::levers;
/// // 20 ms of compute, 25 M parameters (100 MB of f32 gradients), 10 us latency.
/// let text = levers(0.02, 25_000_000, 1e-5, &[2, 4, 8, 16], &[100e9]);
/// // f32 after backward: 8 ms of allreduce at 2 ranks, 71%; bf16 halves it (83% at 2);
/// // overlapped, 24 buckets hide behind 13.3 ms of backward until 16 ranks.
/// assert!(text.contains("| 100 | 2 | 4 | 16 | - |"), "{text}");
/// ```
pub fn levers(
    compute_seconds: f64,
    parameters: usize,
    latency_seconds: f64,
    ranks: &[usize],
    bandwidths_bits: &[f64],
) -> String {
    let mut out = "| Gb/s | as Petal runs | bf16 gradients | overlapped, 4 MiB buckets | both |\n"
        .to_string();
    out += "|---|---|---|---|---|\n";
    for &bandwidth_bits in bandwidths_bits {
        let first_below = |bytes_per_value: f64, overlapped: bool| {
            let gradient_bytes = bytes_per_value * parameters as f64;
            let model = RingModel {
                gradient_bytes,
                buckets: match overlapped {
                    true => (gradient_bytes / BUCKET_BYTES).ceil().max(1.0) as usize,
                    false => 1,
                },
                overlap: if overlapped { 2.0 / 3.0 } else { 0.0 },
                ..RingModel::after_backward(
                    compute_seconds,
                    parameters,
                    bandwidth_bits,
                    latency_seconds,
                )
            };
            model
                .first_below(0.8, ranks.iter().copied())
                .map_or("-".to_string(), |n| n.to_string())
        };
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            bandwidth_bits / 1e9,
            first_below(4.0, false),
            first_below(2.0, false),
            first_below(4.0, true),
            first_below(2.0, true),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: RingModel = RingModel {
        compute_seconds: 0.05,
        gradient_bytes: 4.0e6,
        bandwidth_bits: 25e9,
        latency_seconds: 1e-5,
        buckets: 1,
        overlap: 0.0,
    };

    #[test]
    fn the_ring_sends_twice_the_gradients_at_most_plus_a_latency_per_round() {
        // 32 Mbit / 25 Gb/s = 1.28 ms. By hand: N = 2: 2 x 1/2 x 1.28 ms + 2 x 10 us =
        // 1.30 ms; N = 8: 2 x 7/8 x 1.28 + 14 x 0.01 = 2.38 ms; N = 64: 2 x 63/64 x 1.28
        // + 126 x 0.01 = 2.52 + 1.26 = 3.78 ms.
        let bits = 4.0e6 * 8.0;
        for (n, ms) in [(2usize, 1.30), (8, 2.38), (64, 3.78)] {
            let got = MODEL.allreduce_seconds(n) * 1e3;
            assert!((got - ms).abs() < 1e-9, "{n} ranks: {got} ms, not {ms}");
        }
        // The bandwidth term approaches 2 x bytes / bandwidth from below.
        let no_latency = RingModel {
            latency_seconds: 0.0,
            ..MODEL
        };
        assert!(no_latency.allreduce_seconds(1024) < 2.0 * bits / 25e9);
        assert!(no_latency.allreduce_seconds(1024) > 1.99 * bits / 25e9);
    }

    #[test]
    fn efficiency_falls_with_ranks_and_rises_with_bandwidth() {
        let ranks = [2usize, 4, 8, 16, 32, 64];
        let e: Vec<f64> = ranks.iter().map(|&n| MODEL.efficiency(n)).collect();
        assert!(e.windows(2).all(|w| w[1] < w[0]), "{e:?}");
        assert_eq!(MODEL.efficiency(1), 1.0);
        let faster = RingModel {
            bandwidth_bits: 100e9,
            ..MODEL
        };
        assert!(ranks
            .iter()
            .all(|&n| faster.efficiency(n) > MODEL.efficiency(n)));
        // 10 ms of compute: f32 gradients fall under 80% at 16 ranks on 25 Gb/s (2.55 ms
        // of allreduce), bf16 ones (half the bytes) stay above it up to 64.
        let short = RingModel {
            compute_seconds: 0.01,
            latency_seconds: 5e-6,
            ..MODEL
        };
        assert_eq!(short.first_below(0.8, ranks), Some(16));
        let bf16 = RingModel {
            gradient_bytes: 2.0e6,
            ..short
        };
        assert_eq!(bf16.first_below(0.8, ranks), None);
    }
}
