//! A convolution's filter prepared once for the passes that only read it.
//!
//! In inference (and under a frozen layer) a convolution's kernel stays the same from
//! one batch to the next, yet every call would derive from it again what its path
//! needs (Winograd's transformed matrices, 4x the kernel's size) and copy the kernel
//! out of the store. A [`PreparedKernel`] keeps a
//! [`PreparedFilter`](petal_tensor::conv::PreparedFilter) made from the kernel as it
//! was at its [`ParamStore::stamp`], and makes a new one when the stamp has moved on.

use std::sync::{Arc, Mutex};

use petal_tensor::conv::PreparedFilter;
use petal_tensor::Conv2dSpec;

use crate::error::Result;
use crate::{ParamId, ParamStore};

/// The last filter a convolution layer prepared, with the stamp of the kernel it was
/// made from.
#[derive(Default)]
pub(crate) struct PreparedKernel(Mutex<Option<(u64, Arc<PreparedFilter>)>>);

impl PreparedKernel {
    /// The kernel `id` of `store` prepared for `spec`: the one kept, if the kernel has
    /// not changed since, else a new one, kept for the next pass.
    pub fn get(
        &self,
        store: &ParamStore,
        id: ParamId,
        spec: &Conv2dSpec,
    ) -> Result<Arc<PreparedFilter>> {
        let stamp = store.stamp(id);
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, filter)) = kept.as_ref().filter(|(at, _)| *at == stamp) {
            return Ok(Arc::clone(filter));
        }
        // The old filter goes before the new one is made: one is held at a time.
        *kept = None;
        let filter = Arc::new(PreparedFilter::new(store.value(id).clone(), spec)?);
        *kept = Some((stamp, Arc::clone(&filter)));
        Ok(filter)
    }
}
