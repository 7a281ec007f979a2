//! `gemm_bf16` against `gemm`: exactly on bf16-rounded inputs up to the order of the f32
//! sums, and on the raw inputs within bf16's rounding.

use proptest::prelude::*;

use super::pack::pack_pairs;
use super::*;
use crate::gemm::gemm;

/// Whether this CPU runs bf16; when it does not, prints that `test` skipped (the
/// kernels cannot run there, and asking for them is an error tested elsewhere).
fn bf16_here(test: &str) -> bool {
    match Precision::Bf16.supported() {
        Ok(_) => true,
        Err(e) => {
            println!("skipped {test}: {e}");
            false
        }
    }
}

/// Deterministic values in about [-1, 1), with every bf16-dropped bit in play.
fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| {
            let h = (i ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(2_654_435_761);
            (h >> 8) as f32 / (1 << 23) as f32 - 1.0
        })
        .collect()
}

/// How one product lays out its operands in memory.
#[derive(Clone, Copy, Debug)]
struct Layout {
    a_transposed: bool,
    b_transposed: bool,
    /// Extra values at the end of every stored row (of a, b and c).
    pad: usize,
    accumulate: bool,
}

const ROW_MAJOR: Layout = Layout {
    a_transposed: false,
    b_transposed: false,
    pad: 0,
    accumulate: false,
};

/// Storage for a `rows x cols` operand laid out as asked, and its view.
struct Operand {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    transposed: bool,
    stride: usize,
}

impl Operand {
    fn new(rows: usize, cols: usize, transposed: bool, pad: usize, seed: u32) -> Self {
        let (stored_rows, stored_cols) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let stride = stored_cols + pad;
        Self {
            data: values(stored_rows * stride, seed),
            rows,
            cols,
            transposed,
            stride,
        }
    }

    fn view(&self) -> MatRef<'_> {
        if self.transposed {
            MatRef::new(&self.data, self.cols, self.rows, self.stride, 1)
                .unwrap()
                .t()
        } else {
            MatRef::new(&self.data, self.rows, self.cols, self.stride, 1).unwrap()
        }
    }

    fn at(&self, r: usize, c: usize) -> f32 {
        if self.transposed {
            self.data[c * self.stride + r]
        } else {
            self.data[r * self.stride + c]
        }
    }

    fn rounded(&self) -> Self {
        Self {
            data: self.data.iter().map(|&x| round_bf16(x)).collect(),
            ..*self
        }
    }
}

/// One product computed three ways: bf16, f32 on the bf16-rounded inputs, and f32.
struct Run {
    bf16: Vec<f32>,
    f32_of_rounded: Vec<f32>,
    f32: Vec<f32>,
    /// Σ_k |a||b| per element of c (the scale of its rounding errors).
    magnitude: Vec<f32>,
    c_stride: usize,
}

fn run(m: usize, k: usize, n: usize, layout: Layout, parallel: bool) -> Run {
    let a = Operand::new(m, k, layout.a_transposed, layout.pad, 1);
    let b = Operand::new(k, n, layout.b_transposed, layout.pad, 2);
    let c_stride = n + layout.pad;
    let start = values(m * c_stride, 3);
    let product = |a: &Operand, b: &Operand, bf16: bool| {
        let mut c = start.clone();
        let out = MatMut::new(&mut c, m, n, c_stride).unwrap();
        if bf16 {
            gemm_bf16(a.view(), b.view(), out, layout.accumulate, parallel).unwrap();
        } else {
            gemm(a.view(), b.view(), out, layout.accumulate, false).unwrap();
        }
        c
    };
    let magnitude = (0..m * c_stride)
        .map(|e| {
            let (r, col) = (e / c_stride, e % c_stride);
            let sum: f32 = (0..k)
                .map(|i| (a.at(r, i) * b.at(i, col.min(n - 1))).abs())
                .sum();
            sum + if layout.accumulate {
                start[e].abs()
            } else {
                0.0
            }
        })
        .collect();
    Run {
        bf16: product(&a, &b, true),
        f32_of_rounded: product(&a.rounded(), &b.rounded(), false),
        f32: product(&a, &b, false),
        magnitude,
        c_stride,
    }
}

