//! `cargo xtask doctor`: prints petal's environment checks and fails when one failed.

use petal::doctor::{check_environment, Status};

use crate::paths::{data_config, weights_folder};

/// Runs every check, prints the report and fails when a check failed.
pub fn run() -> anyhow::Result<()> {
    let report = check_environment(&data_config(), &weights_folder().folder);
    println!("Petal doctor");
    for finding in &report {
        println!("  {finding}");
    }
    let count = |status| report.iter().filter(|f| f.status == status).count();
    let (failed, warned) = (count(Status::Fail), count(Status::Warn));
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed (marked FAIL above); {warned} warning(s)");
    }
    println!("Everything needed is in place ({warned} warning(s)).");
    Ok(())
}
