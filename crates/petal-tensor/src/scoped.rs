//! Settings that hold for a stretch of code on one thread (the kernel and precision
//! choices), restored afterwards, and [`ScopedSettings`] to carry them to other threads.

use std::cell::Cell;
use std::thread::LocalKey;

use crate::conv::{with_kernel_3x3, Kernel3x3};
use crate::{with_precision, Precision};

/// The settings of a stretch of code on one thread ([`with_precision`] and
/// [`with_kernel_3x3`]), taken to run work on other threads under them: a kernel reads
/// them on the thread that calls it, so work handed to a rayon task would otherwise run
/// with the defaults.
///
/// ```
/// use petal_tensor::{with_precision, Precision, ScopedSettings};
/// let settings = with_precision(Precision::Bf16, ScopedSettings::current);
/// let seen = std::thread::scope(|s| s.spawn(|| settings.run(Precision::scoped)).join());
/// assert_eq!(seen.unwrap(), Precision::Bf16);
/// assert_eq!(Precision::scoped(), Precision::F32);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopedSettings {
    precision: Precision,
    kernel_3x3: Kernel3x3,
}

impl ScopedSettings {
    /// The settings holding on this thread now.
    pub fn current() -> Self {
        ScopedSettings {
            precision: Precision::scoped(),
            kernel_3x3: Kernel3x3::scoped(),
        }
    }

    /// Runs `work` on this thread under these settings; the thread's own come back
    /// afterwards.
    pub fn run<R>(self, work: impl FnOnce() -> R) -> R {
        with_precision(self.precision, || with_kernel_3x3(self.kernel_3x3, work))
    }
}

/// Runs `work` with `setting` holding `value` on this thread, the previous value back
/// afterwards (also on a panic).
pub(crate) fn with_setting<T: Copy + 'static, R>(
    setting: &'static LocalKey<Cell<T>>,
    value: T,
    work: impl FnOnce() -> R,
) -> R {
    struct Restore<T: Copy + 'static>(&'static LocalKey<Cell<T>>, T);
    impl<T: Copy + 'static> Drop for Restore<T> {
        fn drop(&mut self) {
            self.0.set(self.1);
        }
    }
    let _restore = Restore(setting, setting.replace(value));
    work()
}