/// Checks one run: padding untouched, f32 sums of the rounded inputs up to summation
/// order, and the raw f32 product within bf16's rounding.
fn check(m: usize, k: usize, n: usize, layout: Layout, parallel: bool) {
    let r = run(m, k, n, layout, parallel);
    let sum_order = (k + 2) as f32 * f32::EPSILON; // both sides round each of k + 1 adds
                                                   // Each factor is within 2^-8 relative (half of bf16's 2^-7 spacing in [1, 2)).
    let rounding = 2.0 * 2.0f32.powi(-8) + 2.0f32.powi(-16);
    for e in 0..r.bf16.len() {
        let (got, mag) = (r.bf16[e], r.magnitude[e]);
        let context = format!(
            "{m}x{k}x{n} {layout:?} element ({}, {})",
            e / r.c_stride,
            e % r.c_stride
        );
        if e % r.c_stride >= n {
            assert_eq!(got, r.f32[e], "padding changed: {context}");
            continue;
        }
        let exact = (got - r.f32_of_rounded[e]).abs();
        assert!(
            exact <= sum_order * mag,
            "{got} vs {} on rounded inputs: {context}",
            r.f32_of_rounded[e]
        );
        let raw = (got - r.f32[e]).abs();
        assert!(
            raw <= (rounding + sum_order) * mag,
            "{got} vs {} in f32: {context}",
            r.f32[e]
        );
    }
}

#[test]
fn every_edge_of_m_n_and_k_matches_f32() {
    if !bf16_here("every_edge_of_m_n_and_k_matches_f32") {
        return;
    }
    const SIDES: [usize; 7] = [1, 2, 15, 16, 17, 33, 100];
    for m in SIDES {
        for k in SIDES {
            for n in SIDES {
                check(m, k, n, ROW_MAJOR, false);
            }
        }
    }
}

#[test]
fn transposed_strided_and_accumulating_views_match_f32() {
    if !bf16_here("transposed_strided_and_accumulating_views_match_f32") {
        return;
    }
    for (i, (m, k, n)) in [
        (1, 1, 1),
        (17, 33, 15),
        (100, 17, 33),
        (33, 100, 100),
        (6, 255, 65),
    ]
    .into_iter()
    .enumerate()
    {
        for variant in 0..16 {
            let layout = Layout {
                a_transposed: variant & 1 != 0,
                b_transposed: variant & 2 != 0,
                pad: if variant & 4 != 0 { 3 + i } else { 0 },
                accumulate: variant & 8 != 0,
            };
            check(m, k, n, layout, false);
        }
    }
}

#[test]
fn products_spanning_several_blocks_match_f32_and_do_not_depend_on_threads() {
    if !bf16_here("products_spanning_several_blocks_match_f32_and_do_not_depend_on_threads") {
        return;
    }
    // Past MC rows, NC columns and two KC blocks of k, odd everywhere.
    let (m, k, n) = (301, 611, 517);
    let layout = Layout {
        accumulate: true,
        ..ROW_MAJOR
    };
    check(m, k, n, layout, false);
    let on = |threads: usize| {
        let pool = crate::parallel::pool_of(threads);
        pool.install(|| run(m, k, n, layout, true).bf16)
    };
    let one = on(1);
    assert!(
        on(2) == one && on(3) == one,
        "the thread count changed the result"
    );
}

#[test]
fn an_empty_inner_dimension_zeroes_or_keeps_c() {
    if !bf16_here("an_empty_inner_dimension_zeroes_or_keeps_c") {
        return;
    }
    let mut c = [5.0; 4];
    let (a, b) = ([0.0f32; 0], [0.0f32; 0]);
    let views = || {
        (
            MatRef::row_major(&a, 2, 0).unwrap(),
            MatRef::row_major(&b, 0, 2).unwrap(),
        )
    };
    let (av, bv) = views();
    gemm_bf16(
        av,
        bv,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        true,
        false,
    )
    .unwrap();
    assert_eq!(c, [5.0; 4]);
    let (av, bv) = views();
    gemm_bf16(
        av,
        bv,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        false,
        false,
    )
    .unwrap();
    assert_eq!(c, [0.0; 4]);
}

