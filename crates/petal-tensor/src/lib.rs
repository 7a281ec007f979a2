//! # petal-tensor
//!
//! The f32 tensor and the numeric kernels every other Petal crate stands on. No
//! autodiff here: each kernel is a plain function with its backward companion, and
//! `petal-nn` records them on its tape.
//!
//! Conventions (as in Keras): activations are NHWC `(batch, height, width, channels)`,
//! convolution filters HWIO `(height, width, in_channels / groups, out_channels)`, dense
//! weights `(in, out)`. `Padding::Same` is TensorFlow's rule.
//!
//! Kernels run on the current rayon pool; run them inside
//! `rayon::ThreadPoolBuilder::new().num_threads(n).build()?.install(..)` to choose the
//! thread count. A run gives the same numbers for the same thread count.
//!
//! ```
//! use petal_tensor::{conv::conv2d, Conv2dSpec, Padding, Tensor};
//! let image = Tensor::ones(&[1, 4, 4, 1]);
//! let filter = Tensor::ones(&[3, 3, 1, 2]);
//! let spec = Conv2dSpec { padding: Padding::Same, ..Conv2dSpec::default() };
//! let maps = conv2d(&image, &filter, None, &spec)?;
//! assert_eq!(maps.shape(), &[1, 4, 4, 2]);
//! assert_eq!(maps.as_slice()[0], 4.0); // the corner window sees 4 ones
//! # Ok::<(), petal_tensor::TensorError>(())
//! ```

pub mod conv;
pub mod elementwise;
mod error;
pub mod fs;
pub mod gemm;
pub mod loss;
pub mod norm;
mod parallel;
pub mod peak;
pub mod pool;
mod precision;
pub mod reduce;
mod scoped;
pub mod shape_ops;
mod simd;
mod tensor;
mod window;

pub use conv::Conv2dSpec;
pub use error::{Result, TensorError};
pub use pool::Pool2dSpec;
pub use precision::{cpu_model, with_precision, within_bf16_rounding, Precision};
pub use scoped::ScopedSettings;
pub use tensor::Tensor;
pub use window::Padding;
