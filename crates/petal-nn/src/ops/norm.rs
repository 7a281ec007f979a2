//! Batch normalization as one op (the fused kernel in `petal_tensor::norm`).

use std::rc::Rc;

use petal_tensor::norm::{
    batch_norm_backward_in_parts, batch_norm_train_in_parts, whole_batch, BatchStats,
};
use petal_tensor::Tensor;

use crate::error::Result;
use crate::{BatchParts, Var};

impl Var {
    /// Training-mode batch normalization over the last axis with the batch's own
    /// statistics, which are returned for the moving averages. With `parts`, this batch
    /// is one part of a batch split over processes and the statistics (and the input
    /// gradient's sums) are the whole batch's: synchronized batch norm.
    pub fn batch_norm(
        &self,
        gamma: &Var,
        beta: &Var,
        epsilon: f32,
        parts: Option<Rc<dyn BatchParts>>,
    ) -> Result<(Var, BatchStats)> {
        let sum = |parts: &Option<Rc<dyn BatchParts>>, values: &mut [f64]| match parts {
            Some(parts) => parts.sum_over_parts(values),
            None => whole_batch(values),
        };
        let (y, stats, share) = batch_norm_train_in_parts(
            self.value(),
            gamma.value(),
            beta.value(),
            epsilon,
            &|values| sum(&parts, values),
        )?;
        let (x, g, saved) = (self.shared_value(), gamma.shared_value(), stats.clone());
        let backward = move |grad: &Tensor, needs: &[bool]| {
            let (dx, dgamma, dbeta) =
                batch_norm_backward_in_parts(grad, &x, &saved, &g, epsilon, share, &|values| {
                    sum(&parts, values)
                })
                .expect("shapes checked in forward");
            vec![
                needs[0].then_some(dx),
                needs[1].then_some(dgamma),
                needs[2].then_some(dbeta),
            ]
        };
        Ok((
            Var::record("batch_norm", Rc::new(y), &[self, gamma, beta], backward)?,
            stats,
        ))
    }
}
