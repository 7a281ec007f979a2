//! Where the workspace keeps datasets and reports.

use std::path::PathBuf;

use petal_data::download::DataConfig;
use petal_zoo::pretrained::WeightsFolder;

/// The workspace root (the folder holding `xtask/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The dataset cache and mirror: `PETAL_DATA` (default `datasets/cache`) and `PETAL_MIRROR`.
pub fn data_config() -> DataConfig {
    DataConfig::from_env(workspace_root().join("datasets").join("cache"))
}

/// Where pretrained weights are read (`PETAL_WEIGHTS`, else `<cache>/weights`) and
/// fetched to.
pub fn weights_folder() -> WeightsFolder {
    WeightsFolder::from_env(data_config())
}

/// Where `repro mnist` keeps its trained weights (never in `docs/`: weights are not
/// committed): `<cache>/models/mnist.safetensors`, or
/// `target/repro-quick/mnist/model.safetensors` for `--quick` runs.
pub fn mnist_model_path(quick: bool) -> PathBuf {
    if quick {
        workspace_root()
            .join("target")
            .join("repro-quick")
            .join("mnist")
            .join("model.safetensors")
    } else {
        data_config()
            .cache_root
            .join("models")
            .join("mnist.safetensors")
    }
}
