//! The process's peak resident memory (Linux `VmHWM`), reset before each workload so that
//! it covers that workload (plus whatever earlier workloads left resident: for a clean
//! figure run one workload, `--only`).

/// Resets the peak to the current resident size (writing 5 to `/proc/self/clear_refs`);
/// a no-op where that file does not exist.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident memory since the last [`reset_peak`], in MiB (`None` off Linux).
pub fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_grows_with_touched_memory() {
        reset_peak();
        let Some(before) = peak_mib() else {
            return; // not Linux
        };
        let block = vec![1u8; 64 << 20];
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        let after = peak_mib().unwrap();
        assert!(after >= before + 60.0, "{before} -> {after}");
    }
}
