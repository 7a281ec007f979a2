//! The confusion matrix and the per-class figures read from it: accuracy, precision,
//! recall, F1, and their macro averages.

use petal_tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::predicted_classes;

/// Counts of (true class, predicted class) pairs: `counts[true][predicted]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// The matrix of `classes x classes` counts; out-of-range labels are ignored.
    ///
    /// ```
    /// use petal_train::metrics::ConfusionMatrix;
    /// let m = ConfusionMatrix::new(2, &[0, 0, 1], &[0, 1, 1]);
    /// assert_eq!(m.counts, vec![vec![1, 1], vec![0, 1]]);
    /// ```
    pub fn new(classes: usize, labels: &[usize], predicted: &[usize]) -> Self {
        let mut counts = vec![vec![0; classes]; classes];
        for (&t, &p) in labels.iter().zip(predicted) {
            if t < classes && p < classes {
                counts[t][p] += 1;
            }
        }
        Self { counts }
    }

    /// The matrix of the scores' predicted classes (the first maximum of each row of
    /// `scores`, `(n, classes)`) against `labels`.
    pub fn from_scores(scores: &Tensor, labels: &[usize]) -> Self {
        let classes = scores.shape().last().copied().unwrap_or(0);
        Self::new(classes, labels, &predicted_classes(scores))
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    /// Samples of class `c` predicted as class `c`.
    fn hits(&self, c: usize) -> usize {
        self.counts[c][c]
    }

    /// Samples whose true class is `c`.
    ///
    /// ```
    /// use petal_train::metrics::ConfusionMatrix;
    /// let m = ConfusionMatrix::new(2, &[0, 0, 1], &[0, 1, 1]);
    /// assert_eq!(m.of_class(0), 2);
    /// ```
    pub fn of_class(&self, c: usize) -> usize {
        self.counts[c].iter().sum()
    }

    /// Samples predicted as class `c`.
    fn predicted_as(&self, c: usize) -> usize {
        self.counts.iter().map(|row| row[c]).sum()
    }

    /// For each class, the share of its samples classified correctly (its recall); 0
    /// for a class without samples.
    ///
    /// ```
    /// use petal_train::metrics::ConfusionMatrix;
    /// let m = ConfusionMatrix::new(3, &[0, 0, 1, 1, 2, 2], &[0, 1, 1, 1, 0, 0]);
    /// assert_eq!(m.per_class_accuracy(), vec![0.5, 1.0, 0.0]);
    /// ```
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        (0..self.classes())
            .map(|c| ratio(self.hits(c), self.of_class(c)))
            .collect()
    }

    /// For each class, the share of the samples predicted as it that truly are it; 0 for
    /// a class never predicted (scikit-learn's `zero_division=0`).
    pub fn precision(&self) -> Vec<f64> {
        (0..self.classes())
            .map(|c| ratio(self.hits(c), self.predicted_as(c)))
            .collect()
    }

    /// For each class, the share of its samples predicted as it: the same figures as
    /// [`ConfusionMatrix::per_class_accuracy`], under the name that goes with precision.
    pub fn recall(&self) -> Vec<f64> {
        self.per_class_accuracy()
    }

    /// For each class, the harmonic mean of its precision and recall; 0 when both are 0.
    pub fn f1(&self) -> Vec<f64> {
        self.precision()
            .iter()
            .zip(self.recall())
            .map(|(p, r)| {
                if p + r > 0.0 {
                    2.0 * p * r / (p + r)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The mean of per-class figures over the classes that occur among the labels or the
    /// predictions (scikit-learn's `average="macro"`); 0 when none occurs.
    ///
    /// ```
    /// use petal_train::metrics::ConfusionMatrix;
    /// // Class 2 is never predicted: its precision is 0, and it counts in the mean.
    /// let m = ConfusionMatrix::new(3, &[0, 0, 1, 1, 2, 2], &[0, 1, 1, 1, 0, 0]);
    /// let precision = m.macro_average(&m.precision()); // (1/3 + 2/3 + 0) / 3
    /// assert!((precision - 1.0 / 3.0).abs() < 1e-12);
    /// ```
    pub fn macro_average(&self, per_class: &[f64]) -> f64 {
        let occurring: Vec<f64> = (0..self.classes())
            .filter(|&c| self.of_class(c) + self.predicted_as(c) > 0)
            .filter_map(|c| per_class.get(c).copied())
            .collect();
        occurring.iter().sum::<f64>() / occurring.len().max(1) as f64
    }
}

/// A pair of classes the model mixes up: `count` samples of `actual` predicted as
/// `predicted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// The true class.
    pub actual: usize,
    /// The class predicted instead.
    pub predicted: usize,
    /// How many samples of `actual` went to `predicted`.
    pub count: usize,
}

impl ConfusionMatrix {
    /// The `limit` largest off-diagonal cells, most frequent first (ties in class order):
    /// the readable summary of a matrix too large to look at, such as 102 flowers.
    ///
    /// ```
    /// use petal_train::metrics::{Confusion, ConfusionMatrix};
    /// let m = ConfusionMatrix::new(3, &[0, 0, 1, 1, 1, 2], &[1, 0, 2, 2, 1, 2]);
    /// assert_eq!(
    ///     m.most_confused(5),
    ///     [
    ///         Confusion { actual: 1, predicted: 2, count: 2 },
    ///         Confusion { actual: 0, predicted: 1, count: 1 },
    ///     ]
    /// );
    /// ```
    pub fn most_confused(&self, limit: usize) -> Vec<Confusion> {
        let mut cells: Vec<Confusion> = self
            .counts
            .iter()
            .enumerate()
            .flat_map(|(actual, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |&(predicted, &count)| predicted != actual && count > 0)
                    .map(move |(predicted, &count)| Confusion {
                        actual,
                        predicted,
                        count,
                    })
            })
            .collect();
        cells.sort_by_key(|c| (std::cmp::Reverse(c.count), c.actual, c.predicted));
        cells.truncate(limit);
        cells
    }
}

/// `part / whole`, 0 when `whole` is 0.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
