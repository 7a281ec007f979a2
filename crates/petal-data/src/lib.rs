//! # petal-data
//!
//! Datasets for Petal: the [`Dataset`] trait with its combinators ([`Subset`],
//! [`Shuffled`], [`Mapped`], [`Concatenated`]), a reproducible parallel [`BatchLoader`], the IDX format
//! ([`idx`]) and MNIST-format folders ([`mnist`]), and verified downloads into a local
//! cache from a mirror folder or the official URLs ([`download`], [`Manifest`]),
//! seeded image augmentation ([`augment`]) that the loader can apply per sample, and
//! image data: MATLAB v5 `.mat` files ([`mat`]), streaming `.tgz` extraction
//! ([`extract`]), Oxford 102 Flowers ([`flowers`]), image files as a dataset
//! ([`ImageDataset`], resized by [`resize`]), class-per-folder datasets ([`ImageFolder`]) and seeded stratified
//! splits ([`stratified_split`]).
//!
//! Samples are NHWC without the batch axis, e.g. `[28, 28, 1]`; batches are
//! `(batch, height, width, channels)` tensors.
//!
//! ```
//! use petal_data::{BatchLoader, Dataset, InMemoryDataset, Shuffled};
//! use petal_tensor::Tensor;
//! let images = Tensor::from_vec(&[4, 1, 1, 1], vec![0.0, 1.0, 2.0, 3.0]).unwrap();
//! let data = InMemoryDataset::new(images, vec![0, 1, 0, 1], 2)?;
//! let loader = BatchLoader::new(Shuffled::new(&data, 1), 2)?.drop_last(true);
//! for batch in loader.epoch(0) {
//!     let batch = batch?;
//!     assert_eq!(batch.images.shape(), &[2, 1, 1, 1]);
//! }
//! # Ok::<(), petal_data::DataError>(())
//! ```

pub mod augment;
mod combinators;
mod dataset;
pub mod download;
mod error;
pub mod extract;
pub mod flowers;
mod http;
pub mod idx;
mod image_folder;
mod images;
mod loader;
mod lock;
mod manifest;
pub mod mat;
pub mod mnist;
pub mod resize;
mod split;
mod verify;

pub use combinators::{Concatenated, Mapped, Shuffled, Subset};
pub use dataset::{Dataset, InMemoryDataset};
pub use error::{DataError, Result};
pub use image_folder::{ImageFolder, SkippedFile};
pub use images::{
    load_rgb, open_image, prepare_image, prepare_rgb, FilterType, ImageDataset, ImageOptions,
    Normalization, ResizeMode, MAX_IMAGE_BYTES,
};
pub use loader::{shard_range, Batch, BatchLoader};
pub use manifest::{AcceptedVersion, Manifest, ManifestFile, MIN_SHA256_PREFIX};
pub use split::{stratified_split, Split, SplitIndices};
