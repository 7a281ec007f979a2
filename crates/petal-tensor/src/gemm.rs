//! General matrix multiply on strided f32 matrix views.
//!
//! The micro-kernels come from the `gemm` crate, which picks AVX-512, AVX2+FMA or a
//! portable kernel at run time. It was measured faster than `matrixmultiply` on the
//! reference machine (see `benches/gemm.rs` and the README's speed section).
//! [`gemm_bf16`] is the same product with its factors rounded to bfloat16 (see [`bf16`]).

use gemm::Parallelism;

pub use bf16::{gemm_bf16, round_bf16};

use crate::error::{invalid, shape_mismatch, Result};
use crate::{Precision, Tensor};

pub mod bf16;

/// Below this many multiply-adds a product runs on one thread: splitting it costs more
/// than it saves.
const PARALLEL_MIN_FLOPS: usize = 1 << 18;

/// A read-only matrix view: element `(r, c)` is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A strided view. An element falling outside `data` is an error naming the view's
    /// shape, strides and how many values it needs.
    ///
    /// ```
    /// use petal_tensor::gemm::MatRef;
    /// let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    /// assert!(MatRef::new(&data, 2, 3, 3, 1).is_ok());
    /// let err = MatRef::new(&data, 3, 3, 3, 1).unwrap_err();
    /// assert!(err.to_string().contains("needs 9 values, has 6"));
    /// ```
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        check_fits(data.len(), rows, cols, row_stride, col_stride)?;
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// A dense row-major `rows x cols` view; `data` shorter than `rows * cols` is an error.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The same data seen as its transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The `rows x cols` block whose first element is `(row, col)` (inside `self`).
    fn block(self, row: usize, col: usize, rows: usize, cols: usize) -> Self {
        debug_assert!(row + rows <= self.rows && col + cols <= self.cols);
        let start = if rows == 0 || cols == 0 {
            0
        } else {
            row * self.row_stride + col * self.col_stride
        };
        Self {
            data: &self.data[start..],
            rows,
            cols,
            ..self
        }
    }
}

/// A writable matrix view with unit column stride: element `(r, c)` is
/// `data[r * row_stride + c]`.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A view with rows `row_stride` apart. An element falling outside `data` is an error
    /// naming the view's shape, stride and how many values it needs.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Result<Self> {
        check_fits(data.len(), rows, cols, row_stride, 1)?;
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
        })
    }

    /// A dense row-major `rows x cols` view; `data` shorter than `rows * cols` is an error.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols)
    }
}

/// Whether every element of a `rows x cols` view with these strides lies inside a slice
/// of `len` values (the soundness condition of the unsafe call in [`gemm`]).
fn check_fits(
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let needed = (rows - 1)
        .checked_mul(row_stride)
        .zip((cols - 1).checked_mul(col_stride))
        .and_then(|(down, across)| down.checked_add(across)?.checked_add(1));
    match needed {
        Some(needed) if needed <= len => Ok(()),
        Some(needed) => Err(invalid(
            "matrix view",
            format!("{rows}x{cols} (strides {row_stride}, {col_stride}) needs {needed} values, has {len}"),
        )),
        None => Err(invalid(
            "matrix view",
            format!("{rows}x{cols} (strides {row_stride}, {col_stride}) overflows the address space, has {len} values"),
        )),
    }
}

