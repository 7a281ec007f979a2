//! Settings that hold for a stretch of code on one thread (the kernel and precision
//! choices), restored afterwards.

use std::cell::Cell;
use std::thread::LocalKey;

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
