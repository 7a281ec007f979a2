//! Data-parallel `fit` on a group of threads (`local_group`): the same weights as one
//! process with the global batch, refusals by name, drift detection, sharded
//! validation, and resuming only with the same world size. The MPI version of these
//! runs in petal-distributed's tests.

mod common;

use std::sync::Arc;
use std::time::Duration;

use petal_data::InMemoryDataset;
use petal_nn::layers::{BatchNormConfig, DenseConfig, FlattenConfig};
use petal_nn::{Model, Sequential};
use petal_optim::{Adam, AdamConfig};
use petal_train::callbacks::{Callback, Control, CsvLogger};
use petal_train::checkpoint::CheckpointConfig;
use petal_train::distributed::{
    local_group, Communicator, Distributed, LocalCommunicator, SingleProcess,
};
use petal_train::{FitConfig, History, Result, Trainer, Validation};

/// Runs `body` on every rank of a thread group of `n`, rank `r` in its own thread.
fn on_ranks<T: Send>(n: usize, body: impl Fn(LocalCommunicator) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let body = &body;
        let ranks: Vec<_> = local_group(n, Duration::from_secs(60))
            .into_iter()
            .map(|comm| scope.spawn(move || body(comm)))
            .collect();
        ranks.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

fn config(batch_size: usize, epochs: usize, distributed: Option<Distributed>) -> FitConfig {
    FitConfig {
        epochs,
        batch_size,
        shuffle_seed: Some(3),
        seed: 5,
        verbose: false,
        prefetch: 0,
        distributed,
        ..FitConfig::default()
    }
}

fn dist(comm: LocalCommunicator, check_every: u64) -> Option<Distributed> {
    Some(Distributed {
        check_every,
        ..Distributed::new(Arc::new(comm))
    })
}

/// Trains `model` with Adam on `data` (validating on `val`) as `config` says.
fn train(
    model: &mut Model,
    lr: f32,
    data: &InMemoryDataset,
    val: &InMemoryDataset,
    config: &FitConfig,
) -> Result<History> {
    Trainer::new(model, Adam::new(AdamConfig::new(lr))).fit(data, Validation::Data(val), config)
}

fn weights(model: &Model) -> Vec<f32> {
    model
        .store()
        .iter()
        .flat_map(|(_, p)| p.value.as_slice().to_vec())
        .collect()
}

/// The largest difference relative to the largest weight.
fn relative_gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn ranks_with_part_of_the_batch_train_the_weights_of_one_process_with_all_of_it() {
    let data = common::quadrants(203, 1); // a short last batch of 11 samples
    let val = common::quadrants(50, 2);
    let mut single = common::model(7, 0.0);
    let single_history = train(&mut single, 0.01, &data, &val, &config(32, 2, None)).unwrap();
    for world in [2, 4] {
        let ranks = on_ranks(world, |comm| {
            // Each rank initializes differently: rank 0's weights must win.
            let mut model = common::model(7 + comm.rank() as u64, 0.0);
            let history =
                train(&mut model, 0.01, &data, &val, &config(32, 2, dist(comm, 3))).unwrap();
            (weights(&model), history)
        });
        for (w, history) in &ranks {
            assert_eq!(w, &ranks[0].0, "the replicas must stay identical");
            let gap = relative_gap(w, &weights(&single));
            assert!(gap < 1e-5, "{world} ranks: {gap} relative to one process");
            // Validation is sharded and gathered: the figures of one process.
            for key in ["val_accuracy", "val_loss"] {
                let (a, b) = (
                    history.last(key).unwrap(),
                    single_history.last(key).unwrap(),
                );
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{key}: {a} vs {b}"
                );
            }
            let (a, b) = (
                history.last("accuracy").unwrap(),
                single_history.last("accuracy").unwrap(),
            );
            assert!((a - b).abs() < 1e-6, "training accuracy {a} vs {b}");
            assert!(history.last("allreduce_share").is_some());
        }
    }
}

#[test]
fn the_single_process_communicator_changes_nothing() {
    let data = common::quadrants(100, 1);
    let mut plain = common::model(7, 0.3);
    train(&mut plain, 0.01, &data, &data, &config(16, 2, None)).unwrap();
    let mut trivial = common::model(7, 0.3);
    let one = Some(Distributed::new(Arc::new(SingleProcess)));
    train(&mut trivial, 0.01, &data, &data, &config(16, 2, one)).unwrap();
    assert_eq!(weights(&plain), weights(&trivial));
}

#[test]
fn more_ranks_than_samples_in_the_last_batch_still_agree_with_one_process() {
    let data = common::quadrants(33, 4); // last batch: 1 sample for 4 ranks
    let mut single = common::model(2, 0.0);
    train(&mut single, 0.01, &data, &data, &config(8, 1, None)).unwrap();
    let ranks = on_ranks(4, |comm| {
        let mut model = common::model(2, 0.0);
        train(&mut model, 0.01, &data, &data, &config(8, 1, dist(comm, 1))).unwrap();
        weights(&model)
    });
    assert!(relative_gap(&ranks[3], &weights(&single)) < 1e-5);
}

