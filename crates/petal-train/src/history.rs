//! The per-epoch record of a training run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The figures of one epoch, by name (`loss`, `accuracy`, `val_loss`, `val_accuracy`,
/// `lr`, `seconds`, `images_per_second`, `data_wait_share`: the part of the training
/// time spent waiting for batches).
pub type EpochLogs = BTreeMap<String, f64>;

/// What `fit` measured, epoch by epoch (Keras' `History`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One entry per finished epoch.
    pub epochs: Vec<EpochLogs>,
    /// Why training ended before its last epoch, if it did.
    pub stop_reason: Option<String>,
}

impl History {
    /// The values of one figure over the epochs (epochs without it are skipped).
    ///
    /// ```
    /// use petal_train::History;
    /// let mut h = History::default();
    /// h.epochs.push([("loss".to_string(), 0.5)].into());
    /// h.epochs.push([("loss".to_string(), 0.25)].into());
    /// assert_eq!(h.metric("loss"), vec![0.5, 0.25]);
    /// ```
    pub fn metric(&self, name: &str) -> Vec<f64> {
        self.epochs
            .iter()
            .filter_map(|e| e.get(name).copied())
            .collect()
    }

    /// The last value of a figure.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.epochs.last().and_then(|e| e.get(name).copied())
    }

    /// The 1-based epoch where `name` was highest (`higher_is_better`, e.g.
    /// `val_accuracy`) or lowest (e.g. `val_loss`), the earliest of equals; `None` when
    /// no epoch logged it. Useful to retrain for exactly the epochs validation chose.
    ///
    /// ```
    /// use petal_train::History;
    /// let mut h = History::default();
    /// for accuracy in [0.5, 0.8, 0.7, 0.8] {
    ///     h.epochs.push([("val_accuracy".to_string(), accuracy)].into());
    /// }
    /// assert_eq!(h.best_epoch("val_accuracy", true), Some(2));
    /// assert_eq!(h.best_epoch("val_accuracy", false), Some(1));
    /// assert_eq!(History::default().best_epoch("val_accuracy", true), None);
    /// ```
    pub fn best_epoch(&self, name: &str, higher_is_better: bool) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (epoch, logs) in self.epochs.iter().enumerate() {
            let Some(&value) = logs.get(name) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((_, b)) if higher_is_better => value > b,
                Some((_, b)) => value < b,
            };
            if better {
                best = Some((epoch + 1, value));
            }
        }
        best.map(|(epoch, _)| epoch)
    }
}
