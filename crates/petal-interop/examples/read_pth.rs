//! Reads a `.pth` checkpoint and prints its tensors' count, values and the time taken:
//! the measurement behind "a 100 MB checkpoint in < 1 s and < 2x its size in memory".
//!
//! ```sh
//! cargo build --release -p petal-interop --example read_pth
//! /usr/bin/time -v target/release/examples/read_pth big.pth
//! ```

use std::path::PathBuf;
use std::time::Instant;

use petal_interop::pth::{read_state_dict, ReadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: read_pth FILE.pth")?
        .into();
    let start = Instant::now();
    let state = read_state_dict(&path, &ReadOptions::default())?;
    let elapsed = start.elapsed();
    let values: usize = state.values().map(|t| t.tensor.as_slice().len()).sum();
    println!(
        "{}: {} tensors, {values} values, read in {:.3} s",
        path.display(),
        state.len(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
