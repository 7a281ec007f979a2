//! Stop as soon as the loss is not a finite number.

use super::{Callback, Control};
use crate::error::Result;

/// Stops training at the first step whose loss is NaN or infinite.
#[derive(Default)]
pub struct TerminateOnNan;

impl Callback for TerminateOnNan {
    fn on_batch_end(&mut self, step: u64, loss: f32) -> Result<Control> {
        Ok(if loss.is_finite() {
            Control::Continue
        } else {
            Control::Stop(format!("loss became {loss} at step {step}"))
        })
    }
}
