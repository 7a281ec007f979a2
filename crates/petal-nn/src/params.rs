//! The parameter store: every weight of a model under a path name
//! (`block1/conv1/kernel`), with a trainable flag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use petal_tensor::Tensor;

use crate::error::{NnError, Result};

/// A handle to one tensor in a [`ParamStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(usize);

/// One named tensor of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Path name, unique in its store (`dense_1/kernel`).
    pub name: String,
    /// The current value.
    pub value: Tensor,
    /// Whether optimizers update it. Frozen layers and BatchNorm moving statistics are
    /// not trainable.
    pub trainable: bool,
}

/// All parameters of a model, in the order they were added.
///
/// ```
/// use petal_nn::ParamStore;
/// use petal_tensor::Tensor;
/// let mut store = ParamStore::new();
/// let kernel = store.add("dense/kernel", Tensor::zeros(&[3, 2]), true)?;
/// let mean = store.add("bn/moving_mean", Tensor::zeros(&[2]), false)?;
/// assert_eq!(store.id("dense/kernel"), Some(kernel));
/// assert_eq!(store.trainable_count(), 6);
/// assert_eq!(store.non_trainable_count(), 2);
/// assert!(store.add("dense/kernel", Tensor::zeros(&[1]), true).is_err());
/// # let _ = mean;
/// # Ok::<(), petal_nn::NnError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    params: Vec<Param>,
    by_name: HashMap<String, ParamId>,
    /// Each parameter's [`ParamStore::stamp`].
    stamps: Vec<u64>,
}

/// A stamp no value has had yet, in any store.
fn fresh_stamp() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter; names must be unique.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        value: Tensor,
        trainable: bool,
    ) -> Result<ParamId> {
        let name = name.into();
        if self.by_name.contains_key(&name) {
            return Err(NnError::DuplicateParam { name });
        }
        let id = ParamId(self.params.len());
        self.by_name.insert(name.clone(), id);
        self.params.push(Param {
            name,
            value,
            trainable,
        });
        self.stamps.push(fresh_stamp());
        Ok(id)
    }

    /// The parameter behind `id`.
    pub fn get(&self, id: ParamId) -> &Param {
        &self.params[id.0]
    }

    /// The value behind `id`.
    pub fn value(&self, id: ParamId) -> &Tensor {
        &self.params[id.0].value
    }

    /// Replaces the value behind `id`; the shape must stay the same.
    pub fn set_value(&mut self, id: ParamId, value: Tensor) -> Result<()> {
        let param = &mut self.params[id.0];
        if param.value.shape() != value.shape() {
            return Err(NnError::ParamShape {
                name: param.name.clone(),
                expected: param.value.shape().to_vec(),
                got: value.shape().to_vec(),
            });
        }
        param.value = value;
        self.stamps[id.0] = fresh_stamp();
        Ok(())
    }

    /// Mutable access to the value behind `id` (optimizers update in place).
    pub fn value_mut(&mut self, id: ParamId) -> &mut Tensor {
        self.stamps[id.0] = fresh_stamp();
        &mut self.params[id.0].value
    }

    /// A number that changes whenever the value behind `id` may have changed: two
    /// equal stamps, from this store or any other, mean the same value. Layers key
    /// what they derive from a parameter on it (a convolution's prepared filter).
    ///
    /// ```
    /// use petal_nn::ParamStore;
    /// use petal_tensor::Tensor;
    /// let mut store = ParamStore::new();
    /// let w = store.add("w", Tensor::zeros(&[2]), true)?;
    /// let before = store.stamp(w);
    /// let copy = store.clone();
    /// assert_eq!(copy.stamp(w), before);
    /// store.value_mut(w).as_mut_slice()[0] = 1.0;
    /// assert_ne!(store.stamp(w), before);
    /// assert_eq!(copy.stamp(w), before);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn stamp(&self, id: ParamId) -> u64 {
        self.stamps[id.0]
    }

    /// Marks a parameter trainable or frozen.
    pub fn set_trainable(&mut self, id: ParamId, trainable: bool) {
        self.params[id.0].trainable = trainable;
    }

    /// Looks a parameter up by name.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.by_name.get(name).copied()
    }

    /// All parameters with their ids, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Param)> {
        self.params.iter().enumerate().map(|(i, p)| (ParamId(i), p))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Number of trainable values.
    pub fn trainable_count(&self) -> usize {
        self.params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.value.len())
            .sum()
    }

    /// Number of non-trainable values.
    pub fn non_trainable_count(&self) -> usize {
        self.params
            .iter()
            .filter(|p| !p.trainable)
            .map(|p| p.value.len())
            .sum()
    }
}
