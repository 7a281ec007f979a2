//! Reductions, softmax and the fused softmax cross-entropy loss.

use std::rc::Rc;

use petal_tensor::elementwise::map;
use petal_tensor::loss::softmax_cross_entropy;
use petal_tensor::reduce::{
    log_softmax, log_softmax_backward, max_axis, mean_axes, reduced_shape, softmax,
    softmax_backward, sum_axes,
};
use petal_tensor::Tensor;

use crate::error::Result;
use crate::Var;

/// Spreads the gradient of a reduction back over the reduced axes.
fn expand(grad: &Tensor, input_shape: &[usize], axes: &[usize]) -> Tensor {
    let kept = reduced_shape(input_shape, axes, true);
    let grad = grad.array().to_shape(kept).expect("same length");
    Tensor::from_array(
        grad.broadcast(input_shape)
            .expect("kept axes broadcast")
            .to_owned(),
    )
}

impl Var {
    /// Sum over `axes` (kept as extent 1 with `keep_dims`).
    pub fn sum(&self, axes: &[usize], keep_dims: bool) -> Result<Var> {
        let value = sum_axes(self.value(), axes, keep_dims)?;
        let (shape, axes) = (self.value().shape().to_vec(), axes.to_vec());
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            expand(g, &shape, &axes)
        }))
    }

    /// Sum of every value, as a scalar.
    pub fn sum_all(&self) -> Var {
        let axes: Vec<usize> = (0..self.value().ndim()).collect();
        self.sum(&axes, false).expect("all axes are valid")
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[usize], keep_dims: bool) -> Result<Var> {
        let value = mean_axes(self.value(), axes, keep_dims)?;
        let (shape, axes) = (self.value().shape().to_vec(), axes.to_vec());
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let scale = 1.0 / count.max(1) as f32;
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            map(&expand(g, &shape, &axes), |v| v * scale)
        }))
    }

    /// Maximum along `axis`; the gradient goes to the (first) maximum of each lane.
    pub fn max(&self, axis: usize, keep_dims: bool) -> Result<Var> {
        let (value, winners) = max_axis(self.value(), axis, keep_dims)?;
        let shape = self.value().shape().to_vec();
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            let mut grad = Tensor::zeros(&shape);
            let slots = grad.as_mut_slice();
            for (&at, &v) in winners.iter().zip(g.as_slice()) {
                slots[at] += v;
            }
            grad
        }))
    }

    /// Softmax along `axis`.
    pub fn softmax(&self, axis: usize) -> Result<Var> {
        let y = Rc::new(softmax(self.value(), axis)?);
        let out = Rc::clone(&y);
        Ok(Var::record_unary(y, self, move |g| {
            softmax_backward(&out, g, axis).expect("same shape")
        }))
    }

    /// Log-softmax along `axis`.
    pub fn log_softmax(&self, axis: usize) -> Result<Var> {
        let y = Rc::new(log_softmax(self.value(), axis)?);
        let out = Rc::clone(&y);
        Ok(Var::record_unary(y, self, move |g| {
            log_softmax_backward(&out, g, axis).expect("same shape")
        }))
    }

    /// Mean softmax cross-entropy of these logits `(n, classes)` against target
    /// distributions `(n, classes)`; a scalar.
    ///
    /// ```
    /// use petal_nn::Tape;
    /// use petal_tensor::{loss::one_hot, Tensor};
    /// let tape = Tape::new();
    /// let logits = tape.leaf(Tensor::zeros(&[2, 2]));
    /// let loss = logits.softmax_cross_entropy(&one_hot(&[0, 1], 2)?)?;
    /// assert!((loss.value().item()? - 2f32.ln()).abs() < 1e-6);
    /// let grad = loss.backward()?;
    /// assert_eq!(grad.get(&logits).unwrap().to_vec(), vec![-0.25, 0.25, 0.25, -0.25]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn softmax_cross_entropy(&self, targets: &Tensor) -> Result<Var> {
        let (loss, grad) = softmax_cross_entropy(self.value(), targets)?;
        Ok(Var::record_unary(
            Rc::new(Tensor::scalar(loss)),
            self,
            move |g| {
                let scale = g.as_slice()[0];
                map(&grad, |v| v * scale)
            },
        ))
    }
}
