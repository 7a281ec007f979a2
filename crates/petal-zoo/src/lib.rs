//! # petal-zoo
//!
//! Ready-made architectures. Today: the lecture's bipyramidal CNN ([`bipyramidal`]):
//! blocks of convolutions and 2x2 max-pooling whose filter counts double block by block
//! while the feature maps halve, then a dense head.

mod bipyramidal;

pub use bipyramidal::{bipyramidal, BipyramidalConfig};
