//! The error of the zoo's file-facing functions: fetching, verifying and loading
//! pretrained weights, preparing photos, caching features.

use std::path::PathBuf;

use petal_data::DataError;
use petal_nn::weights::WeightsError;
use petal_nn::NnError;

/// Why a pretrained model, its files or a feature cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    /// The catalog has no weights of that name.
    #[error("no pretrained weights called {name:?}; known: {known}")]
    UnknownWeights {
        /// The name asked for.
        name: String,
        /// The catalog's names, comma-separated.
        known: String,
    },
    /// The weights file is not where it is looked for.
    #[error(
        "{}: the {name} weights are not there; run `cargo xtask download weights {name}` \
         (with PETAL_MIRROR on an offline machine) or set PETAL_WEIGHTS to a folder holding {file_name}",
        .path.display()
    )]
    MissingWeights {
        /// Where the file was looked for.
        path: PathBuf,
        /// The catalog name.
        name: &'static str,
        /// The file's name.
        file_name: String,
    },
    /// The weights file holds other bytes than the catalog's.
    #[error("{}: these are not the {name} weights the catalog names (sha256 {expected})", .path.display())]
    WrongWeights {
        /// The file.
        path: PathBuf,
        /// The catalog name.
        name: &'static str,
        /// The sha256 the catalog expects.
        expected: &'static str,
    },
    /// No source can serve a file: no URL is published for it and no mirror is set.
    #[error(
        "{file_name}: no public URL serves this file ({source_desc}); put it in \
         <PETAL_MIRROR>/weights/ and run again, or point PETAL_WEIGHTS at a folder holding it"
    )]
    NoSource {
        /// The file's name.
        file_name: String,
        /// Where the file was published.
        source_desc: String,
    },
    /// An argument does not fit, e.g. a base whose output is not a feature vector or map.
    #[error("{context}: {reason}")]
    Invalid {
        /// The function or type that refused it.
        context: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Reading, fetching or decoding a file failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A weights file could not be read or does not fit the model.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// Building or running the model failed.
    #[error(transparent)]
    Nn(#[from] NnError),
}