#[test]
fn rounding_is_to_nearest_with_ties_to_even() {
    let bits = |x: f32| round_bf16(x).to_bits();
    let ulp = 2.0f32.powi(-7); // bf16's spacing in [1, 2)
    assert_eq!(
        round_bf16(1.0 + ulp / 2.0),
        1.0,
        "tie, down to the even 1.0"
    );
    assert_eq!(
        round_bf16(1.0 + 3.0 * ulp / 2.0),
        1.0 + 2.0 * ulp,
        "tie, up to even"
    );
    assert_eq!(
        round_bf16(1.0 + ulp / 2.0 + f32::EPSILON),
        1.0 + ulp,
        "past the tie, up"
    );
    assert_eq!(
        round_bf16(-(1.0 + ulp / 2.0 - f32::EPSILON)),
        -1.0,
        "below the tie, down"
    );
    assert_eq!(round_bf16(0.1), 0.100_097_656);
    // bf16's largest value, 0x7f7f, stays; halfway past it (a tie to an odd value) and
    // f32::MAX round to infinity.
    assert_eq!(bits(f32::from_bits(0x7f7f_0000)), 0x7f7f_0000);
    assert_eq!(bits(f32::from_bits(0x7f7f_7fff)), 0x7f7f_0000);
    assert_eq!(round_bf16(f32::from_bits(0x7f7f_8000)), f32::INFINITY);
    assert_eq!(round_bf16(-f32::MAX), f32::NEG_INFINITY);
    assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
    // A NaN whose payload lies only in the dropped bits stays NaN.
    for nan in [
        f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xff80_4000),
    ] {
        assert!(round_bf16(nan).is_nan(), "{:#x}", nan.to_bits());
    }
    assert_eq!(
        bits(f32::from_bits(0x0000_ffff)),
        0,
        "a subnormal flushes to +0"
    );
    assert_eq!(bits(-f32::from_bits(0x007f_ffff)), 0x8000_0000, "and to -0");
    assert_eq!(bits(f32::MIN_POSITIVE), f32::MIN_POSITIVE.to_bits());
}

#[test]
fn the_vector_packing_rounds_as_the_scalar_one_does() {
    if !bf16_here("the_vector_packing_rounds_as_the_scalar_one_does") {
        return;
    }
    // 97 columns: whole and partial vectors, an odd k. Bit patterns over the whole range.
    let (rows, cols) = (5, 97);
    let data: Vec<f32> = (0..(rows * cols) as u32)
        .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761) ^ (i << 7)))
        .collect();
    let view = MatRef::row_major(&data, rows, cols).unwrap();
    let pairs = cols.div_ceil(2);
    let expected: Vec<u32> = (0..rows * pairs)
        .map(|e| {
            let (r, p) = (e / pairs, e % pairs);
            let odd = if 2 * p + 1 < cols {
                data[r * cols + 2 * p + 1]
            } else {
                0.0
            };
            u32::from(bf16_bits(data[r * cols + 2 * p])) | (u32::from(bf16_bits(odd)) << 16)
        })
        .collect();
    let pack = |view: MatRef<'_>, rs: usize, ps: usize| {
        let mut out = vec![u32::MAX; rows * pairs];
        // SAFETY: this test module only builds on x86-64; the features are checked here.
        Precision::Bf16.supported().unwrap();
        unsafe { pack_pairs(view, &mut out, rs, ps) };
        out
    };
    assert_eq!(
        pack(view, pairs, 1),
        expected,
        "rows along k (32 per instruction)"
    );
    let columns: Vec<f32> = (0..rows * cols)
        .map(|e| data[(e % rows) * cols + e / rows])
        .collect();
    let transposed = MatRef::row_major(&columns, cols, rows).unwrap().t();
    let pair_major = pack(transposed, 1, rows);
    let as_rows: Vec<u32> = (0..rows * pairs)
        .map(|e| pair_major[(e % pairs) * rows + e / pairs])
        .collect();
    assert_eq!(as_rows, expected, "columns along k (16 per instruction)");
    assert_eq!(pack(view, 1, rows), pair_major, "value by value");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_shapes_and_layouts_match_f32(
        m in 1usize..90,
        k in 1usize..300,
        n in 1usize..150,
        variant in 0usize..16,
    ) {
        let layout = Layout {
            a_transposed: variant & 1 != 0,
            b_transposed: variant & 2 != 0,
            pad: if variant & 4 != 0 { 5 } else { 0 },
            accumulate: variant & 8 != 0,
        };
        if bf16_here("random_shapes_and_layouts_match_f32") {
            check(m, k, n, layout, variant % 3 == 0);
        }
    }
}