/// `c = a * b` (or `c += a * b` when `accumulate`), for `a: m x k`, `b: k x n`, `c: m x n`.
///
/// With `parallel`, large products split over the current rayon pool; kernels that
/// already run one task per image pass `false`. Shapes that do not chain (`a`'s columns
/// against `b`'s rows, or `c` not `m x n`) are an error naming the three shapes.
///
/// ```
/// use petal_tensor::gemm::{gemm, MatMut, MatRef};
/// # fn main() -> petal_tensor::Result<()> {
/// let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
/// let b = [5.0, 6.0, 7.0, 8.0];
/// let mut c = [0.0; 4];
/// gemm(MatRef::row_major(&a, 2, 2)?, MatRef::row_major(&b, 2, 2)?, MatMut::row_major(&mut c, 2, 2)?, false, false)?;
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// # Ok(())
/// # }
/// ```
pub fn gemm(
    a: MatRef<'_>,
    b: MatRef<'_>,
    mut c: MatMut<'_>,
    accumulate: bool,
    parallel: bool,
) -> Result<()> {
    let Some((m, k, n)) = product_shape("gemm", &a, [b.rows, b.cols], &mut c, accumulate)? else {
        return Ok(());
    };
    let parallelism = if splits_over_threads(parallel, m, n, k) {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: `check_fits` proved every strided element of the three views lies inside
    // its slice, the shapes agree (checked above), and `c` is borrowed mutably so it
    // cannot alias `a` or `b`. The gemm crate computes dst = alpha*dst + beta*lhs*rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            1,
            c.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// The `(m, k, n)` of `c (+)= a * b` for `b` of `[rows, cols]`, or a shape error for
/// `op` naming the three shapes.
///
/// `None` when nothing is left to compute: `c` is empty, or `k == 0` (then `c` is
/// zeroed unless `accumulate`, an empty sum being zero).
fn product_shape(
    op: &'static str,
    a: &MatRef<'_>,
    [b_rows, n]: [usize; 2],
    c: &mut MatMut<'_>,
    accumulate: bool,
) -> Result<Option<(usize, usize, usize)>> {
    let (m, k) = (a.rows, a.cols);
    if b_rows != k || c.rows != m || c.cols != n {
        return Err(shape_mismatch(
            op,
            &[m, k],
            &[b_rows, n],
            format!(
                "a {m}x{k} times b {b_rows}x{n} into c {}x{} (need b with {k} rows and c {m}x{n})",
                c.rows, c.cols
            ),
        ));
    }
    if m == 0 || n == 0 {
        return Ok(None);
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c.data[r * c.row_stride..r * c.row_stride + n].fill(0.0);
            }
        }
        return Ok(None);
    }
    Ok(Some((m, k, n)))
}

/// Whether an `m x k` by `k x n` product asked to run `parallel` is worth splitting
/// over the current rayon pool.
fn splits_over_threads(parallel: bool, m: usize, n: usize, k: usize) -> bool {
    let flops = m.saturating_mul(n).saturating_mul(k);
    parallel && rayon::current_num_threads() > 1 && flops >= PARALLEL_MIN_FLOPS
}

/// [`gemm`] for [`Precision::F32`], [`gemm_bf16`] for [`Precision::Bf16`] (an error on a
/// CPU without AVX512-BF16).
pub fn gemm_in(
    precision: Precision,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: MatMut<'_>,
    accumulate: bool,
    parallel: bool,
) -> Result<()> {
    match precision {
        Precision::F32 => gemm(a, b, c, accumulate, parallel),
        Precision::Bf16 => gemm_bf16(a, b, c, accumulate, parallel),
    }
}

/// The right factor `b` of many products `a * b` in one precision, made ready once:
/// the view itself in f32, packed as bf16 pairs in bf16 (which [`gemm_bf16`] would redo
/// at every call), or packed earlier and kept (a prepared filter's). A convolution
/// multiplies block after block of its batch by one filter.
pub(crate) enum RightFactor<'a> {
    F32(MatRef<'a>),
    Bf16(bf16::PackedRight),
    Packed(&'a bf16::PackedRight),
}

impl<'a> RightFactor<'a> {
    /// `b` ready for products in `precision` (bf16 on a CPU without AVX512-BF16 is an
    /// error naming the CPU).
    pub(crate) fn new(precision: Precision, b: MatRef<'a>) -> Result<Self> {
        Ok(match precision {
            Precision::F32 => Self::F32(b),
            Precision::Bf16 => Self::Bf16(bf16::PackedRight::new(b)?),
        })
    }

    /// [`gemm_in`] of `a` by this factor, in its precision.
    pub(crate) fn multiply(
        &self,
        a: MatRef<'_>,
        c: MatMut<'_>,
        accumulate: bool,
        parallel: bool,
    ) -> Result<()> {
        let packed = match self {
            Self::F32(b) => return gemm(a, *b, c, accumulate, parallel),
            Self::Bf16(b) => b,
            Self::Packed(b) => *b,
        };
        bf16::gemm_bf16_packed(a, packed, c, accumulate, parallel)
    }
}

fn matrix_view(t: &Tensor, transpose: bool) -> Result<MatRef<'_>> {
    let v = MatRef::row_major(t.as_slice(), t.shape()[0], t.shape()[1])?;
    Ok(if transpose { v.t() } else { v })
}

