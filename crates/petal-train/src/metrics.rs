//! Classification metrics over logits or probabilities `(n, classes)`.

use petal_tensor::Tensor;
use serde::Serialize;

/// The predicted class of each row (the first maximum).
pub fn predicted_classes(scores: &Tensor) -> Vec<usize> {
    let classes = scores.shape().last().copied().unwrap_or(1).max(1);
    scores
        .as_slice()
        .chunks_exact(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
        })
        .collect()
}

/// Share of rows whose predicted class is the label.
///
/// ```
/// use petal_train::metrics::accuracy;
/// use petal_tensor::Tensor;
/// let scores = Tensor::from_vec(&[2, 2], vec![0.9, 0.1, 0.2, 0.8]).unwrap();
/// assert_eq!(accuracy(&scores, &[0, 0]), 0.5);
/// ```
pub fn accuracy(scores: &Tensor, labels: &[usize]) -> f64 {
    let hits = predicted_classes(scores)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    hits as f64 / labels.len().max(1) as f64
}

/// Share of rows whose label is among the `k` highest scores.
pub fn top_k_accuracy(scores: &Tensor, labels: &[usize], k: usize) -> f64 {
    let classes = scores.shape().last().copied().unwrap_or(1).max(1);
    let hits = scores
        .as_slice()
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &label)| {
            label < row.len() && row.iter().filter(|&&v| v > row[label]).count() < k
        })
        .count();
    hits as f64 / labels.len().max(1) as f64
}

/// Counts of (true class, predicted class) pairs: `counts[true][predicted]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_counts_labels_among_the_best_k() {
        let scores = Tensor::from_vec(&[2, 3], vec![0.1, 0.5, 0.4, 0.7, 0.2, 0.1]).unwrap();
        assert_eq!(top_k_accuracy(&scores, &[2, 2], 1), 0.0);
        assert_eq!(top_k_accuracy(&scores, &[2, 2], 2), 0.5);
        assert_eq!(top_k_accuracy(&scores, &[2, 2], 3), 1.0);
    }
}
