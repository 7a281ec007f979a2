//! The scaling model's tables for one workload: step time and efficiency at 2-64 ranks
//! on 10, 25 and 100 Gb/s links, then what moves the point where efficiency falls under
//! 80% (bf16 gradients, overlapping the backward pass).
//!
//! ```text
//! cargo run -p petal-distributed --example scaling_table -- <compute ms per step> <parameters> [latency us]
//! ```

use petal_distributed::scaling::{levers, table};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, name: &str| -> Result<f64, String> {
        args.get(i)
            .ok_or(format!(
                "missing {name}: give <compute ms per step> <parameters> [latency us]"
            ))?
            .parse::<f64>()
            .map_err(|e| format!("{name} {}: {e}", args[i]))
    };
    let compute_ms = number(0, "the compute per step (ms)")?;
    let parameters = number(1, "the parameter count")?;
    let latency_us = if args.len() > 2 {
        number(2, "the latency (us)")?
    } else {
        5.0
    };
    let (ranks, bandwidths) = ([2, 4, 8, 16, 32, 64], [10e9, 25e9, 100e9]);
    let (compute, latency) = (compute_ms / 1e3, latency_us / 1e6);
    print!(
        "{}",
        table(compute, parameters as usize, latency, &ranks, &bandwidths)
    );
    println!("\nFirst rank count under 80% efficiency:");
    print!(
        "{}",
        levers(compute, parameters as usize, latency, &ranks, &bandwidths)
    );
    Ok(())
}
