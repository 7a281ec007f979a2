//! Convolution and pooling.

use std::borrow::Cow;
use std::rc::Rc;

use petal_tensor::conv::{
    conv2d, conv2d_activated, conv2d_backward_bias, conv2d_backward_filter, conv2d_backward_input,
    conv2d_max_pooled, conv2d_max_pooled_backward_filter, conv2d_output_shape,
};
use petal_tensor::elementwise::{unary_backward_from_output, Unary};
use petal_tensor::pool::{
    avg_pool2d, avg_pool2d_backward, global_avg_pool, global_avg_pool_backward, max_pool2d,
    max_pool2d_backward,
};
use petal_tensor::{Conv2dSpec, Pool2dSpec, Tensor};

use super::activation::check_fusable;
use crate::error::Result;
use crate::Var;

/// What the backward pass of a convolution keeps: its input, filter and spec.
struct ConvBackward {
    x: Rc<Tensor>,
    w: Rc<Tensor>,
    spec: Conv2dSpec,
}

impl ConvBackward {
    fn new(x: &Var, filter: &Var, spec: &Conv2dSpec) -> Self {
        Self {
            x: x.shared_value(),
            w: filter.shared_value(),
            spec: *spec,
        }
    }

    /// The gradients of the input, the filter and (when `needs` has a third entry) the
    /// bias, from `g`, the gradient of the convolution's output (before any activation).
    fn grads(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        let (x, w, spec) = (&self.x, &self.w, &self.spec);
        let mut grads = vec![
            needs[0].then(|| {
                conv2d_backward_input(g, w, x.shape(), spec).expect("shapes checked in forward")
            }),
            needs[1].then(|| {
                conv2d_backward_filter(x, g, w.shape(), spec).expect("shapes checked in forward")
            }),
        ];
        grads.extend(bias_grad(g, needs));
        grads
    }

    /// The filter gradient from `g`, the gradient of the max pooling `pool` of the
    /// convolution's output, and the pooling's winners.
    fn pooled_filter_grad(&self, g: &Tensor, argmax: &[u32], pool: &Pool2dSpec) -> Tensor {
        let (x, w) = (&self.x, &self.w);
        conv2d_max_pooled_backward_filter(x, g, argmax, w.shape(), &self.spec, pool)
            .expect("shapes checked in forward")
    }
}

/// The bias gradient from the output gradient `g` when `needs` has a third entry (the
/// convolution has a bias): `Some(None)` if it is not needed, `None` without a bias.
fn bias_grad(g: &Tensor, needs: &[bool]) -> Option<Option<Tensor>> {
    let need = *needs.get(2)?;
    Some(need.then(|| conv2d_backward_bias(g).expect("4-D output")))
}

/// A convolution's parents: input, filter, and the bias if there is one.
fn conv_parents<'a>(x: &'a Var, filter: &'a Var, bias: Option<&'a Var>) -> Vec<&'a Var> {
    [x, filter].into_iter().chain(bias).collect()
}

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
        let backward = ConvBackward::new(self, filter, spec);
        let parents = conv_parents(self, filter, bias);
        Var::record("conv2d", value, &parents, move |g, needs| {
            backward.grads(g, needs)
        })
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
        check_fusable("conv2d_activated", Some(activation))?;
        let y = Rc::new(conv2d_activated(
            self.value(),
            filter.value(),
            bias.map(Var::value),
            spec,
            activation,
        )?);
        let (backward, out) = (ConvBackward::new(self, filter, spec), Rc::clone(&y));
        let parents = conv_parents(self, filter, bias);
        Var::record("conv2d_activated", y, &parents, move |g, needs| {
            let g = unary_backward_from_output(&out, g, activation).expect("same shape");
            backward.grads(&g, needs)
        })
    }

    /// Convolution, bias, an optional activation and a max pooling in one op: each image
    /// is pooled while its convolution output is still in the cache, and neither that
    /// output nor the activation's is stored. The backward pass routes each pooled
    /// gradient, times the activation's derivative at the winning value, to where that
    /// value was. The output is the same as [`Var::conv2d_activated`] (or
    /// [`Var::conv2d`]) then [`Var::max_pool2d`], and so are the input and filter
    /// gradients with ReLU, ReLU6 or no activation; with a smooth activation and
    /// overlapping windows that share a winner, the two windows' gradients are scaled
    /// before they are added rather than after, which may differ in the last bit. The
    /// bias gradient sums the pooled gradient rather than the routed one: the same
    /// values in another order, equal within f32 rounding. `activation` must be one
    /// `conv2d_activated` takes.
    ///
    /// ```
    /// use petal_nn::{Tape, Var};
    /// use petal_tensor::{elementwise::Unary, Conv2dSpec, Pool2dSpec, Tensor};
    /// let tape = Tape::new();
    /// let x = Var::constant(Tensor::from_vec(&[1, 2, 2, 1], vec![1., -2., 3., 0.5])?);
    /// let w = tape.leaf(Tensor::ones(&[1, 1, 1, 1]));
    /// let relu = Some(Unary::Relu);
    /// let y = x.conv2d_max_pooled(&w, None, &Conv2dSpec::default(), relu, &Pool2dSpec::square(2))?;
    /// assert_eq!(y.value().to_vec(), vec![3.0]);
    /// // Only the winner, 3, moves the output: d(3w)/dw = 3.
    /// assert_eq!(y.backward()?.get(&w).unwrap().to_vec(), vec![3.0]);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn conv2d_max_pooled(
        &self,
        filter: &Var,
        bias: Option<&Var>,
        spec: &Conv2dSpec,
        activation: Option<Unary>,
        pool: &Pool2dSpec,
    ) -> Result<Var> {
        check_fusable("conv2d_max_pooled", activation)?;
        let (pooled, argmax) = conv2d_max_pooled(
            self.value(),
            filter.value(),
            bias.map(Var::value),
            spec,
            activation,
            pool,
        )?;
        let y = Rc::new(pooled);
        let (backward, out, pool) = (ConvBackward::new(self, filter, spec), Rc::clone(&y), *pool);
        let conv_shape = conv2d_output_shape(self.value().shape(), filter.value().shape(), spec)?;
        let parents = conv_parents(self, filter, bias);
        Var::record("conv2d_max_pooled", y, &parents, move |g, needs| {
            let g = match activation {
                Some(a) => Cow::Owned(unary_backward_from_output(&out, g, a).expect("same shape")),
                None => Cow::Borrowed(g),
            };
            let mut grads = if needs[0] {
                let routed = max_pool2d_backward(&g, &argmax, &conv_shape, &pool)
                    .expect("shapes checked in forward");
                backward.grads(&routed, &needs[..2])
            } else {
                // A first layer: its filter gradient routes `g` band by band as it reads it.
                let filter = needs[1].then(|| backward.pooled_filter_grad(&g, &argmax, &pool));
                vec![None, filter]
            };
            // Routing moves each value of `g` to one input (or adds it there), so the bias
            // gradient, a sum over all values, takes `g` itself: a quarter of the values
            // under 2x2 pooling.
            grads.extend(bias_grad(&g, needs));
            grads
        })
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
