//! Write each epoch's figures as a row of a CSV file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use petal_nn::Model;
use petal_optim::Optimizer;

use super::{Callback, CallbackState, Control};
use crate::error::{Result, TrainError};
use crate::history::History;

/// Appends one CSV row per epoch (the header is written with the first row; columns are
/// the figure names in alphabetical order).
pub struct CsvLogger {
    path: PathBuf,
    columns: Option<Vec<String>>,
}

impl CsvLogger {
    /// Logs to `path`, replacing any file there.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            columns: None,
        }
    }
}

impl Callback for CsvLogger {
    fn leader_only(&self) -> bool {
        true
    }
    fn on_epoch_end(
        &mut self,
        _: usize,
        history: &History,
        _: &mut Model,
        _: &mut dyn Optimizer,
    ) -> Result<Control> {
        let Some(logs) = history.epochs.last() else {
            return Ok(Control::Continue);
        };
        let io = |source| TrainError::Io {
            path: self.path.clone(),
            source,
        };
        let first = self.columns.is_none();
        let columns = self
            .columns
            .get_or_insert_with(|| logs.keys().cloned().collect());
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(!first)
            .truncate(first)
            .open(&self.path)
            .map_err(io)?;
        let mut text = String::new();
        if first {
            text += &columns.join(",");
            text.push('\n');
        }
        let row: Vec<String> = columns
            .iter()
            .map(|c| logs.get(c).map(|v| v.to_string()).unwrap_or_default())
            .collect();
        text += &row.join(",");
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io)?;
        Ok(Control::Continue)
    }

    /// The columns once the header is written, so that a resumed run appends.
    fn state(&self) -> CallbackState {
        CallbackState::of(&self.columns)
    }

    fn load_state(&mut self, state: CallbackState, _: &Model) -> Result<()> {
        self.columns = state.values("CsvLogger")?;
        Ok(())
    }
}