/// Buckets of 3 values split every tensor and the loss/count tail across many
/// allreduces: each value lands where one bucket of everything puts it, bit for bit.
#[test]
fn small_buckets_average_the_same_values_as_one_bucket() {
    let data = common::quadrants(64, 1);
    let run = |bucket_floats: usize| {
        on_ranks(2, |comm| {
            let mut model = common::model(4, 0.0);
            let group = Distributed {
                bucket_floats,
                ..dist(comm, 1).unwrap()
            };
            train(&mut model, 0.01, &data, &data, &config(16, 1, Some(group))).unwrap();
            weights(&model)
        })
    };
    assert_eq!(run(3), run(1 << 20));
}

/// A dense network with a BatchNorm layer between its two dense layers. The first has
/// no bias: batch norm cancels it, so its gradient would be rounding noise, which Adam
/// turns into steps of the learning rate's size.
fn batch_norm_model() -> Model {
    Sequential::new(&[1, 1, 2], 0)
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig {
            use_bias: false,
            ..DenseConfig::new(8)
        })
        .unwrap()
        .add(BatchNormConfig::default())
        .unwrap()
        .add(DenseConfig::new(4))
        .unwrap()
        .build()
        .unwrap()
}

#[test]
fn batch_norm_statistics_are_averaged_so_replicas_stay_identical() {
    let data = common::quadrants(96, 1);
    let ranks = on_ranks(2, |comm| {
        let mut model = batch_norm_model();
        train(
            &mut model,
            0.01,
            &data,
            &data,
            &config(16, 2, dist(comm, 1)),
        )
        .unwrap();
        weights(&model)
    });
    assert_eq!(ranks[0], ranks[1]);
}

/// With synchronized batch norm, ranks normalize with the global batch's statistics:
/// the weights (moving statistics included) of one process with the whole batch, also
/// through a short last batch split unevenly (3 samples: 1 and 2). Per-rank batch norm
/// does not give them.
#[test]
fn synchronized_batch_norm_trains_the_weights_of_one_process() {
    let data = common::quadrants(99, 1);
    let mut single = batch_norm_model();
    train(&mut single, 0.01, &data, &data, &config(16, 2, None)).unwrap();
    let run = |sync_batch_norm: bool| {
        on_ranks(2, |comm| {
            let group = Distributed {
                sync_batch_norm,
                ..dist(comm, 1).unwrap()
            };
            let mut model = batch_norm_model();
            train(&mut model, 0.01, &data, &data, &config(16, 2, Some(group))).unwrap();
            weights(&model)
        })
    };
    let synchronized = run(true);
    assert_eq!(synchronized[0], synchronized[1]);
    let gap = relative_gap(&synchronized[0], &weights(&single));
    assert!(gap < 1e-5, "synchronized: {gap} relative to one process");
    let per_rank = relative_gap(&run(false)[0], &weights(&single));
    assert!(per_rank > 1e-3, "per-rank batch norm: {per_rank}");
}

#[test]
fn synchronized_batch_norm_is_refused_when_a_rank_would_get_no_sample() {
    let data = common::quadrants(97, 1); // last batch: 1 sample for 2 ranks
    let errors = on_ranks(2, |comm| {
        let group = Distributed {
            sync_batch_norm: true,
            ..dist(comm, 1).unwrap()
        };
        let mut model = batch_norm_model();
        train(&mut model, 0.01, &data, &data, &config(16, 1, Some(group)))
            .unwrap_err()
            .to_string()
    });
    assert!(
        errors[0].contains("the last batch of the 97 training samples has 1 for 2 ranks"),
        "{}",
        errors[0]
    );
    let mixed = on_ranks(2, |comm| {
        let group = Distributed {
            sync_batch_norm: comm.rank() == 1,
            ..dist(comm, 1).unwrap()
        };
        train(
            &mut batch_norm_model(),
            0.01,
            &data,
            &data,
            &config(16, 1, Some(group)),
        )
        .unwrap_err()
        .to_string()
    });
    assert!(
        mixed[0].contains("synchronized batch norm: rank 0 has off, rank 1 has on"),
        "{}",
        mixed[0]
    );
}

/// Stops training at its second step; only rank 0 runs it.
struct StopOnRankZero;

impl Callback for StopOnRankZero {
    fn on_batch_end(&mut self, step: u64, _loss: f32) -> Result<Control> {
        Ok(match step {
            2 => Control::Stop("enough".into()),
            _ => Control::Continue,
        })
    }
    fn leader_only(&self) -> bool {
        true
    }
}

