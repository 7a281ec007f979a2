//! One training pass as a single call: forward on a fresh tape, the loss with the
//! layers' weight penalties, backward, and everything an optimizer step needs handed back
//! owned, so the caller can update the model right away.

use petal_tensor::Tensor;

use crate::error::Result;
use std::rc::Rc;

use crate::{BatchParts, Context, Loss, Model, ParamId, Tape, Targets, Var};

/// What one training pass of [`Model::loss_and_gradients`] computed. It borrows nothing:
/// the tape and the pass's context are gone, so the model can be updated at once.
#[derive(Clone, Debug)]
pub struct StepGradients {
    /// The batch's loss, weight penalties included. May be NaN or infinite: check it
    /// before updating anything.
    pub loss: f32,
    /// The model's outputs on the batch, `(n, *output_shape)`.
    pub logits: Tensor,
    /// The gradient of the loss for every trainable parameter the pass used, in id
    /// order; empty when the loss is not finite.
    pub grads: Vec<(ParamId, Tensor)>,
    /// New values of state tensors (BatchNorm's moving statistics), for
    /// [`Model::apply_updates`] after the optimizer step; empty when the loss is not
    /// finite.
    pub updates: Vec<(ParamId, Tensor)>,
}

impl Model {
    /// One training-mode forward and backward pass over the batch `x` against `targets`:
    /// the mean `loss` plus every layer's weight penalty, its gradients for the trainable
    /// parameters, and the state updates the pass recorded. `seed` drives dropout.
    ///
    /// ```
    /// use petal_nn::layers::DenseConfig;
    /// use petal_nn::{Loss, Sequential, Targets, Var};
    /// use petal_tensor::Tensor;
    /// let mut model = Sequential::new(&[2], 0).add(DenseConfig::new(2))?.build()?;
    /// let x = Var::constant(Tensor::from_vec(&[1, 2], vec![1.0, -1.0])?);
    /// let labels = [1];
    /// let loss = Loss::SparseCategoricalCrossentropy;
    /// let step = model.loss_and_gradients(&x, Targets::Labels(&labels), loss, 7)?;
    /// assert!(step.loss.is_finite());
    /// assert_eq!(step.grads.len(), 2); // kernel and bias
    /// // Plain gradient descent: the loss goes down.
    /// for (id, grad) in &step.grads {
    ///     let value = model.store().value(*id).clone();
    ///     let moved = value.as_slice().iter().zip(grad.as_slice()).map(|(w, g)| w - 0.5 * g);
    ///     model.store_mut().set_value(*id, Tensor::from_vec(value.shape(), moved.collect())?)?;
    /// }
    /// model.apply_updates(step.updates)?;
    /// let after = model.loss_and_gradients(&x, Targets::Labels(&labels), loss, 7)?;
    /// assert!(after.loss < step.loss);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn loss_and_gradients(
        &self,
        x: &Var,
        targets: Targets<'_>,
        loss: Loss,
        seed: u64,
    ) -> Result<StepGradients> {
        let tape = Tape::new();
        self.pass(Context::train(self.store(), &tape, seed), x, targets, loss)
    }

    /// [`Model::loss_and_gradients`] on `x`, one part of a batch split over processes:
    /// BatchNorm layers normalize with the whole batch's statistics, gathered through
    /// `parts` (synchronized batch norm). Every process calls it on its part, and the
    /// backward pass runs even when the loss is not finite, so that all of them make the
    /// same calls to `parts`.
    pub fn loss_and_gradients_of_part(
        &self,
        x: &Var,
        targets: Targets<'_>,
        loss: Loss,
        seed: u64,
        parts: Rc<dyn BatchParts>,
    ) -> Result<StepGradients> {
        let tape = Tape::new();
        let ctx = Context::train(self.store(), &tape, seed).with_batch_parts(parts);
        self.pass(ctx, x, targets, loss)
    }

    fn pass(
        &self,
        ctx: Context,
        x: &Var,
        targets: Targets<'_>,
        loss: Loss,
    ) -> Result<StepGradients> {
        let logits = self.forward(x, &ctx)?;
        let mut total = loss.compute(&logits, targets)?;
        if let Some(penalty) = self.penalty(&ctx)? {
            total = total.add(&penalty)?;
        }
        let value = total.value().item()?;
        let (mut grads, mut updates) = (Vec::new(), Vec::new());
        // A part of a split batch runs backward whatever its loss: the other parts wait
        // for its sums.
        if value.is_finite() || ctx.batch_parts().is_some() {
            let all = total.backward()?;
            if value.is_finite() {
                (grads, updates) = (ctx.param_grads(&all), ctx.take_updates());
            }
        }
        Ok(StepGradients {
            loss: value,
            logits: logits.value().clone(),
            grads,
            updates,
        })
    }
}
