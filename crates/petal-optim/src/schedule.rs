//! Learning-rate schedules: the learning rate as a function of the step (0 at the first
//! step). A training loop calls `optimizer.set_learning_rate(schedule.learning_rate(step))`
//! before each step. Formulas are computed in f64.

use std::f64::consts::PI;

/// A learning rate for every step.
pub trait LrSchedule: Send + Sync {
    /// The learning rate at `step` (0-based).
    fn learning_rate(&self, step: u64) -> f32;
}

/// The same rate at every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Constant(pub f32);

impl LrSchedule for Constant {
    fn learning_rate(&self, _step: u64) -> f32 {
        self.0
    }
}

/// `initial * factor^(step / every)` with integer division: the rate is multiplied by
/// `factor` every `every` steps. `every` = 0 counts as 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    /// The rate at step 0.
    pub initial: f32,
    /// Multiplier applied every `every` steps.
    pub factor: f32,
    /// Steps between two decays.
    pub every: u64,
}

impl LrSchedule for StepDecay {
    fn learning_rate(&self, step: u64) -> f32 {
        let drops = step / self.every.max(1);
        (f64::from(self.initial) * f64::from(self.factor).powf(drops as f64)) as f32
    }
}

/// Keras's `ExponentialDecay`: `initial * decay_rate^(step / decay_steps)`, where the
/// exponent is rounded down to a whole number when `staircase` is set. `decay_steps`
/// = 0 counts as 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialDecay {
    /// The rate at step 0.
    pub initial: f32,
    /// Multiplier per `decay_steps` steps.
    pub decay_rate: f32,
    /// Steps over which the rate is multiplied by `decay_rate`.
    pub decay_steps: u64,
    /// Decay in whole steps of `decay_steps` instead of continuously.
    pub staircase: bool,
}

impl LrSchedule for ExponentialDecay {
    fn learning_rate(&self, step: u64) -> f32 {
        let mut exponent = step as f64 / self.decay_steps.max(1) as f64;
        if self.staircase {
            exponent = exponent.floor();
        }
        (f64::from(self.initial) * f64::from(self.decay_rate).powf(exponent)) as f32
    }
}

/// Keras's `CosineDecay` (without warmup): with `s = min(step, decay_steps)`,
/// `initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)`: from
/// `initial` down to `alpha * initial` at `decay_steps`, constant after. `decay_steps`
/// = 0 counts as 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineDecay {
    /// The rate at step 0.
    pub initial: f32,
    /// Steps to decay over.
    pub decay_steps: u64,
    /// The final rate as a fraction of `initial`.
    pub alpha: f32,
}

impl LrSchedule for CosineDecay {
    fn learning_rate(&self, step: u64) -> f32 {
        let total = self.decay_steps.max(1);
        let progress = step.min(total) as f64 / total as f64;
        let cosine = 0.5 * (1.0 + (PI * progress).cos());
        let alpha = f64::from(self.alpha);
        (f64::from(self.initial) * ((1.0 - alpha) * cosine + alpha)) as f32
    }
}

/// A linear warmup followed by another schedule: at step `s < warmup_steps` the rate is
/// `target * (s + 1) / warmup_steps` (target / warmup_steps at step 0, target at step
/// warmup_steps - 1); from then on it is `then.learning_rate(s - warmup_steps)`.
pub struct Warmup {
    /// Length of the warmup.
    pub warmup_steps: u64,
    /// The rate the warmup climbs to.
    pub target: f32,
    /// The schedule after the warmup, which sees its own step count from 0.
    pub then: Box<dyn LrSchedule>,
}

impl LrSchedule for Warmup {
    fn learning_rate(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            (f64::from(self.target) * (step + 1) as f64 / self.warmup_steps as f64) as f32
        } else {
            self.then.learning_rate(step - self.warmup_steps)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f32, want: f64) {
        assert!(
            (f64::from(got) - want).abs() <= 1e-7 * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn constant_is_constant() {
        close(Constant(0.25).learning_rate(0), 0.25);
        close(Constant(0.25).learning_rate(1_000_000), 0.25);
    }

    #[test]
    fn step_decay_drops_every_n_steps() {
        let s = StepDecay {
            initial: 0.1,
            factor: 0.5,
            every: 10,
        };
        close(s.learning_rate(0), 0.1); // 0.1 * 0.5^0
        close(s.learning_rate(9), 0.1); // 9 / 10 = 0
        close(s.learning_rate(10), 0.05); // 0.1 * 0.5^1
        close(s.learning_rate(35), 0.0125); // 35 / 10 = 3: 0.1 * 0.125
        let never = StepDecay { every: 0, ..s };
        close(never.learning_rate(2), 0.025); // every 0 counts as 1: 0.1 * 0.5^2
    }

    #[test]
    fn exponential_decay_matches_keras() {
        let smooth = ExponentialDecay {
            initial: 0.1,
            decay_rate: 0.5,
            decay_steps: 10,
            staircase: false,
        };
        close(smooth.learning_rate(0), 0.1);
        close(smooth.learning_rate(5), 0.1 * 0.5f64.sqrt()); // 0.1 * 0.5^0.5 = 0.0707107
        close(smooth.learning_rate(20), 0.025); // 0.1 * 0.5^2
        let stairs = ExponentialDecay {
            staircase: true,
            ..smooth
        };
        close(stairs.learning_rate(5), 0.1); // floor(0.5) = 0
        close(stairs.learning_rate(25), 0.025); // floor(2.5) = 2
    }

    #[test]
    fn cosine_decay_matches_keras() {
        let s = CosineDecay {
            initial: 1.0,
            decay_steps: 100,
            alpha: 0.1,
        };
        close(s.learning_rate(0), 1.0); // cos(0) = 1: 0.9 * 1 + 0.1
        close(s.learning_rate(50), 0.55); // cos(pi/2) = 0: 0.9 * 0.5 + 0.1
        close(s.learning_rate(25), 0.9 * 0.5 * (1.0 + 0.5f64.sqrt()) + 0.1); // cos(pi/4) = 0.7071: 0.868198
        close(s.learning_rate(100), 0.1); // cos(pi) = -1: alpha
        close(s.learning_rate(500), 0.1); // clamped at decay_steps
    }

    #[test]
    fn warmup_climbs_then_hands_over() {
        let s = Warmup {
            warmup_steps: 4,
            target: 0.4,
            then: Box::new(StepDecay {
                initial: 0.4,
                factor: 0.5,
                every: 2,
            }),
        };
        close(s.learning_rate(0), 0.1); // 0.4 * 1/4
        close(s.learning_rate(1), 0.2); // 0.4 * 2/4
        close(s.learning_rate(3), 0.4); // 0.4 * 4/4
        close(s.learning_rate(4), 0.4); // then at step 0
        close(s.learning_rate(6), 0.2); // then at step 2: 0.4 * 0.5
    }
}
