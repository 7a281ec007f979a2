//! The arithmetic precision of matrix products, and whether this CPU can run bf16.
//!
//! `Precision::F32` is Petal's default everywhere. `Precision::Bf16` rounds the two
//! factors of a product to bfloat16 (8 significant bits) and accumulates in f32, which
//! needs the AVX512-BF16 instructions (`vcvtne2ps2bf16`, `vdpbf16ps`). Asking for bf16
//! on a CPU without them is an error, never an illegal instruction.
//!
//! [`with_precision`] sets the precision of the products for a stretch of code, like
//! PyTorch's `torch.autocast("cpu", dtype=torch.bfloat16)`: inside it, the im2col and
//! 1x1 convolution products, the element-wise stage of the wide Winograd layers and
//! [`matmul`](crate::gemm::matmul) (the dense layers) compute with bf16 factors;
//! everything else (the other Winograd layers, the depthwise and small-patch
//! convolution kernels, activations, normalization, losses, the weights and the
//! optimizer) stays f32 (see [`crate::conv`] for which Winograd layers and why).

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use crate::error::{invalid, Result, TensorError};
use crate::scoped::with_setting;

thread_local! {
    static SCOPED: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// Runs `work` with the convolutions and matrix products it calls on this thread
/// computing in `precision` (the previous precision comes back afterwards, also on a
/// panic). The depthwise and small-patch convolution kernels, and most Winograd layers
/// (see [`crate::conv`]), stay in f32. With
/// [`Precision::Bf16`] on a CPU without AVX512-BF16, each of those products inside
/// `work` is an error naming the CPU, before any work.
///
/// The precision is read when a kernel is called, on the calling thread, and travels
/// with the call into the rayon tasks it starts; code that starts its own threads sets
/// it on each.
///
/// ```
/// use petal_tensor::conv::conv2d;
/// use petal_tensor::gemm::matmul;
/// use petal_tensor::{with_precision, Conv2dSpec, Precision, Tensor};
/// let x = Tensor::from_vec(&[1, 4, 4, 8], (0..128).map(|i| (i % 7) as f32).collect())?;
/// let f = Tensor::from_vec(&[1, 1, 8, 4], (0..32).map(|i| (i % 5) as f32 - 2.0).collect())?;
/// let spec = Conv2dSpec::default();
/// let exact = conv2d(&x, &f, None, &spec)?;
/// match with_precision(Precision::Bf16, || conv2d(&x, &f, None, &spec)) {
///     // Small integers are exact in bf16: the same sums.
///     Ok(bf16) => assert_eq!(bf16.as_slice(), exact.as_slice()),
///     Err(e) => assert!(e.to_string().contains("AVX512-BF16")),
/// }
/// // 1 + 2^-10 rounds to 1 in bf16 (8 significant bits).
/// let a = Tensor::from_vec(&[1, 1], vec![1.0 + 1.0 / 1024.0])?;
/// let one = Tensor::ones(&[1, 1]);
/// if Precision::bf16_available() {
///     let rounded = with_precision(Precision::Bf16, || matmul(&a, &one, false, false))?;
///     assert_eq!(rounded.to_vec(), vec![1.0]);
/// }
/// assert_eq!(Precision::scoped(), Precision::F32); // back to f32 outside
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn with_precision<R>(precision: Precision, work: impl FnOnce() -> R) -> R {
    with_setting(&SCOPED, precision, work)
}

/// The precision a matrix product computes in.
///
/// ```
/// use petal_tensor::Precision;
/// let p: Precision = "bf16".parse().unwrap();
/// assert_eq!(p, Precision::Bf16);
/// // bf16 only where the CPU has AVX512-BF16; f32 always runs.
/// assert_eq!(p.supported().is_ok(), Precision::bf16_available());
/// assert!(Precision::F32.supported().is_ok());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Inputs, products and sums in f32.
    #[default]
    F32,
    /// Inputs rounded to bfloat16 (round to nearest even), products and sums in f32.
    Bf16,
}

impl Precision {
    /// Whether this CPU has the AVX-512 foundation and BF16 instructions bf16 needs.
    pub fn bf16_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The precision [`with_precision`] set on this thread (f32 outside any).
    pub fn scoped() -> Self {
        SCOPED.get()
    }

