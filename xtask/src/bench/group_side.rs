//! `cargo xtask bench --distributed`: Petal's training workloads on the ranks of an MPI
//! job, to set against the plain run with as many threads in one process.

use std::time::Duration;

use super::{petal_side, BenchOptions, Workload};

/// Joins the job, runs the training workloads asked for, and prints (on rank 0) each
/// one's images/s and the share of a step its gradients' allreduce takes.
pub fn run(options: &BenchOptions) -> anyhow::Result<()> {
    let group = petal_distributed::launch(Duration::from_secs(300))?;
    petal_distributed::quiet_followers(&group)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()?;
    // Time to accuracy trains the Keras MNIST CNN, whose steps keras_mnist_train times.
    let steps = options
        .workloads()
        .into_iter()
        .filter(|&w| w != Workload::KerasMnistTo99);
    for workload in steps {
        let measured = pool.install(|| petal_side::measure_in_group(workload, options, &group))?;
        let Some(figures) = measured else { continue };
        let step_seconds = figures.batch as f64 / figures.rate.median;
        println!(
            "{:<24} {} ranks x {} threads {:>9.1} images/s (best {:.1})  allreduce {:.2} ms = {:.1}% of a {:.1} ms step",
            workload.name(),
            group.world_size(),
            options.threads,
            figures.rate.median,
            figures.rate.best,
            figures.allreduce_seconds * 1e3,
            100.0 * figures.allreduce_seconds / step_seconds,
            step_seconds * 1e3,
        );
    }
    Ok(())
}