/// Matrix product of two 2-D tensors, optionally transposing either operand first, in
/// the precision [`with_precision`](crate::with_precision) set: f32 outside any;
/// [`Precision::Bf16`] rounds both factors to bf16 and sums in f32 (an error naming the
/// CPU on one without AVX512-BF16).
///
/// Shapes: `a: (m, k)` (or `(k, m)` with `transpose_a`), `b: (k, n)` (or `(n, k)` with
/// `transpose_b`) give `(m, n)`. A shape mismatch is an error naming both shapes.
///
/// ```
/// use petal_tensor::{gemm::matmul, Tensor};
/// let a = Tensor::from_vec(&[1, 3], vec![1., 2., 3.]).unwrap();
/// let b = Tensor::from_vec(&[3, 1], vec![4., 5., 6.]).unwrap();
/// assert_eq!(matmul(&a, &b, false, false).unwrap().to_vec(), vec![32.0]);
/// assert!(matmul(&a, &a, false, false).is_err());
/// ```
pub fn matmul(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() != 2 || sb.len() != 2 {
        return Err(shape_mismatch(
            "matmul",
            sa,
            sb,
            "both operands must be 2-D",
        ));
    }
    let (av, bv) = (matrix_view(a, transpose_a)?, matrix_view(b, transpose_b)?);
    if av.cols != bv.rows {
        return Err(shape_mismatch(
            "matmul",
            sa,
            sb,
            format!(
                "inner dimensions {} and {} differ (transpose_a={transpose_a}, transpose_b={transpose_b})",
                av.cols, bv.rows
            ),
        ));
    }
    let mut out = Tensor::zeros(&[av.rows, bv.cols]);
    gemm_in(
        Precision::scoped(),
        av,
        bv,
        MatMut::row_major(out.as_mut_slice(), av.rows, bv.cols)?,
        false,
        true,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_longer_than_its_data_is_an_error_naming_what_it_needs() {
        let data = [0.0; 5];
        let err = MatRef::new(&data, 2, 3, 3, 1).unwrap_err().to_string();
        assert!(
            err.contains("2x3") && err.contains("needs 6 values, has 5"),
            "{err}"
        );
        let mut out = [0.0; 5];
        let err = MatMut::row_major(&mut out, 3, 2).unwrap_err().to_string();
        assert!(
            err.contains("3x2") && err.contains("needs 6 values, has 5"),
            "{err}"
        );
    }

    #[test]
    fn strides_that_overflow_are_an_error_not_a_wrap() {
        let err = MatRef::new(&[0.0; 4], 3, 3, usize::MAX, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("overflows"), "{err}");
    }

    #[test]
    fn shapes_that_do_not_chain_are_an_error_naming_the_function_and_all_three() {
        let (a, b) = ([1.0; 6], [1.0; 6]);
        let mut precisions = vec![(Precision::F32, "gemm")];
        if Precision::bf16_available() {
            precisions.push((Precision::Bf16, "gemm_bf16"));
        }
        for (precision, name) in precisions {
            let mut c = [0.0; 4];
            let err = gemm_in(
                precision,
                MatRef::row_major(&a, 2, 3).unwrap(),
                MatRef::row_major(&b, 2, 3).unwrap(),
                MatMut::row_major(&mut c, 2, 2).unwrap(),
                false,
                false,
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.starts_with(name) && err.contains("a 2x3 times b 2x3 into c 2x2"),
                "{err}"
            );
            assert_eq!(c, [0.0; 4], "a refused product writes nothing");
        }
    }

    #[test]
    fn a_strided_transposed_product_is_right() {
        // a = [[1, 2], [3, 4]] read as its transpose, b = column 0 of a 2x2 block.
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [1.0, 9.0, 1.0, 9.0];
        let mut c = [0.0; 2];
        gemm(
            MatRef::row_major(&a, 2, 2).unwrap().t(),
            MatRef::new(&b, 2, 1, 2, 1).unwrap(),
            MatMut::row_major(&mut c, 2, 1).unwrap(),
            false,
            false,
        )
        .unwrap();
        assert_eq!(c, [4.0, 6.0]);
    }
}
