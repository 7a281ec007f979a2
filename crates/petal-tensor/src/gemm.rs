//! General matrix multiply on strided f32 matrix views.
//!
//! The micro-kernels come from the `gemm` crate, which picks AVX-512, AVX2+FMA or a
//! portable kernel at run time. It was measured faster than `matrixmultiply` on the
//! reference machine (see `benches/gemm.rs` and the README's speed section).

use gemm::Parallelism;

use crate::error::{shape_mismatch, Result};
use crate::Tensor;

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
    /// A strided view. Panics if an element would fall outside `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        assert_fits(data.len(), rows, cols, row_stride, col_stride);
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A dense row-major `rows x cols` view.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
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
    /// A view with rows `row_stride` apart. Panics if an element would fall outside `data`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert_fits(data.len(), rows, cols, row_stride, 1);
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }

    /// A dense row-major `rows x cols` view.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }
}

fn assert_fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) {
    if rows > 0 && cols > 0 {
        let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
        assert!(
            last < len,
            "matrix view {rows}x{cols} (strides {row_stride}, {col_stride}) needs {} values, has {len}",
            last + 1
        );
    }
}

/// `c = a * b` (or `c += a * b` when `accumulate`), for `a: m x k`, `b: k x n`, `c: m x n`.
///
/// With `parallel`, large products split over the current rayon pool; kernels that
/// already run one task per image pass `false`.
///
/// ```
/// use petal_tensor::gemm::{gemm, MatMut, MatRef};
/// let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
/// let b = [5.0, 6.0, 7.0, 8.0];
/// let mut c = [0.0; 4];
/// gemm(MatRef::row_major(&a, 2, 2), MatRef::row_major(&b, 2, 2), MatMut::row_major(&mut c, 2, 2), false, false);
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// ```
pub fn gemm(a: MatRef<'_>, b: MatRef<'_>, c: MatMut<'_>, accumulate: bool, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.rows == m && c.cols == n,
        "gemm: {m}x{k} times {}x{n} into {}x{}",
        b.rows,
        c.rows,
        c.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c.data[r * c.row_stride..r * c.row_stride + n].fill(0.0);
            }
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 && m * n * k >= PARALLEL_MIN_FLOPS {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: `assert_fits` proved every strided element of the three views lies inside
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
}

fn matrix_view(t: &Tensor, transpose: bool) -> MatRef<'_> {
    let v = MatRef::row_major(t.as_slice(), t.shape()[0], t.shape()[1]);
    if transpose {
        v.t()
    } else {
        v
    }
}

/// Matrix product of two 2-D tensors, optionally transposing either operand first.
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
    let (av, bv) = (matrix_view(a, transpose_a), matrix_view(b, transpose_b));
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
    gemm(
        av,
        bv,
        MatMut::row_major(out.as_mut_slice(), av.rows, bv.cols),
        false,
        true,
    );
    Ok(out)
}
