//! The [`Optimizer`] trait and [`SlotOptimizer`], the machinery every optimizer of this
//! crate shares: gradient checks, frozen parameters, per-parameter learning-rate scales,
//! lazily created slots and state export/import. Each optimizer only supplies its
//! per-parameter update rule (see `sgd.rs`, `adam.rs`, `rmsprop.rs`).

use std::collections::HashMap;

use petal_nn::{ParamId, ParamStore};
use petal_tensor::Tensor;

use crate::state::{self, OptimizerState, ParamSlots};
use crate::OptimError;

/// Updates a model's parameters from their gradients.
pub trait Optimizer: Send {
    /// Applies one update to every trainable parameter that has a gradient in `grads`.
    ///
    /// Parameters whose `trainable` flag is false are left untouched. Every gradient is
    /// checked before anything changes: a gradient whose shape differs from its
    /// parameter's, two gradients for one parameter or an id from another store is an
    /// error, and then neither the store nor the optimizer has changed.
    fn step(
        &mut self,
        store: &mut ParamStore,
        grads: &[(ParamId, Tensor)],
    ) -> Result<(), OptimError>;
    /// The base learning rate.
    fn learning_rate(&self) -> f32;
    /// Sets the base learning rate (a schedule calls this before each step).
    fn set_learning_rate(&mut self, lr: f32);
    /// Number of steps taken.
    fn iterations(&self) -> u64;
    /// Multiplies the learning rate of one parameter by `scale` (default 1.0), e.g. 0.1
    /// to fine-tune a pretrained base ten times slower than a new head. Scales are
    /// configuration: they are not part of [`Optimizer::state`].
    fn set_lr_scale(&mut self, id: ParamId, scale: f32);
    /// A copy of the optimizer's state, slots named `<slot>/<parameter name>`.
    fn state(&self, store: &ParamStore) -> OptimizerState;
    /// Replaces the optimizer's state by `state`, after checking that it comes from the
    /// same kind of optimizer and that every slot fits a parameter of `store`; all
    /// problems are reported at once and on error nothing changes.
    fn load_state(&mut self, state: &OptimizerState, store: &ParamStore) -> Result<(), OptimError>;
}

/// A per-parameter update rule: implemented by [`SgdConfig`](crate::SgdConfig),
/// [`AdamConfig`](crate::AdamConfig), [`AdamWConfig`](crate::AdamWConfig) and
/// [`RmsPropConfig`](crate::RmsPropConfig). Sealed; its methods are internal.
pub trait UpdateRule: rule::Rule + Send {}

impl<R: rule::Rule + Send> UpdateRule for R {}

pub(crate) mod rule {
    /// The internal half of [`UpdateRule`](super::UpdateRule).
    pub trait Rule {
        /// The kind recorded in saved states (`"adam"`).
        const KIND: &'static str;
        /// Names of the per-element slots this configuration keeps for each parameter.
        fn slot_names(&self) -> &'static [&'static str];
        /// The base learning rate.
        fn learning_rate(&self) -> f32;
        /// Sets the base learning rate.
        fn set_learning_rate(&mut self, lr: f32);
        /// Updates one parameter in place.
        fn update(&self, update: ParamUpdate<'_>);
    }

    /// One parameter's update: its values, gradient and slots as plain slices.
    pub struct ParamUpdate<'a> {
        /// The parameter's values, updated in place.
        pub value: &'a mut [f32],
        /// Its gradient, as long as `value`.
        pub grad: &'a [f32],
        /// One buffer per name of `Rule::slot_names`, each as long as `value`.
        pub slots: &'a mut [Vec<f32>],
        /// The learning rate for this parameter (base rate times its scale).
        pub learning_rate: f32,
        /// How many updates this parameter has had, this one included (1 at its first).
        pub step: u64,
    }
}

/// An optimizer: an update rule `R` (its configuration) plus the per-parameter slots,
/// which are created at a parameter's first update.
///
/// The step count used by Adam's bias correction is kept per parameter, so a parameter
/// that starts training late (a base unfrozen for fine-tuning) gets a correctly
/// bias-corrected first update.
#[derive(Clone, Debug)]
pub struct SlotOptimizer<R> {
    rule: R,
    slots: HashMap<ParamId, ParamSlots>,
    lr_scales: HashMap<ParamId, f32>,
    iterations: u64,
}

