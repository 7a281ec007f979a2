//! Batch normalization as one op (the fused kernel in `petal_tensor::norm`).

use std::rc::Rc;

use petal_tensor::norm::{batch_norm_backward, batch_norm_train, BatchStats};
use petal_tensor::Tensor;

use crate::error::Result;
use crate::Var;

impl Var {
    /// Training-mode batch normalization over the last axis with the batch's own
    /// statistics, which are returned for the moving averages.
    pub fn batch_norm(&self, gamma: &Var, beta: &Var, epsilon: f32) -> Result<(Var, BatchStats)> {
        let (y, stats) = batch_norm_train(self.value(), gamma.value(), beta.value(), epsilon)?;
        let (x, g, saved) = (self.shared_value(), gamma.shared_value(), stats.clone());
        let backward = move |grad: &Tensor, needs: &[bool]| {
            let (dx, dgamma, dbeta) = batch_norm_backward(grad, &x, &saved, &g, epsilon)
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
