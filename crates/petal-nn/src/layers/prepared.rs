//! A convolution's filter prepared once for the passes that only read it.
//!
//! In inference (and under a frozen layer) a convolution's kernel stays the same from
//! one batch to the next, yet every call would derive from it again what its path
//! needs (Winograd's transformed matrices, up to 4x the kernel's size). A
//! [`PreparedKernel`] keeps a [`PreparedFilter`] made from the kernel as it was at its
//! [`ParamStore::stamp`], and makes a new one when the stamp has moved on.

use std::sync::{Arc, Mutex, MutexGuard};

use petal_tensor::conv::PreparedFilter;
use petal_tensor::Conv2dSpec;

use crate::error::Result;
use crate::{ParamId, ParamStore};

/// The last filter a convolution layer prepared, with the stamp of the kernel it was
/// made from.
#[derive(Default)]
pub(crate) struct PreparedKernel(Mutex<Option<(u64, Arc<PreparedFilter>)>>);

impl PreparedKernel {
    /// The kernel `id` of `store` prepared for `spec`, when the path chosen now gains
    /// from it ([`PreparedFilter::worth_preparing`]): the one kept, if the kernel has
    /// not changed since and its path is still the one chosen, else a new one, kept
    /// for the next pass.
    pub fn get(
        &self,
        store: &ParamStore,
        id: ParamId,
        spec: &Conv2dSpec,
    ) -> Result<Option<Arc<PreparedFilter>>> {
        let stamp = store.stamp(id);
        {
            let mut kept = self.lock();
            match kept.as_ref() {
                Some((at, filter)) if *at == stamp && filter.is_current() => {
                    return Ok(Some(Arc::clone(filter)));
                }
                // Out of date: dropped before a new one is made.
                _ => *kept = None,
            }
        }
        let kernel = store.value(id);
        if !PreparedFilter::worth_preparing(kernel.shape(), spec) {
            return Ok(None);
        }
        // Made without holding the lock: making it runs on the thread pool, where this
        // thread may take up another pass through this layer that waits for the lock.
        let filter = Arc::new(PreparedFilter::new(kernel.clone(), spec)?);
        *self.lock() = Some((stamp, Arc::clone(&filter)));
        Ok(Some(filter))
    }

    /// Drops the kept filter: a pass that records is training the kernel, so the
    /// filter would only hold memory until the next prediction replaces it.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> MutexGuard<'_, Option<(u64, Arc<PreparedFilter>)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use petal_tensor::conv::{with_kernel_3x3, Kernel3x3};
    use petal_tensor::Tensor;

    use super::*;

    /// One filter per kernel value and kernel choice; none where nothing pays.
    #[test]
    fn a_filter_is_made_once_per_kernel_value_and_path() {
        let mut store = ParamStore::new();
        let spec = Conv2dSpec::default();
        let kernel = store
            .add("k", Tensor::ones(&[3, 3, 32, 32]), false)
            .unwrap();
        let pointwise = store
            .add("p", Tensor::ones(&[1, 1, 32, 32]), false)
            .unwrap();
        let prepared = PreparedKernel::default();
        let first = prepared.get(&store, kernel, &spec).unwrap().unwrap();
        let again = prepared.get(&store, kernel, &spec).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "kept");
        // Another kernel choice (F(2x2) instead of F(4x4)): made again, then kept.
        let f2 = || {
            with_kernel_3x3(Kernel3x3::WinogradF2x2, || {
                prepared.get(&store, kernel, &spec).unwrap().unwrap()
            })
        };
        let (other, other_again) = (f2(), f2());
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(Arc::ptr_eq(&other, &other_again));
        // A write to the kernel, or a swapped-in copy of the store written to.
        store.value_mut(kernel).as_mut_slice()[0] = 2.0;
        let written = prepared.get(&store, kernel, &spec).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&other, &written));
        assert_eq!(written.filter().as_slice()[0], 2.0);
        let mut copy = store.clone();
        copy.set_value(kernel, Tensor::zeros(&[3, 3, 32, 32]))
            .unwrap();
        let swapped = prepared.get(&copy, kernel, &spec).unwrap().unwrap();
        assert_eq!(swapped.filter().as_slice()[0], 0.0);
        // Nothing kept after a clear, nothing made for a 1x1 kernel.
        prepared.clear();
        assert!(prepared.lock().is_none());
        assert!(prepared.get(&store, pointwise, &spec).unwrap().is_none());
        assert!(prepared.lock().is_none());
    }
}
