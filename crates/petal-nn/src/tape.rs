//! The define-by-run tape: every op on a recorded [`Var`] appends one node holding its
//! parents and a closure that maps the output's gradient to the parents' gradients.
//! [`Var::backward`] walks the nodes once, newest first, adding up gradients.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use petal_tensor::{with_precision, Precision, Tensor};

use crate::error::{NnError, Result};

/// Maps the gradient of an op's output to the gradients of its parents. `needs[i]` says
/// whether parent `i` wants one; return `None` where it does not.
type BackwardFn = Box<dyn Fn(&Tensor, &[bool]) -> Vec<Option<Tensor>>>;

struct Node {
    shape: Vec<usize>,
    parents: Vec<Option<usize>>,
    backward: Option<BackwardFn>,
    /// Whether [`Var::backward`] keeps this op output's gradient (leaves always keep theirs).
    retain_grad: bool,
}

/// A recording of operations, shared by the [`Var`]s built on it.
#[derive(Clone, Default)]
pub struct Tape {
    nodes: Rc<RefCell<Vec<Node>>>,
}

/// A value in a computation: a tensor plus, when recorded, its node on a tape.
#[derive(Clone)]
pub struct Var {
    value: Rc<Tensor>,
    node: Option<(Tape, usize)>,
}

thread_local! {
    static NO_GRAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with recording switched off: ops inside return constants and add nothing
/// to any tape (inference mode).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let before = NO_GRAD.with(|flag| flag.replace(true));
    let result = f();
    NO_GRAD.with(|flag| flag.set(before));
    result
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of recorded nodes (leaves included).
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A leaf whose gradient [`Var::backward`] will report.
    pub fn leaf(&self, value: Tensor) -> Var {
        self.push(Rc::new(value), Vec::new(), None)
    }

    fn push(
        &self,
        value: Rc<Tensor>,
        parents: Vec<Option<usize>>,
        backward: Option<BackwardFn>,
    ) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            shape: value.shape().to_vec(),
            parents,
            backward,
            retain_grad: false,
        });
        Var {
            value,
            node: Some((self.clone(), nodes.len() - 1)),
        }
    }
}

impl Var {
    /// A value that is never differentiated (no tape).
    pub fn constant(value: Tensor) -> Self {
        Self {
            value: Rc::new(value),
            node: None,
        }
    }

    /// The tensor this variable holds.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// The tape this variable is recorded on, if it is.
    pub fn tape(&self) -> Option<&Tape> {
        self.node.as_ref().map(|(tape, _)| tape)
    }

    /// The tape position of this variable, if it is recorded.
    pub fn node(&self) -> Option<usize> {
        self.node.as_ref().map(|(_, id)| *id)
    }

    /// Records an op's output `value` computed from `parents`, with its `backward` rule.
    /// Without a recorded parent (or inside [`no_grad`]) the result is a constant.
    ///
    /// `backward` runs in the precision of the forward pass (the
    /// [`petal_tensor::with_precision`] scope around this call), wherever
    /// [`Var::backward`] is called: as under PyTorch's autocast, the gradient products
    /// follow their forward products.
    pub fn record(
        op: &'static str,
        value: Rc<Tensor>,
        parents: &[&Var],
        backward: impl Fn(&Tensor, &[bool]) -> Vec<Option<Tensor>> + 'static,
    ) -> Result<Var> {
        let tape = match parents.iter().find_map(|p| p.node.as_ref()) {
            Some((tape, _)) if !NO_GRAD.with(Cell::get) => tape.clone(),
            _ => return Ok(Var { value, node: None }),
        };
        let mut ids = Vec::with_capacity(parents.len());
        for p in parents {
            ids.push(match &p.node {
                Some((t, id)) if Rc::ptr_eq(&t.nodes, &tape.nodes) => Some(*id),
                Some(_) => return Err(NnError::MixedTapes { op }),
                None => None,
            });
        }
        let precision = Precision::scoped();
        let backward =
            move |g: &Tensor, needs: &[bool]| with_precision(precision, || backward(g, needs));
        Ok(tape.push(value, ids, Some(Box::new(backward))))
    }

