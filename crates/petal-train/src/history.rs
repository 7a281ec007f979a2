//! The per-epoch record of a training run.

use std::collections::BTreeMap;

use serde::Serialize;

/// The figures of one epoch, by name (`loss`, `accuracy`, `val_loss`, `val_accuracy`,
/// `lr`, `seconds`, `images_per_second`, `data_wait_share`: the part of the training
/// time spent waiting for batches).
pub type EpochLogs = BTreeMap<String, f64>;

/// What `fit` measured, epoch by epoch (Keras' `History`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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
}
