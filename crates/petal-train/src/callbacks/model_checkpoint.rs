//! Save the weights after epochs, to file names filled in from the epoch's figures.

use std::path::PathBuf;

use petal_nn::Model;
use petal_optim::Optimizer;

use serde::{Deserialize, Serialize};

use super::{Callback, CallbackState, Control, Monitor};
use crate::error::{Result, TrainError};
use crate::history::History;

/// Saves the model's weights after each epoch (or only when the monitored figure
/// improves). The path is a template: `{epoch}` or `{epoch:02}` and any figure such as
/// `{val_loss}` or `{val_accuracy:.4}` are replaced by the epoch's values.
pub struct ModelCheckpoint {
    template: String,
    monitor: Monitor,
    save_best_only: bool,
    best: Option<f64>,
    saved: Vec<PathBuf>,
}

impl ModelCheckpoint {
    /// A checkpoint writer for `template`.
    pub fn new(template: impl Into<String>, monitor: Monitor, save_best_only: bool) -> Self {
        Self {
            template: template.into(),
            monitor,
            save_best_only,
            best: None,
            saved: Vec::new(),
        }
    }

    /// The files written so far.
    pub fn saved(&self) -> &[PathBuf] {
        &self.saved
    }
}

/// What [`ModelCheckpoint`] saves in a full checkpoint.
#[derive(Serialize, Deserialize)]
struct Saved {
    #[serde(with = "crate::exact::option")]
    best: Option<f64>,
    saved: Vec<PathBuf>,
}

/// Fills `{name}` / `{name:spec}` fields of `template` from `epoch` and `logs`; `spec` is
/// `0N` (zero-padded integer) or `.N` (decimals).
fn fill_template(template: &str, epoch: usize, history: &History) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| {
            TrainError::Config(format!("unclosed '{{' in checkpoint path {template:?}"))
        })?;
        let field = &rest[open + 1..open + close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let value = if name == "epoch" {
            Some(epoch as f64 + 1.0)
        } else {
            history.last(name)
        };
        let value = value.ok_or_else(|| {
            TrainError::Config(format!(
                "checkpoint path {template:?} names {name:?}, which the epoch logs lack"
            ))
        })?;
        out.push_str(&match (name, spec) {
            ("epoch", s) if s.starts_with('0') => format!(
                "{:0width$}",
                value as usize,
                width = s[1..].parse().unwrap_or(0)
            ),
            ("epoch", _) => format!("{}", value as usize),
            (_, s) if s.starts_with('.') => {
                let digits: usize = s[1..].trim_end_matches('f').parse().unwrap_or(4);
                format!("{value:.digits$}")
            }
            _ => format!("{value:.4}"),
        });
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Callback for ModelCheckpoint {
    fn leader_only(&self) -> bool {
        true
    }
    fn on_epoch_end(
        &mut self,
        epoch: usize,
        history: &History,
        model: &mut Model,
        _: &mut dyn Optimizer,
    ) -> Result<Control> {
        if self.save_best_only {
            let Some(value) = self.monitor.current(history) else {
                return Ok(Control::Continue);
            };
            if !self.monitor.improves(value, self.best) {
                return Ok(Control::Continue);
            }
            self.best = Some(value);
        }
        let path = PathBuf::from(fill_template(&self.template, epoch, history)?);
        model.save_weights(&path)?;
        self.saved.push(path);
        Ok(Control::Continue)
    }

    fn state(&self) -> CallbackState {
        CallbackState::of(&Saved {
            best: self.best,
            saved: self.saved.clone(),
        })
    }

    fn load_state(&mut self, state: CallbackState, _: &Model) -> Result<()> {
        let saved: Saved = state.values("ModelCheckpoint")?;
        (self.best, self.saved) = (saved.best, saved.saved);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_epoch_and_figures() {
        let mut h = History::default();
        h.epochs.push([("val_loss".to_string(), 0.123456)].into());
        assert_eq!(
            fill_template("w-{epoch:02}-{val_loss:.3f}.st", 4, &h).unwrap(),
            "w-05-0.123.st"
        );
        assert_eq!(fill_template("plain.st", 0, &h).unwrap(), "plain.st");
        assert!(fill_template("w-{accuracy}.st", 0, &h).is_err());
        assert!(fill_template("w-{epoch.st", 0, &h).is_err());
    }
}