impl<R: UpdateRule> SlotOptimizer<R> {
    /// An optimizer with the configuration `rule` and no state yet.
    pub fn new(rule: R) -> Self {
        Self {
            rule,
            slots: HashMap::new(),
            lr_scales: HashMap::new(),
            iterations: 0,
        }
    }

    /// The configuration (its learning rate is the current base rate).
    pub fn config(&self) -> &R {
        &self.rule
    }
}

impl<R: UpdateRule + Default> Default for SlotOptimizer<R> {
    fn default() -> Self {
        Self::new(R::default())
    }
}

impl<R: UpdateRule> Optimizer for SlotOptimizer<R> {
    fn step(
        &mut self,
        store: &mut ParamStore,
        grads: &[(ParamId, Tensor)],
    ) -> Result<(), OptimError> {
        let plan = check_gradients(store, grads)?;
        for &(id, grad) in &plan {
            match self.slots.get(&id) {
                Some(slots) if slots.shape != grad.shape() => {
                    return Err(OptimError::SlotShape {
                        name: store.get(id).name.clone(),
                        slots: slots.shape.clone(),
                        param: grad.shape().to_vec(),
                    })
                }
                _ => {}
            }
        }
        let lr = self.rule.learning_rate();
        let names = self.rule.slot_names();
        for (id, grad) in plan {
            let slots = self
                .slots
                .entry(id)
                .or_insert_with(|| ParamSlots::zeros(grad.shape(), names.len()));
            slots.step += 1;
            let scale = self.lr_scales.get(&id).copied().unwrap_or(1.0);
            self.rule.update(rule::ParamUpdate {
                value: store.value_mut(id).as_mut_slice(),
                grad: grad.as_slice(),
                slots: &mut slots.buffers,
                learning_rate: lr * scale,
                step: slots.step,
            });
        }
        self.iterations += 1;
        Ok(())
    }

    fn learning_rate(&self) -> f32 {
        self.rule.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.rule.set_learning_rate(lr);
    }

    fn iterations(&self) -> u64 {
        self.iterations
    }

    fn set_lr_scale(&mut self, id: ParamId, scale: f32) {
        self.lr_scales.insert(id, scale);
    }

    fn state(&self, store: &ParamStore) -> OptimizerState {
        OptimizerState {
            kind: R::KIND.to_string(),
            iterations: self.iterations,
            learning_rate: self.rule.learning_rate(),
            slots: state::export_slots(self.rule.slot_names(), &self.slots, store),
        }
    }

    fn load_state(&mut self, state: &OptimizerState, store: &ParamStore) -> Result<(), OptimError> {
        if state.kind != R::KIND {
            return Err(OptimError::StateKind {
                expected: R::KIND.to_string(),
                found: state.kind.clone(),
            });
        }
        self.slots = state::import_slots(&state.slots, R::KIND, self.rule.slot_names(), store)?;
        self.iterations = state.iterations;
        self.rule.set_learning_rate(state.learning_rate);
        Ok(())
    }
}

/// Checks every gradient against the store and returns the (trainable parameter,
/// gradient) pairs to apply, in store order.
fn check_gradients<'g>(
    store: &ParamStore,
    grads: &'g [(ParamId, Tensor)],
) -> Result<Vec<(ParamId, &'g Tensor)>, OptimError> {
    // id -> (gradient, seen more than once)
    let mut pending: HashMap<ParamId, (&Tensor, bool)> = HashMap::with_capacity(grads.len());
    for (id, grad) in grads {
        pending
            .entry(*id)
            .and_modify(|entry| entry.1 = true)
            .or_insert((grad, false));
    }
    let mut plan = Vec::with_capacity(grads.len());
    for (id, param) in store.iter() {
        let Some((grad, duplicated)) = pending.remove(&id) else {
            continue;
        };
        if duplicated {
            return Err(OptimError::DuplicateGradient {
                name: param.name.clone(),
            });
        }
        if grad.shape() != param.value.shape() {
            return Err(OptimError::GradientShape {
                name: param.name.clone(),
                param: param.value.shape().to_vec(),
                grad: grad.shape().to_vec(),
            });
        }
        if param.trainable {
            plan.push((id, grad));
        }
    }
    match pending.into_keys().min() {
        Some(id) => Err(OptimError::UnknownParameter { id }),
        None => Ok(plan),
    }
}