/// Callbacks that write files run on rank 0 only; a stop that rank 0 alone hears stops
/// every rank at the end of the epoch.
#[test]
fn only_rank_0_runs_leader_only_callbacks_and_its_stop_reaches_every_rank() {
    let data = common::quadrants(64, 1);
    let dir = tempfile::tempdir().unwrap();
    let histories = on_ranks(2, |comm| {
        let csv = dir.path().join(format!("rank{}.csv", comm.rank()));
        let mut model = common::model(4, 0.0);
        Trainer::new(&mut model, Adam::new(AdamConfig::new(0.01)))
            .callback(CsvLogger::new(csv))
            .callback(StopOnRankZero)
            .fit(&data, Validation::None, &config(16, 3, dist(comm, 1)))
            .unwrap()
    });
    assert!(dir.path().join("rank0.csv").exists());
    assert!(!dir.path().join("rank1.csv").exists());
    for history in &histories {
        assert_eq!(history.epochs.len(), 1, "every rank stops after epoch 1");
    }
    assert_eq!(histories[0].stop_reason.as_deref(), Some("enough"));
    assert_eq!(
        histories[1].stop_reason.as_deref(),
        Some("a callback of rank 0 stopped the run")
    );
}

#[test]
fn mismatched_settings_and_data_are_refused_by_name() {
    let data = common::quadrants(64, 1);
    let other = common::quadrants(64, 9);
    let seed = on_ranks(2, |comm| {
        let rank = comm.rank();
        let config = FitConfig {
            seed: 5 + rank as u64,
            ..config(16, 1, dist(comm, 10))
        };
        train(&mut common::model(0, 0.0), 0.01, &data, &data, &config)
            .unwrap_err()
            .to_string()
    });
    assert_eq!(
        seed[0],
        "distributed training: the ranks disagree on the seed: rank 0 has 5, rank 1 has 6"
    );
    assert_eq!(seed[0], seed[1]);
    let data_error = on_ranks(3, |comm| {
        let mine = if comm.rank() == 2 { &other } else { &data };
        train(
            &mut common::model(0, 0.0),
            0.01,
            mine,
            &data,
            &config(15, 1, dist(comm, 10)),
        )
        .unwrap_err()
        .to_string()
    });
    assert!(
        data_error[1].contains("disagree on the training data: rank 0 has checksum"),
        "{}",
        data_error[1]
    );
    assert!(data_error[1].contains("rank 2 has checksum") && !data_error[1].contains("rank 1 has"));
    let batch = on_ranks(2, |comm| {
        let batch = 16 + 16 * comm.rank();
        train(
            &mut common::model(0, 0.0),
            0.01,
            &data,
            &data,
            &config(batch, 1, dist(comm, 10)),
        )
        .unwrap_err()
        .to_string()
    });
    assert!(
        batch[0].contains("the batch size: rank 0 has 16, rank 1 has 32"),
        "{}",
        batch[0]
    );
    let uneven = on_ranks(2, |comm| {
        train(
            &mut common::model(0, 0.0),
            0.01,
            &data,
            &data,
            &config(15, 1, dist(comm, 10)),
        )
        .unwrap_err()
        .to_string()
    });
    assert!(
        uneven[0]
            .contains("the batch size 15 (the global batch) does not split evenly over 2 ranks"),
        "{}",
        uneven[0]
    );
}

#[test]
fn replicas_that_drift_apart_stop_the_run_naming_the_ranks() {
    let data = common::quadrants(64, 1);
    // Rank 2 steps with another learning rate, which no start check sees.
    let errors = on_ranks(3, |comm| {
        let lr = if comm.rank() == 2 { 0.02 } else { 0.01 };
        train(
            &mut common::model(0, 0.0),
            lr,
            &data,
            &data,
            &config(18, 2, dist(comm, 2)),
        )
        .unwrap_err()
        .to_string()
    });
    for e in &errors {
        assert!(
            e.contains("the ranks disagree on the weights after step 2 (the replicas drifted apart): rank 0 has checksum"),
            "{e}"
        );
        assert!(
            e.contains("rank 2 has checksum") && !e.contains("rank 1 has"),
            "{e}"
        );
    }
}

#[test]
fn only_rank_0_saves_and_resuming_needs_the_same_world_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::quadrants(64, 1);
    let checkpointed = |comm: LocalCommunicator, path: &std::path::Path, epochs, resume| {
        let mut model = common::model(0, 0.0);
        let config = FitConfig {
            checkpoint: Some(CheckpointConfig {
                resume,
                ..CheckpointConfig::new(path)
            }),
            ..config(16, epochs, dist(comm, 10))
        };
        train(&mut model, 0.01, &data, &data, &config).map(|h| (weights(&model), h.epochs.len()))
    };
    let (a, b) = (dir.path().join("a.ckpt"), dir.path().join("b.ckpt"));
    // 3 epochs at once, or 1 then resumed to 3: the same weights on both ranks.
    let straight = on_ranks(2, |comm| checkpointed(comm, &a, 3, false).unwrap());
    on_ranks(2, |comm| checkpointed(comm, &b, 1, false).unwrap());
    let resumed = on_ranks(2, |comm| checkpointed(comm, &b, 3, true).unwrap());
    assert_eq!(straight, resumed);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "one file per run, from rank 0"
    );
    let four = on_ranks(4, |comm| {
        checkpointed(comm, &b, 4, true).unwrap_err().to_string()
    });
    assert!(
        four[3].contains("world size (processes): 2 in the checkpoint, 4 in this run"),
        "{}",
        four[3]
    );
}
