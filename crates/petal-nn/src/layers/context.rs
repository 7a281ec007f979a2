//! What a forward pass can read and record: the parameters (as tape leaves when
//! training), the mode, a seeded random stream for dropout, state updates such as
//! BatchNorm's moving statistics, and the other parts of a batch split over processes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use petal_tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{Gradients, ParamId, ParamStore, Tape, Var};

/// Training or inference behaviour (dropout on/off, batch or moving statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout active, BatchNorm uses and updates batch statistics.
    Train,
    /// Inference: deterministic, nothing recorded.
    Eval,
}

/// The other parts of a batch split over processes, for synchronized batch norm: in a
/// training [`Context`] given one ([`Context::with_batch_parts`]), BatchNorm layers
/// normalize with the statistics of the whole batch, as PyTorch's `SyncBatchNorm` and
/// Keras' `BatchNormalization(synchronized=True)` do.
pub trait BatchParts {
    /// Replaces this part's per-channel sums in `values` with the sums over every part.
    /// Every process calls it the same number of times in the same order (forward and
    /// backward of each BatchNorm layer), so it can be an allreduce. A failure cannot
    /// stop the backward pass that called it: the implementation keeps it for its
    /// caller to report once the pass is over.
    fn sum_over_parts(&self, values: &mut [f64]);
}

/// Draws per parallel chunk of [`Context::uniform`].
const UNIFORM_CHUNK: usize = 16 * 1024;

/// The state one forward pass runs in.
pub struct Context<'a> {
    store: &'a ParamStore,
    mode: Mode,
    tape: Option<Tape>,
    vars: RefCell<HashMap<ParamId, Var>>,
    rng: RefCell<ChaCha8Rng>,
    updates: RefCell<Vec<(ParamId, Tensor)>>,
    batch_parts: Option<Rc<dyn BatchParts>>,
}

impl<'a> Context<'a> {
    /// A training pass: trainable parameters become leaves of `tape`; `seed` drives
    /// dropout masks.
    pub fn train(store: &'a ParamStore, tape: &Tape, seed: u64) -> Self {
        Self::new(store, Mode::Train, Some(tape.clone()), seed)
    }

    /// An inference pass: parameters are constants and no tape is built.
    pub fn eval(store: &'a ParamStore) -> Self {
        Self::new(store, Mode::Eval, None, 0)
    }

    fn new(store: &'a ParamStore, mode: Mode, tape: Option<Tape>, seed: u64) -> Self {
        Self {
            store,
            mode,
            tape,
            vars: RefCell::default(),
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
            updates: RefCell::default(),
            batch_parts: None,
        }
    }

    /// This pass's batch is one part of a batch split over processes: BatchNorm layers
    /// training in it normalize with the whole batch's statistics, gathered by `parts`.
    pub fn with_batch_parts(mut self, parts: Rc<dyn BatchParts>) -> Self {
        self.batch_parts = Some(parts);
        self
    }

    /// The other parts of this pass's batch, if it is split over processes.
    pub fn batch_parts(&self) -> Option<&Rc<dyn BatchParts>> {
        self.batch_parts.as_ref()
    }

    /// Training or inference.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.mode == Mode::Train
    }

    /// The store this pass reads.
    pub fn store(&self) -> &ParamStore {
        self.store
    }

    /// Whether a layer's pass on `x` with `params` records nothing: `x` is on no tape and
    /// [`Context::param`] gives each parameter as a constant (no tape, or frozen). Such
    /// a pass may read the parameters where they are stored.
    pub(crate) fn records_nothing(&self, x: &Var, params: &[ParamId]) -> bool {
        x.tape().is_none()
            && params
                .iter()
                .all(|&id| self.tape.is_none() || !self.store.get(id).trainable)
    }

    /// The parameter as a value: a tape leaf when training and trainable, else a
    /// constant. Asking twice gives the same value, so gradients add up.
    pub fn param(&self, id: ParamId) -> Var {
        self.vars
            .borrow_mut()
            .entry(id)
            .or_insert_with(|| {
                let p = self.store.get(id);
                match &self.tape {
                    Some(tape) if p.trainable => tape.leaf(p.value.clone()),
                    _ => Var::constant(p.value.clone()),
                }
            })
            .clone()
    }

    /// `len` draws from U[0, 1) from this pass's seeded stream, the next `len` words of
    /// it in order. They are drawn on the thread pool in chunks of
    /// [`UNIFORM_CHUNK`], each from a copy of the stream set to the chunk's first word
    /// (ChaCha computes any word of its stream directly), so the values are those of
    /// one thread drawing them all, on any thread count. One thread drew the Keras MNIST
    /// CNN's dropout mask (204,800 values a step) while the other waited.
    ///
    /// ```
    /// use petal_nn::{Context, ParamStore, Tape};
    /// let (store, tape) = (ParamStore::new(), Tape::new());
    /// let ctx = Context::train(&store, &tape, 7);
    /// let draws = ctx.uniform(100_000);
    /// assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
    /// let mean = draws.iter().sum::<f32>() / draws.len() as f32;
    /// assert!((mean - 0.5).abs() < 0.01);
    /// ```
    pub fn uniform(&self, len: usize) -> Vec<f32> {
        let mut rng = self.rng.borrow_mut();
        let start = rng.get_word_pos();
        let stream: &ChaCha8Rng = &rng;
        let mut values = vec![0.0; len];
        values
            .par_chunks_mut(UNIFORM_CHUNK)
            .enumerate()
            .for_each(|(chunk, values)| {
                let mut rng = stream.clone();
                rng.set_word_pos(start + (chunk * UNIFORM_CHUNK) as u128);
                values.iter_mut().for_each(|v| *v = rng.random::<f32>());
            });
        // Each draw of an `f32` takes one 32-bit word.
        rng.set_word_pos(start + len as u128);
        values
    }

    /// Records a new value for a non-trainable state tensor (applied by the caller after
    /// the step with [`Context::take_updates`]).
    pub fn update_state(&self, id: ParamId, value: Tensor) {
        self.updates.borrow_mut().push((id, value));
    }

    /// The state updates recorded during the pass.
    pub fn take_updates(&self) -> Vec<(ParamId, Tensor)> {
        std::mem::take(&mut self.updates.borrow_mut())
    }

    /// The gradient of every trainable parameter the pass used, from `grads`.
    pub fn param_grads(&self, grads: &Gradients) -> Vec<(ParamId, Tensor)> {
        let mut out: Vec<(ParamId, Tensor)> = self
            .vars
            .borrow()
            .iter()
            .filter_map(|(id, var)| grads.get(var).map(|g| (*id, g.clone())))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The draws are the stream's next words in order, chunk boundaries or not, on one
    /// thread or two, and the stream goes on after them as if drawn one by one.
    #[test]
    fn uniform_draws_are_the_streams_in_order_on_any_thread_count() {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
            pool.build().unwrap().install(|| {
                let (store, tape) = (ParamStore::new(), Tape::new());
                let ctx = Context::train(&store, &tape, 11);
                let mut one_by_one = ChaCha8Rng::seed_from_u64(11);
                for len in [
                    0,
                    1,
                    UNIFORM_CHUNK - 1,
                    UNIFORM_CHUNK,
                    3 * UNIFORM_CHUNK + 5,
                    2,
                ] {
                    let want: Vec<f32> = (0..len).map(|_| one_by_one.random()).collect();
                    assert!(ctx.uniform(len) == want, "{len} draws on {threads} threads");
                }
            });
        }
    }
}
