//! Convolution and pooling.

use std::rc::Rc;

use petal_tensor::conv::{
    conv2d, conv2d_activated, conv2d_backward_bias, conv2d_backward_filter, conv2d_backward_input,
};
use petal_tensor::elementwise::{unary_backward_from_output, Unary};
use petal_tensor::pool::{
    avg_pool2d, avg_pool2d_backward, global_avg_pool, global_avg_pool_backward, max_pool2d,
    max_pool2d_backward,
};
use petal_tensor::{Conv2dSpec, Pool2dSpec, Tensor};

use crate::error::{NnError, Result};
use crate::Var;

impl Var {
    /// 2-D convolution of an NHWC input with an HWIO `filter` and an optional `bias`.
    ///
    /// ```
    /// use petal_nn::{Tape, Var};
    /// use petal_tensor::{Conv2dSpec, Tensor};
    /// let tape = Tape::new();
    /// let x = Var::constant(Tensor::ones(&[1, 3, 3, 1]));
    /// let w = tape.leaf(Tensor::ones(&[2, 2, 1, 1]));
    /// let y = x.conv2d(&w, None, &Conv2dSpec::default())?;
    /// // Each filter tap sees four ones across the four windows.
    /// assert_eq!(y.backward()?.get(&w).unwrap().to_vec(), vec![4.0; 4]);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn conv2d(&self, filter: &Var, bias: Option<&Var>, spec: &Conv2dSpec) -> Result<Var> {
        let value = Rc::new(conv2d(
            self.value(),
            filter.value(),
            bias.map(Var::value),
            spec,
        )?);
        let (x, w, spec) = (self.shared_value(), filter.shared_value(), *spec);
        let backward = move |g: &Tensor, needs: &[bool]| {
            let mut grads = vec![
                needs[0].then(|| {
                    conv2d_backward_input(g, &w, x.shape(), &spec)
                        .expect("shapes checked in forward")
                }),
                needs[1].then(|| {
                    conv2d_backward_filter(&x, g, w.shape(), &spec)
                        .expect("shapes checked in forward")
                }),
            ];
            if needs.len() == 3 {
                grads.push(needs[2].then(|| conv2d_backward_bias(g).expect("4-D output")));
            }
            grads
        };
        match bias {
            Some(b) => Var::record("conv2d", value, &[self, filter, b], backward),
            None => Var::record("conv2d", value, &[self, filter], backward),
        }
    }

    /// Convolution, bias and an activation in one op: the activation runs in place on the
    /// convolution's output and its backward uses that output alone, so no separate
    /// activation tensor is stored or allocated. `activation` must have a derivative
    /// that follows from its output (ReLU, ReLU6, sigmoid, tanh, exp).
    pub fn conv2d_activated(
        &self,
        filter: &Var,
        bias: Option<&Var>,
        spec: &Conv2dSpec,
        activation: Unary,
    ) -> Result<Var> {
        if activation.derivative_from_output(0.5).is_none() {
            return Err(NnError::Tensor(
                petal_tensor::TensorError::InvalidArgument {
                    op: "conv2d_activated",
                    reason: format!(
                        "{activation:?} cannot be fused: its derivative needs its input"
                    ),
                },
            ));
        }
        let y = Rc::new(conv2d_activated(
            self.value(),
            filter.value(),
            bias.map(Var::value),
            spec,
            activation,
        )?);
        let (x, w, spec, out) = (
            self.shared_value(),
            filter.shared_value(),
            *spec,
            Rc::clone(&y),
        );
        let backward = move |g: &Tensor, needs: &[bool]| {
            let g = unary_backward_from_output(&out, g, activation).expect("same shape");
            let mut grads = vec![
                needs[0].then(|| {
                    conv2d_backward_input(&g, &w, x.shape(), &spec)
                        .expect("shapes checked in forward")
                }),
                needs[1].then(|| {
                    conv2d_backward_filter(&x, &g, w.shape(), &spec)
                        .expect("shapes checked in forward")
                }),
            ];
            if needs.len() == 3 {
                grads.push(needs[2].then(|| conv2d_backward_bias(&g).expect("4-D output")));
            }
            grads
        };
        match bias {
            Some(b) => Var::record("conv2d_activated", y, &[self, filter, b], backward),
            None => Var::record("conv2d_activated", y, &[self, filter], backward),
        }
    }

    /// Max pooling over an NHWC input.
    pub fn max_pool2d(&self, spec: &Pool2dSpec) -> Result<Var> {
        let (value, argmax) = max_pool2d(self.value(), spec)?;
        let (shape, spec) = (self.value().shape().to_vec(), *spec);
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            max_pool2d_backward(g, &argmax, &shape, &spec).expect("shapes checked in forward")
        }))
    }

    /// Average pooling over an NHWC input (padding does not count).
    pub fn avg_pool2d(&self, spec: &Pool2dSpec) -> Result<Var> {
        let value = avg_pool2d(self.value(), spec)?;
        let (shape, spec) = (self.value().shape().to_vec(), *spec);
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            avg_pool2d_backward(g, &shape, &spec).expect("shapes checked in forward")
        }))
    }

    /// Global average pooling: `(n, h, w, c) -> (n, c)`.
    pub fn global_avg_pool(&self) -> Result<Var> {
        let value = global_avg_pool(self.value())?;
        let shape = self.value().shape().to_vec();
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            global_avg_pool_backward(g, &shape).expect("shapes checked in forward")
        }))
    }
}
