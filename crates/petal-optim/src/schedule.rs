//! Learning-rate schedules: the learning rate as a function of the step (0 at the first
//! step). A training loop tells the schedule how long the run is
//! ([`LrSchedule::set_run_length`]), then calls
//! `optimizer.set_learning_rate(schedule.learning_rate(step))` before each step.
//! Formulas are computed in f64.

use std::f64::consts::PI;

/// How long a training run is, in optimizer steps: what a training loop (`fit`) tells
/// its schedule before the first step, so that no one computes steps per epoch by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLength {
    /// Optimizer steps (batches) per epoch.
    pub steps_per_epoch: u64,
    /// The optimizer's step count when the run started (0 for a new optimizer).
    pub first_step: u64,
    /// Steps in the whole run: epochs times steps per epoch.
    pub total_steps: u64,
}

/// A learning rate for every step.
pub trait LrSchedule: Send + Sync {
    /// The learning rate at `step` (0-based, the optimizer's step count).
    fn learning_rate(&self, step: u64) -> f32;
    /// Told by the training loop before the first step how long the run is. Schedules
    /// given their length in steps ignore it (the default); those that span the whole
    /// run ([`CosineDecay::over_training`]) take their length from it.
    fn set_run_length(&mut self, _run: RunLength) {}
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
/// `initial` down to the floor `alpha * initial` at `decay_steps`, constant after.
///
/// [`CosineDecay::new`] decays over a given number of steps; [`CosineDecay::over_training`]
/// over the training run it is given to: its first step trains at `initial` and its last
/// step at the floor, whatever the number of epochs and batches.
///
/// ```
/// use petal_optim::{CosineDecay, LrSchedule, RunLength};
/// let mut cosine = CosineDecay::over_training(0.1, 0.0);
/// cosine.set_run_length(RunLength { steps_per_epoch: 10, first_step: 0, total_steps: 50 });
/// assert_eq!(cosine.learning_rate(0), 0.1);
/// assert_eq!(cosine.learning_rate(49), 0.0); // the last step of the run
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineDecay {
    initial: f32,
    alpha: f32,
    span: Span,
}

/// The steps a [`CosineDecay`] decays over.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Span {
    /// Steps 0 to `n` of the optimizer.
    Steps(u64),
    /// The whole training run, once the training loop has told its length.
    Run(Option<RunLength>),
}

impl CosineDecay {
    /// Decays from `initial` to `alpha * initial` over steps 0 to `decay_steps` of the
    /// optimizer (Keras' `CosineDecay(initial, decay_steps, alpha)`). `decay_steps` = 0
    /// counts as 1.
    pub fn new(initial: f32, decay_steps: u64, alpha: f32) -> Self {
        Self {
            initial,
            alpha,
            span: Span::Steps(decay_steps),
        }
    }

    /// Decays from `initial` at the first step of the training run to `alpha * initial`
    /// at its last step, the run's length coming from the training loop
    /// ([`LrSchedule::set_run_length`]). Until told, the rate is `initial`.
    pub fn over_training(initial: f32, alpha: f32) -> Self {
        Self {
            initial,
            alpha,
            span: Span::Run(None),
        }
    }

    /// The rate at `done` steps out of `total` (`total` = 0 counts as 1).
    fn at(&self, done: u64, total: u64) -> f32 {
        let total = total.max(1);
        let progress = done.min(total) as f64 / total as f64;
        let cosine = 0.5 * (1.0 + (PI * progress).cos());
        let alpha = f64::from(self.alpha);
        (f64::from(self.initial) * ((1.0 - alpha) * cosine + alpha)) as f32
    }
}

impl LrSchedule for CosineDecay {
    fn learning_rate(&self, step: u64) -> f32 {
        match self.span {
            Span::Steps(decay_steps) => self.at(step, decay_steps),
            // The run's steps are first_step ..= first_step + total - 1: the last one is
            // total - 1 steps after the first.
            Span::Run(Some(run)) => self.at(
                step.saturating_sub(run.first_step),
                run.total_steps.saturating_sub(1),
            ),
            Span::Run(None) => self.initial,
        }
    }

    fn set_run_length(&mut self, run: RunLength) {
        if let Span::Run(_) = self.span {
            self.span = Span::Run(Some(run));
        }
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

    /// Tells `then` the part of the run after the warmup, in its own step count.
    fn set_run_length(&mut self, run: RunLength) {
        let end = run.first_step + run.total_steps;
        let first = run.first_step.max(self.warmup_steps) - self.warmup_steps;
        self.then.set_run_length(RunLength {
            steps_per_epoch: run.steps_per_epoch,
            first_step: first,
            total_steps: end.saturating_sub(self.warmup_steps).saturating_sub(first),
        });
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
        let s = CosineDecay::new(1.0, 100, 0.1);
        close(s.learning_rate(0), 1.0); // cos(0) = 1: 0.9 * 1 + 0.1
        close(s.learning_rate(50), 0.55); // cos(pi/2) = 0: 0.9 * 0.5 + 0.1
        close(s.learning_rate(25), 0.9 * 0.5 * (1.0 + 0.5f64.sqrt()) + 0.1); // cos(pi/4) = 0.7071: 0.868198
        close(s.learning_rate(100), 0.1); // cos(pi) = -1: alpha
        close(s.learning_rate(500), 0.1); // clamped at decay_steps
    }

    #[test]
    fn cosine_over_training_spans_the_run_it_is_told() {
        let mut s = CosineDecay::over_training(1.0, 0.1);
        close(s.learning_rate(7), 1.0); // not told yet: the initial rate
        s.set_run_length(RunLength {
            steps_per_epoch: 10,
            first_step: 0,
            total_steps: 101, // steps 0..=100
        });
        close(s.learning_rate(0), 1.0);
        close(s.learning_rate(50), 0.55); // half way: 0.9 * 0.5 + 0.1
        close(s.learning_rate(100), 0.1); // the last step: the floor
                                          // A second run of the same optimizer decays again from its own first step.
        s.set_run_length(RunLength {
            steps_per_epoch: 10,
            first_step: 101,
            total_steps: 11,
        });
        close(s.learning_rate(101), 1.0);
        close(s.learning_rate(106), 0.55);
        close(s.learning_rate(111), 0.1);
        // The explicit form ignores the run's length.
        let mut fixed = CosineDecay::new(1.0, 100, 0.1);
        fixed.set_run_length(RunLength {
            steps_per_epoch: 1,
            first_step: 0,
            total_steps: 3,
        });
        close(fixed.learning_rate(50), 0.55);
    }

    #[test]
    fn warmup_tells_its_schedule_the_rest_of_the_run() {
        let mut s = Warmup {
            warmup_steps: 4,
            target: 1.0,
            then: Box::new(CosineDecay::over_training(1.0, 0.0)),
        };
        s.set_run_length(RunLength {
            steps_per_epoch: 7,
            first_step: 0,
            total_steps: 14, // 4 warmup steps, then 10 steps numbered 0..=9
        });
        close(s.learning_rate(3), 1.0);
        close(s.learning_rate(4), 1.0);
        close(s.learning_rate(13), 0.0);
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
