//! Classification metrics over logits or probabilities `(n, classes)`: accuracy and
//! top-k accuracy as functions, the [`ConfusionMatrix`] with its per-class figures, and
//! the [`Metric`] trait with the built-in metrics `fit` can log on validation data.

mod confusion;
mod metric;

pub use confusion::{Confusion, ConfusionMatrix};
pub use metric::{F1Score, Metric, Precision, Recall, TopKAccuracy};

use petal_tensor::Tensor;

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

    /// Scores over 4 classes whose predictions are 0, 1, 1, 1, 0, 0 for labels 0, 0, 1,
    /// 1, 2, 2: class 2 is never predicted, class 3 never occurs.
    fn three_of_four() -> (Tensor, Vec<usize>) {
        let mut scores = vec![0.0; 6 * 4];
        for (row, predicted) in [0, 1, 1, 1, 0, 0].into_iter().enumerate() {
            scores[row * 4 + predicted] = 1.0;
        }
        (
            Tensor::from_vec(&[6, 4], scores).unwrap(),
            vec![0, 0, 1, 1, 2, 2],
        )
    }

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
    }

    #[test]
    fn per_class_figures_match_hand_counts() {
        let (scores, labels) = three_of_four();
        let m = ConfusionMatrix::from_scores(&scores, &labels);
        // Predicted as 0: samples 0, 4, 5 (one of class 0); as 1: samples 1, 2, 3 (two of class 1).
        assert_eq!(m.precision(), vec![1.0 / 3.0, 2.0 / 3.0, 0.0, 0.0]);
        assert_eq!(m.per_class_accuracy(), vec![0.5, 1.0, 0.0, 0.0]);
        assert_eq!(m.recall(), m.per_class_accuracy());
        // F1 = 2pr / (p + r): class 0 (1/3)/(5/6) = 0.4, class 1 (4/3)/(5/3) = 0.8.
        let f1 = m.f1();
        close(f1[0], 0.4);
        close(f1[1], 0.8);
        assert_eq!(&f1[2..], &[0.0, 0.0]);
        assert!(f1.iter().chain(&m.precision()).all(|v| v.is_finite()));
    }

    #[test]
    fn macro_averages_skip_classes_that_never_occur() {
        let (scores, labels) = three_of_four();
        // Classes 0, 1, 2 occur (class 3 neither as label nor as prediction), as in
        // scikit-learn: precision (1/3 + 2/3 + 0) / 3, recall (1/2 + 1 + 0) / 3, F1
        // (0.4 + 0.8 + 0) / 3.
        close(Precision.compute(&scores, &labels), 1.0 / 3.0);
        close(Recall.compute(&scores, &labels), 0.5);
        close(F1Score.compute(&scores, &labels), 0.4);
        close(TopKAccuracy(1).compute(&scores, &labels), 0.5);
        // Ties rank no label above another: every label is within the top 4.
        close(TopKAccuracy(4).compute(&scores, &labels), 1.0);
        assert_eq!(
            [
                Precision.name(),
                Recall.name(),
                F1Score.name(),
                TopKAccuracy(5).name()
            ],
            ["precision", "recall", "f1_score", "top5_accuracy"]
        );
        let empty = ConfusionMatrix::new(3, &[], &[]);
        assert_eq!(empty.macro_average(&empty.precision()), 0.0);
    }
}