/// `gemm_pairs` (A rounded into pairs first, B packed once) against `gemm_bf16` on the
/// same values: the same kernel and order of sums, so the same bits, with A's rows
/// further apart than their pairs and ending at the last row's last pair (the last
/// tile of fewer than six rows is copied out), and `c`'s row padding untouched.
#[test]
fn products_of_pairs_match_gemm_bf16_bit_for_bit() {
    if !bf16_here("products_of_pairs_match_gemm_bf16_bit_for_bit") {
        return;
    }
    for m in [1, 5, 6, 7, 13] {
        for k in [1usize, 2, 31, 32, 64] {
            for n in [1, 16, 17, 64, 65, 130] {
                let (pairs, a_stride) = (k.div_ceil(2), k + 3);
                let a = values(m * a_stride, 7);
                let b = values(k * n, 8);
                let a_view = MatRef::new(&a, m, k, a_stride, 1).unwrap();
                let b_view = MatRef::row_major(&b, k, n).unwrap();
                let c_stride = n + 2;
                let mut want = vec![-1.0; m * c_stride];
                let out = MatMut::new(&mut want, m, n, c_stride).unwrap();
                gemm_bf16(a_view, b_view, out, false, false).unwrap();
                // The pairs of each row `pairs + 2` apart, the last row ending the slice.
                let pair_stride = pairs + 2;
                let mut a_pairs = vec![0; (m - 1) * pair_stride + pairs];
                for r in 0..m {
                    let row = MatRef::new(&a[r * a_stride..], 1, k, a_stride, 1).unwrap();
                    round_to_pairs(row, &mut a_pairs[r * pair_stride..]).unwrap();
                }
                let packed = PackedRight::new(b_view).unwrap();
                let mut got = vec![-1.0; m * c_stride];
                let out = MatMut::new(&mut got, m, n, c_stride).unwrap();
                gemm_pairs(&a_pairs, pair_stride, &packed, out).unwrap();
                assert_eq!(got, want, "{m}x{k}x{n}");
            }
        }
    }
}

#[test]
fn products_of_pairs_refuse_operands_that_do_not_fit() {
    if !bf16_here("products_of_pairs_refuse_operands_that_do_not_fit") {
        return;
    }
    let b = values(8 * 16, 1);
    let packed = PackedRight::new(MatRef::row_major(&b, 8, 16).unwrap()).unwrap();
    let mut c = vec![0.0; 3 * 16];
    // Three rows of four pairs, five apart, need 14 pairs.
    let short = vec![0; 13];
    let out = MatMut::row_major(&mut c, 3, 16).unwrap();
    let err = gemm_pairs(&short, 5, &packed, out).unwrap_err();
    assert!(err.to_string().contains("gemm_pairs"), "{err}");
    let mut narrow = vec![0.0; 3 * 15];
    let out = MatMut::row_major(&mut narrow, 3, 15).unwrap();
    assert!(gemm_pairs(&[0; 14], 5, &packed, out).is_err());
    let few = &mut [0u32; 5];
    let source = MatRef::row_major(&b, 2, 8).unwrap();
    assert!(round_to_pairs(source, few).is_err());
}

/// `gemm_bf16_packed` against `gemm_bf16` on the same views: the same driver after the
/// packing, so the same bits, on one thread or several, accumulating or not, with `b`
/// transposed and `c`'s rows padded; a `b` of the wrong height is a shape error, one of
/// no rows an empty sum.
#[test]
fn products_by_a_packed_right_factor_match_gemm_bf16_bit_for_bit() {
    if !bf16_here("products_by_a_packed_right_factor_match_gemm_bf16_bit_for_bit") {
        return;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (m, k, n) in [(1, 1, 1), (7, 33, 17), (150, 600, 130), (300, 31, 64)] {
        for (accumulate, parallel) in [(false, false), (true, true)] {
            let a = Operand::new(m, k, false, 0, 4);
            let b = Operand::new(k, n, true, 3, 5);
            let c_stride = n + 1;
            let start = values(m * c_stride, 6);
            let (mut want, mut got) = (start.clone(), start);
            pool.install(|| {
                let out = MatMut::new(&mut want, m, n, c_stride).unwrap();
                gemm_bf16(a.view(), b.view(), out, accumulate, parallel).unwrap();
                let packed = PackedRight::new(b.view()).unwrap();
                let out = MatMut::new(&mut got, m, n, c_stride).unwrap();
                gemm_bf16_packed(a.view(), &packed, out, accumulate, parallel).unwrap();
            });
            assert_eq!(got, want, "{m}x{k}x{n} accumulate {accumulate}");
        }
    }
    let b = values(8 * 16, 1);
    let packed = PackedRight::new(MatRef::row_major(&b, 8, 16).unwrap()).unwrap();
    let a = values(3 * 7, 2);
    let mut c = vec![0.0; 3 * 16];
    let out = MatMut::row_major(&mut c, 3, 16).unwrap();
    let err = gemm_bf16_packed(
        MatRef::row_major(&a, 3, 7).unwrap(),
        &packed,
        out,
        false,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("b 8x16"), "{err}");
    // An empty sum (k = 0) zeroes c, as gemm_bf16 does.
    let empty = PackedRight::new(MatRef::row_major(&[], 0, 16).unwrap()).unwrap();
    c.fill(1.0);
    let out = MatMut::row_major(&mut c, 3, 16).unwrap();
    gemm_bf16_packed(
        MatRef::row_major(&[], 3, 0).unwrap(),
        &empty,
        out,
        false,
        false,
    )
    .unwrap();
    assert!(c.iter().all(|&v| v == 0.0));
}
