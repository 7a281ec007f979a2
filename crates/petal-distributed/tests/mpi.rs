//! The MPI runs: `mpirun -n 2` on the `data_parallel` example against one process,
//! twice for determinism, and with a rank killed or frozen mid-epoch. Skipped (with the
//! reason shown as the test's ignore note) without the `mpi` feature; with it, a
//! missing `mpirun` fails the tests with how to install it.

#[cfg(not(feature = "mpi"))]
#[test]
#[ignore = "built without the `mpi` feature: cargo test -p petal-distributed --features mpi"]
fn mpi_runs() {}

#[cfg(feature = "mpi")]
mod with_mpi {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use petal_nn::weights::read_tensors;

    /// The example binary cargo builds beside this test (target/<profile>/examples/).
    fn example() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        profile_dir.join("examples").join("data_parallel")
    }

    /// The run both interrupt tests start and resume: 4 epochs of 20 steps.
    const INTERRUPTED_RUN: [&str; 6] = ["--epochs", "4", "--batch", "16", "--samples", "320"];

    /// `mpirun` for 2 local ranks of one thread each; the tests were asked for with the
    /// `mpi` feature, so a missing `mpirun` fails them, saying how to install it.
    fn mpirun() -> Command {
        assert!(
            Command::new("mpirun").arg("--version").output().is_ok(),
            "no mpirun on PATH: apt-get install openmpi-bin libopenmpi-dev"
        );
        let mut command = Command::new("mpirun");
        command
            .args([
                "-n",
                "2",
                "--oversubscribe",
                "--allow-run-as-root",
                "--bind-to",
                "none",
            ])
            .args(["-x", "RAYON_NUM_THREADS=1"])
            .arg(example())
            .env("RAYON_NUM_THREADS", "1");
        command
    }

    fn alone() -> Command {
        let mut command = Command::new(example());
        command.env("RAYON_NUM_THREADS", "1");
        command
    }

    fn run(mut command: Command, args: &[&str]) -> Output {
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{}\n{}",
            stdout(&output),
            stderr(&output)
        );
        output
    }

    fn stdout(output: &Output) -> String {
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn stderr(output: &Output) -> String {
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn weights(path: &Path) -> Vec<f32> {
        let tensors = read_tensors(path).unwrap(); // by name
        tensors
            .values()
            .flat_map(|t| t.as_slice().to_vec())
            .collect()
    }

    #[test]
    fn two_ranks_give_the_weights_of_one_process_with_the_whole_batch_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let out = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let common = ["--epochs", "2", "--batch", "32", "--samples", "300"];
        run(alone(), &[&common[..], &["--out", &out("one")]].concat());
        let first = run(mpirun(), &[&common[..], &["--out", &out("two")]].concat());
        run(mpirun(), &[&common[..], &["--out", &out("again")]].concat());
        // Only rank 0 prints: its progress and its report, once each.
        for line in ["Epoch 1/2 - ", "val_accuracy 1.0000 after 2 epochs"] {
            assert_eq!(
                stdout(&first).matches(line).count(),
                1,
                "{}",
                stdout(&first)
            );
        }
        let (one, two) = (
            weights(Path::new(&out("one"))),
            weights(Path::new(&out("two"))),
        );
        let scale = one.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let gap = one
            .iter()
            .zip(&two)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        assert!(
            gap < 1e-5,
            "2 ranks x 16 vs 1 process x 32: relative gap {gap}"
        );
        assert_eq!(
            two,
            weights(Path::new(&out("again"))),
            "same seed, world size, threads: same bits"
        );
    }

    /// Waits for `child` at most `limit`; kills it and fails past that.
    fn wait_within(child: &mut Child, limit: Duration) -> (bool, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.success(), started.elapsed());
            }
            if started.elapsed() > limit {
                child.kill().unwrap();
                panic!("the job did not stop within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a slow checkpointed 2-rank run, waits for its first checkpoint, sends
    /// `signal` to rank 1 and returns the job's output once it stopped (within the
    /// timeout plus a margin).
    fn interrupt_rank_1(signal: &str, dir: &Path) -> String {
        let ckpt = dir.join("run.ckpt");
        let mut command = mpirun();
        command
            .args(INTERRUPTED_RUN)
            .args(["--step-delay-ms", "40"])
            .args(["--every-steps", "5", "--timeout-secs", "4"])
            .arg("--checkpoint")
            .arg(&ckpt)
            .arg("--pid-dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let started = Instant::now();
        while !(ckpt.exists() && dir.join("rank1.pid").exists()) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no checkpoint appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = std::fs::read_to_string(dir.join("rank1.pid")).unwrap();
        assert!(Command::new("kill")
            .args([signal, pid.trim()])
            .status()
            .unwrap()
            .success());
        let (success, took) = wait_within(&mut child, Duration::from_secs(30));
        assert!(!success, "the job must fail when a rank is lost");
        let output = child.wait_with_output().unwrap();
        let text = format!("{}\n{}", stdout(&output), stderr(&output));
        assert!(
            took < Duration::from_secs(4 + 10),
            "stopped after {took:?}\n{text}"
        );
        text
    }

    /// The checkpoint left behind reads, and `--resume` finishes the run from it.
    fn resumes(dir: &Path) {
        let ckpt = dir.join("run.ckpt");
        let saved = petal_train::checkpoint::read(&ckpt).unwrap();
        assert!(
            saved.position.step > 0 && saved.position.epoch < 4,
            "{:?}",
            saved.position
        );
        let output = run(
            mpirun(),
            &[
                &INTERRUPTED_RUN[..],
                &["--resume", "--checkpoint", ckpt.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(
            stdout(&output).contains("resuming from"),
            "{}",
            stdout(&output)
        );
        assert!(
            stdout(&output).contains("after 4 epochs"),
            "{}",
            stdout(&output)
        );
    }

    #[test]
    fn a_killed_rank_stops_the_job_by_name_and_the_checkpoint_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let text = interrupt_rank_1("-KILL", dir.path());
        // mpirun's own notice, or the watchdog's.
        assert!(
            text.contains("rank 1 with PID") || text.contains("rank 1 did not answer"),
            "{text}"
        );
        resumes(dir.path());
    }

    #[test]
    fn a_frozen_rank_is_named_by_the_watchdog_and_the_checkpoint_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let text = interrupt_rank_1("-STOP", dir.path());
        assert!(text.contains("rank 0: the allreduce"), "{text}");
        assert!(
            text.contains("rank 1 did not answer: it died or hangs"),
            "{text}"
        );
        resumes(dir.path());
    }
}
