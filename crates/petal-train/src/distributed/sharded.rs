//! Prediction and evaluation split over the ranks: each rank runs the model on its
//! contiguous part of the data and an allreduce assembles the whole, so the figures are
//! those of one process.

use petal_data::{shard_range, Dataset, Subset};
use petal_nn::{Loss, Model};
use petal_tensor::Tensor;

use super::Communicator;
use crate::error::Result;
use crate::evaluate::{evaluate_logits, predict, Evaluation};

/// [`predict`](crate::predict) on a group: rank `r` runs the model on its part
/// ([`shard_range`]) of `data`, and every rank gets all the logits and labels in
/// dataset order. A group of one is plain [`predict`](crate::predict).
///
/// ```
/// use petal_data::InMemoryDataset;
/// use petal_nn::{layers::{DenseConfig, FlattenConfig}, Sequential};
/// use petal_tensor::Tensor;
/// use petal_train::distributed::{predict_sharded, SingleProcess};
/// let data = InMemoryDataset::new(Tensor::zeros(&[3, 1, 1, 1]), vec![0, 1, 0], 2)?;
/// let model = Sequential::new(&[1, 1, 1], 0).add(FlattenConfig::default())?.add(DenseConfig::new(2))?.build()?;
/// let (logits, labels) = predict_sharded(&model, &data, 2, &SingleProcess)?;
/// assert_eq!((logits.shape(), labels), (&[3, 2][..], vec![0, 1, 0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn predict_sharded(
    model: &Model,
    data: &dyn Dataset,
    batch_size: usize,
    comm: &dyn Communicator,
) -> Result<(Tensor, Vec<usize>)> {
    if comm.world_size() == 1 {
        return predict(model, data, batch_size);
    }
    let n = data.len();
    let mine = shard_range(n, comm.rank(), comm.world_size());
    let width: usize = model.output_shape().iter().product();
    let part = Subset::new(data, mine.clone().collect())?;
    // Logits then labels; zeros outside this rank's part, so the sum is exact.
    let mut whole = vec![0.0f32; n * (width + 1)];
    if !mine.is_empty() {
        let (logits, labels) = predict(model, &part, batch_size)?;
        whole[mine.start * width..mine.end * width].copy_from_slice(logits.as_slice());
        let labels_at = n * width + mine.start;
        for (out, &label) in whole[labels_at..labels_at + labels.len()]
            .iter_mut()
            .zip(&labels)
        {
            *out = label as f32;
        }
    }
    comm.allreduce_sum(&mut whole)?;
    let labels = whole[n * width..].iter().map(|&l| l as usize).collect();
    whole.truncate(n * width);
    let shape: Vec<usize> = std::iter::once(n)
        .chain(model.output_shape().iter().copied())
        .collect();
    Ok((Tensor::from_vec(&shape, whole)?, labels))
}

/// [`evaluate`](crate::evaluate) on a group: the figures of the whole of `data`, each
/// rank running the model on its part ([`predict_sharded`]).
pub fn evaluate_sharded(
    model: &Model,
    loss: Loss,
    data: &dyn Dataset,
    batch_size: usize,
    comm: &dyn Communicator,
) -> Result<Evaluation> {
    let (logits, labels) = predict_sharded(model, data, batch_size, comm)?;
    evaluate_logits(loss, &logits, labels)
}