    /// `self` if this CPU can compute in it, else an error naming the CPU and the way out.
    pub fn supported(self) -> Result<Self> {
        match self {
            Precision::Bf16 if !Self::bf16_available() => Err(bf16_unsupported(&cpu_model())),
            _ => Ok(self),
        }
    }
}

/// Checks that `got`, a bf16 product, is `want` (the f32 product) within bf16's
/// rounding: both factors rounded to 8 significant bits (2 x 2^-8, plus 2^-16 for the
/// product of the two errors) of `magnitude`, the same product of the factors' absolute
/// values, plus the f32 rounding of sums of `terms` products on both sides
/// (2 x terms x f32::EPSILON). The error names the first value out of bounds.
///
/// ```
/// use petal_tensor::within_bf16_rounding;
/// // 3 x 1.00390625 (= 1 + 2^-8, the next bf16 after 1) against its bf16 value 3.
/// assert!(within_bf16_rounding(&[3.0], &[3.01171875], &[3.01171875], 1).is_ok());
/// assert!(within_bf16_rounding(&[3.1], &[3.0], &[3.0], 1).is_err());
/// ```
pub fn within_bf16_rounding(
    got: &[f32],
    want: &[f32],
    magnitude: &[f32],
    terms: usize,
) -> std::result::Result<(), String> {
    let tolerance = 2.0 * 2.0f32.powi(-8) + 2.0f32.powi(-16) + 2.0 * terms as f32 * f32::EPSILON;
    let mut values = got.iter().zip(want).zip(magnitude).enumerate();
    match values.find(|(_, ((g, w), m))| (*g - *w).abs() > tolerance * *m) {
        Some((i, ((g, w), m))) => Err(format!("[{i}]: bf16 {g} vs f32 {w} (scale {m})")),
        None => Ok(()),
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = TensorError;

    /// `"f32"` or `"bf16"`; anything else is an error quoting it.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(invalid(
                "precision",
                format!("unknown precision {other:?} (expected \"f32\" or \"bf16\")"),
            )),
        }
    }
}

/// The error for bf16 asked of a CPU named `model` that lacks AVX512-BF16.
fn bf16_unsupported(model: &str) -> TensorError {
    invalid(
        "precision",
        format!("bf16 needs AVX512-BF16, which this CPU ({model}) lacks; use f32"),
    )
}

/// The CPU's brand string (CPUID leaves 0x80000002..4), or "unknown model".
///
/// ```
/// assert!(!petal_tensor::cpu_model().is_empty());
/// ```
pub fn cpu_model() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
            let bytes: Vec<u8> = (0x8000_0002..=0x8000_0004u32)
                .flat_map(|leaf| {
                    let r = __cpuid(leaf);
                    [r.eax, r.ebx, r.ecx, r.edx]
                })
                .flat_map(u32::to_le_bytes)
                .take_while(|&b| b != 0)
                .collect();
            let name = String::from_utf8_lossy(&bytes).trim().to_string();
            if !name.is_empty() {
                return name;
            }
        }
    }
    "unknown model".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_bf16_error_names_the_cpu_and_the_way_out() {
        let err = bf16_unsupported("Intel(R) Core(TM) i7-8700").to_string();
        assert_eq!(
            err,
            "precision: bf16 needs AVX512-BF16, which this CPU (Intel(R) Core(TM) i7-8700) lacks; use f32"
        );
    }

    #[test]
    fn bf16_is_refused_exactly_when_the_cpu_lacks_it() {
        match Precision::Bf16.supported() {
            Ok(p) => assert!(Precision::bf16_available() && p == Precision::Bf16),
            Err(e) => {
                assert!(!Precision::bf16_available());
                assert!(e.to_string().contains(&cpu_model()), "{e}");
            }
        }
        assert_eq!(Precision::F32.supported().unwrap(), Precision::F32);
    }

    #[test]
    fn the_cpu_model_is_a_readable_name() {
        let model = cpu_model();
        assert!(!model.is_empty() && !model.contains('\0'), "{model:?}");
    }

    #[test]
    fn precisions_parse_and_print_back() {
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
        }
        let err = "fp16".parse::<Precision>().unwrap_err().to_string();
        assert!(
            err.contains("\"fp16\"") && err.contains("\"bf16\""),
            "{err}"
        );
        assert_eq!(Precision::default(), Precision::F32);
    }
}