    /// [`Var::record`] for an op of one input, whose `backward` maps the output's gradient
    /// to the input's (one parent cannot mix tapes, so this cannot fail).
    pub fn record_unary(
        value: Rc<Tensor>,
        parent: &Var,
        backward: impl Fn(&Tensor) -> Tensor + 'static,
    ) -> Var {
        Var::record("unary", value, &[parent], move |g, _| {
            vec![Some(backward(g))]
        })
        .expect("a single parent is on one tape")
    }

    /// A shared handle to the value, for backward closures of custom ops that need it.
    pub fn shared_value(&self) -> Rc<Tensor> {
        Rc::clone(&self.value)
    }

    /// Asks [`Var::backward`] to keep the gradient with respect to this value although
    /// an op computed it (PyTorch's `retain_grad`), so that [`Gradients::get`] reports it:
    /// e.g. the gradient of a class score with respect to a layer's feature maps
    /// (Grad-CAM). Leaves keep theirs anyway; a constant has none to keep.
    ///
    /// ```
    /// use petal_nn::Tape;
    /// use petal_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2], vec![3.0, -1.0])?);
    /// let h = x.mul(&x)?; // x^2, an op's output
    /// h.retain_grad();
    /// let grads = h.scale(5.0).sum_all().backward()?;
    /// assert_eq!(grads.get(&h).unwrap().to_vec(), vec![5.0, 5.0]);
    /// assert_eq!(grads.get(&x).unwrap().to_vec(), vec![30.0, -10.0]);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn retain_grad(&self) {
        if let Some((tape, id)) = &self.node {
            tape.nodes.borrow_mut()[*id].retain_grad = true;
        }
    }

    /// Reverse-mode differentiation from this value, seeded with ones (so a non-scalar
    /// output is differentiated as the sum of its values).
    pub fn backward(&self) -> Result<Gradients> {
        let Some((tape, root)) = &self.node else {
            return Ok(Gradients { grads: Vec::new() });
        };
        let nodes = tape.nodes.borrow();
        let mut grads: Vec<Option<Tensor>> = vec![None; root + 1];
        grads[*root] = Some(Tensor::ones(self.value.shape()));
        for id in (0..=*root).rev() {
            let Some(backward) = &nodes[id].backward else {
                continue;
            };
            // An op's output gradient is consumed here unless it was asked to be kept.
            let Some(grad) = grads[id].take() else {
                continue;
            };
            let needs: Vec<bool> = nodes[id].parents.iter().map(Option::is_some).collect();
            for (parent, g) in nodes[id].parents.iter().zip(backward(&grad, &needs)) {
                if let (Some(p), Some(g)) = (*parent, g) {
                    if g.shape() != nodes[p].shape {
                        return Err(NnError::GradientShape {
                            node: id,
                            expected: nodes[p].shape.clone(),
                            got: g.shape().to_vec(),
                        });
                    }
                    accumulate(&mut grads[p], g);
                }
            }
            if nodes[id].retain_grad {
                grads[id] = Some(grad);
            }
        }
        Ok(Gradients { grads })
    }
}

/// Adds `grad` into `slot`: a value used twice gets the sum of both gradients.
fn accumulate(slot: &mut Option<Tensor>, grad: Tensor) {
    match slot {
        None => *slot = Some(grad),
        Some(sum) => sum
            .as_mut_slice()
            .iter_mut()
            .zip(grad.as_slice())
            .for_each(|(s, g)| *s += g),
    }
}

/// The gradients a [`Var::backward`] call produced, looked up by variable.
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// The gradient of the differentiated value with respect to `var` (a leaf, or an
    /// op's output marked with [`Var::retain_grad`] before `backward`), or `None` when it
    /// does not depend on `var`, `var` is a constant, or an op's output not retained.
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        self.grads.get(var.node()?)?.as_ref()
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Var")
            .field("shape", &self.value.shape())
            .field("node", &self.node())
            .finish()
    }
}
