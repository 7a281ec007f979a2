//! Image augmentation: geometry on known patterns, fill modes, probabilities,
//! determinism, the loader hook, photometric changes and batch mixing.

use std::sync::Arc;

use petal_data::augment::{
    batch_rng, flip_horizontally, sample_rng, warp, Affine, AffineConfig, Augmentation, BatchMix,
    CutMix, Cutout, FillMode, GaussianBlur, GaussianNoise, MixUp, Pipeline, RandomAffine,
    RandomApply, RandomBrightness, RandomContrast, RandomResizedCrop,
};
use petal_data::{BatchLoader, InMemoryDataset};
use petal_tensor::Tensor;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `augmentation` applied to a copy of `image` with generator `seed`.
fn applied(augmentation: &dyn Augmentation, image: &[f32], shape: &[usize], seed: u64) -> Vec<f32> {
    let mut out = image.to_vec();
    augmentation.apply(&mut out, shape, &mut rng(seed)).unwrap();
    out
}

/// An affine augmentation with the given config (which must be valid).
fn affine(config: AffineConfig) -> RandomAffine {
    RandomAffine::new(config).unwrap()
}

/// A `height x width x channels` image whose values are all distinct, in (0, 1).
fn ramp(height: usize, width: usize, channels: usize) -> Vec<f32> {
    let n = height * width * channels;
    (0..n).map(|i| (i + 1) as f32 / (n + 1) as f32).collect()
}

/// A one-channel black image with one white pixel at (row, col).
fn dot(height: usize, width: usize, row: usize, col: usize) -> Vec<f32> {
    let mut image = vec![0.0; height * width];
    image[row * width + col] = 1.0;
    image
}

fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "value {i}: {a} vs {e}\n{actual:?}\n{expected:?}"
        );
    }
}

#[test]
fn horizontal_flip_mirrors_columns_or_keeps_the_image() {
    let (h, w, c) = (4, 5, 2);
    let image = ramp(h, w, c);
    let mut mirrored = vec![0.0; image.len()];
    for r in 0..h {
        for col in 0..w {
            for ch in 0..c {
                mirrored[(r * w + (w - 1 - col)) * c + ch] = image[(r * w + col) * c + ch];
            }
        }
    }
    let flip = RandomAffine::flip(true, false);
    let mut flips = 0;
    for seed in 0..40 {
        let out = applied(&flip, &image, &[h, w, c], seed);
        if out == mirrored {
            flips += 1;
        } else {
            assert_eq!(out, image, "seed {seed}: neither flipped nor unchanged");
        }
    }
    assert!(
        (10..=30).contains(&flips),
        "{flips} flips in 40 draws of p = 0.5"
    );

    // The bright pixel at (r, c) lands at (r, w - 1 - c), exactly.
    let seed = (0..40)
        .find(|&s| applied(&flip, &image, &[h, w, c], s) == mirrored)
        .unwrap();
    let out = applied(&flip, &dot(h, w, 1, 1), &[h, w, 1], seed);
    assert_eq!(out, dot(h, w, 1, w - 2));
}

#[test]
fn vertical_flip_mirrors_rows() {
    let flip = RandomAffine::flip(false, true);
    let image = dot(5, 3, 1, 2);
    let outcomes: Vec<_> = (0..20)
        .map(|s| applied(&flip, &image, &[5, 3, 1], s))
        .collect();
    assert!(outcomes
        .iter()
        .all(|o| *o == image || *o == dot(5, 3, 3, 2)));
    assert!(outcomes.contains(&dot(5, 3, 3, 2)) && outcomes.contains(&image));
}

#[test]
fn quarter_turn_rotates_counter_clockwise() {
    let n = 5;
    let image = ramp(n, n, 3);
    let turn = affine(AffineConfig {
        rotation: (0.25, 0.25),
        ..AffineConfig::default()
    });
    // Counter-clockwise by 90 degrees: out[r][c] = in[c][n - 1 - r].
    let mut expected = vec![0.0; image.len()];
    for r in 0..n {
        for c in 0..n {
            for ch in 0..3 {
                expected[(r * n + c) * 3 + ch] = image[(c * n + (n - 1 - r)) * 3 + ch];
            }
        }
    }
    assert_close(&applied(&turn, &image, &[n, n, 3], 0), &expected, 1e-5);
    // The top-right corner goes to the top-left, the way Keras turns for a positive factor.
    assert_close(
        &applied(&turn, &dot(n, n, 0, n - 1), &[n, n, 1], 0),
        &dot(n, n, 0, 0),
        1e-5,
    );

    // Four quarter turns (or one full turn) are the identity.
    let mut four = image.clone();
    for _ in 0..4 {
        turn.apply(&mut four, &[n, n, 3], &mut rng(0)).unwrap();
    }
    assert_close(&four, &image, 1e-5);
    let full = affine(AffineConfig {
        rotation: (1.0, 1.0),
        ..AffineConfig::default()
    });
    assert_close(&applied(&full, &image, &[n, n, 3], 0), &image, 1e-5);
}

#[test]
fn zoom_moves_pixels_where_the_matrix_says() {
    // Zoom factor +1: everything shrinks by 2 about the centre (2, 2).
    let zoom_out = affine(AffineConfig {
        zoom_height: (1.0, 1.0),
        fill: FillMode::Constant(0.0),
        ..AffineConfig::default()
    });
    let matrix = zoom_out.draw(5, 5, &mut rng(0));
    assert_eq!(matrix, Affine([[2.0, 0.0, -2.0], [0.0, 2.0, -2.0]]));
    assert_eq!(matrix.map(1.0, 1.0), (0.0, 0.0));
    let out = applied(&zoom_out, &dot(5, 5, 0, 0), &[5, 5, 1], 0);
    assert_eq!(out, dot(5, 5, 1, 1));
    let out = applied(&zoom_out, &dot(5, 5, 4, 2), &[5, 5, 1], 0);
    assert_eq!(out, dot(5, 5, 3, 2));

    // Separate width zoom: only columns shrink.
    let wide = affine(AffineConfig {
        zoom_width: Some((1.0, 1.0)),
        fill: FillMode::Constant(0.0),
        ..AffineConfig::default()
    });
    assert_eq!(
        applied(&wide, &dot(5, 5, 0, 4), &[5, 5, 1], 0),
        dot(5, 5, 0, 3)
    );

    // Zooming in by 2 (factor -0.5) spreads the centre pixel bilinearly.
    let zoom_in = affine(AffineConfig {
        zoom_height: (-0.5, -0.5),
        ..AffineConfig::default()
    });
    let out = applied(&zoom_in, &dot(5, 5, 2, 2), &[5, 5, 1], 0);
    assert_eq!(out[2 * 5 + 2], 1.0);
    assert_eq!(out[2 * 5 + 3], 0.5);
    assert_eq!(out[3 * 5 + 3], 0.25);
    assert_eq!(out[0], 0.0);
}

#[test]
fn translation_moves_pixels_where_the_matrix_says() {
    let shift = affine(AffineConfig {
        translate_height: (0.25, 0.25),  // 1 of 4 rows down
        translate_width: (-0.25, -0.25), // 2 of 8 columns left
        fill: FillMode::Constant(0.0),
        ..AffineConfig::default()
    });
    let matrix = shift.draw(4, 8, &mut rng(0));
    assert_eq!(matrix, Affine([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]));
    assert_eq!(
        applied(&shift, &dot(4, 8, 1, 5), &[4, 8, 1], 0),
        dot(4, 8, 2, 3)
    );
    // Shifted out of the image, the pixel is gone.
    assert_eq!(
        applied(&shift, &dot(4, 8, 3, 5), &[4, 8, 1], 0),
        vec![0.0; 32]
    );

    let random = RandomAffine::translation(0.2, 0.2).unwrap();
    for seed in 0..10 {
        let m = random.draw(10, 10, &mut rng(seed)).0;
        assert_eq!((m[0][0], m[0][1], m[1][0], m[1][1]), (1.0, 0.0, 0.0, 1.0));
        assert!(m[0][2].abs() <= 2.0 && m[1][2].abs() <= 2.0);
    }
}

#[test]
fn shear_slants_columns_by_the_tangent() {
    // tan(45 degrees) = 1: the row dy below the centre reads dy columns to the right.
    let shear = affine(AffineConfig {
        shear: (0.125, 0.125),
        fill: FillMode::Constant(0.0),
        ..AffineConfig::default()
    });
    let m = shear.draw(5, 5, &mut rng(0)).0;
    assert_close(
        &[m[0][0], m[0][1], m[1][0], m[1][1]],
        &[1.0, 1.0, 0.0, 1.0],
        1e-6,
    );
    let out = applied(&shear, &dot(5, 5, 4, 4), &[5, 5, 1], 0);
    assert_close(&out, &dot(5, 5, 4, 2), 1e-6);
    assert!(RandomAffine::shear(0.25).is_err());
}

#[test]
fn each_fill_mode_gives_the_keras_border() {
    // One row "a b c d" = 1 2 3 4 shifted right by 2: the two left values come from outside.
    let image = [1.0, 2.0, 3.0, 4.0];
    let shifted = |fill| {
        let shift = affine(AffineConfig {
            translate_width: (0.5, 0.5),
            fill,
            ..AffineConfig::default()
        });
        applied(&shift, &image, &[1, 4, 1], 0)
    };
    assert_eq!(shifted(FillMode::Reflect), [2.0, 1.0, 1.0, 2.0]); // ... b a | a b ...
    assert_eq!(shifted(FillMode::Wrap), [3.0, 4.0, 1.0, 2.0]); // ... c d | a b ...
    assert_eq!(shifted(FillMode::Nearest), [1.0, 1.0, 1.0, 2.0]); // ... a a | a b ...
    assert_eq!(shifted(FillMode::Constant(-7.0)), [-7.0, -7.0, 1.0, 2.0]);

    // Far outside, reflect and wrap keep their periods: shift by 6 = one and a half widths.
    let far = |fill| {
        let mut out = image.to_vec();
        warp(
            &mut out,
            &[1, 4, 1],
            &Affine([[1.0, 0.0, -6.0], [0.0, 1.0, 0.0]]),
            fill,
        )
        .unwrap();
        out
    };
    assert_eq!(far(FillMode::Reflect), [3.0, 4.0, 4.0, 3.0]); // positions -6..-3
    assert_eq!(far(FillMode::Wrap), [3.0, 4.0, 1.0, 2.0]);
    assert!(RandomAffine::flip(true, false)
        .with_fill(FillMode::Constant(f32::NAN))
        .is_err());
}

#[test]
fn identity_settings_and_probability_zero_leave_the_image_bit_equal() {
    let shape = [6, 7, 3];
    let image = ramp(6, 7, 3);
    let identity = affine(AffineConfig::default());
    assert_eq!(applied(&identity, &image, &shape, 1), image);

    let everything: Vec<Box<dyn Augmentation>> = vec![
        Box::new(RandomAffine::rotation(0.1).unwrap()),
        Box::new(RandomAffine::zoom(0.2, Some(0.3)).unwrap()),
        Box::new(RandomAffine::shear(0.05).unwrap()),
        Box::new(RandomResizedCrop::new((0.3, 1.0), (0.75, 1.33)).unwrap()),
        Box::new(RandomBrightness::new(0.3).unwrap()),
        Box::new(RandomContrast::new(0.5).unwrap()),
        Box::new(GaussianNoise::new(0.1).unwrap()),
        Box::new(GaussianBlur::new((0.5, 2.0), 5).unwrap()),
        Box::new(Cutout::new(3).unwrap()),
    ];
    let never = RandomApply::new(Pipeline(everything), 0.0).unwrap();
    for seed in 0..5 {
        assert_eq!(applied(&never, &image, &shape, seed), image);
    }
    let always = RandomApply::new(GaussianNoise::new(0.1).unwrap(), 1.0).unwrap();
    assert_ne!(applied(&always, &image, &shape, 0), image);
    assert_eq!(always.probability(), 1.0);

    let half = GaussianNoise::new(0.1)
        .unwrap()
        .with_probability(0.5)
        .unwrap();
    let changed = (0..100)
        .filter(|&s| applied(&half, &image, &shape, s) != image)
        .count();
    assert!(
        (30..=70).contains(&changed),
        "{changed} of 100 with p = 0.5"
    );
    assert!(RandomApply::new(Cutout::new(1).unwrap(), 1.5).is_err());
    assert!(Cutout::new(1).unwrap().with_probability(-0.1).is_err());
}

#[test]
fn resized_crop_of_the_whole_image_is_the_identity() {
    let shape = [4, 6, 2];
    let image = ramp(4, 6, 2);
    let whole = RandomResizedCrop::new((1.0, 1.0), (1.5, 1.5)).unwrap();
    assert_eq!(whole.draw(4, 6, &mut rng(0)), (0, 0, 4, 6));
    assert_eq!(applied(&whole, &image, &shape, 0), image);

    // A 2 x 2 crop (half of a 2 x 4 image, ratio 1) stretched back to the full width.
    let half = RandomResizedCrop::new((0.5, 0.5), (1.0, 1.0)).unwrap();
    let row = [0.0, 4.0, 8.0, 12.0]; // value = 4 * column, a ramp bilinear sampling keeps
    let image: Vec<f32> = row.iter().chain(&row).copied().collect();
    let mut lefts = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let (top, left, h, w) = half.draw(2, 4, &mut rng(seed));
        assert_eq!((top, h, w), (0, 2, 2));
        lefts.insert(left);
        let out = applied(&half, &image, &[2, 4, 1], seed);
        // Output centre x reads image column left + (x + 0.5) / 2 - 0.5 (half-pixel
        // resize); only the image border replicates its edge.
        let expected: Vec<f32> = (0..4)
            .map(|x| 4.0 * (left as f32 + (x as f32 + 0.5) / 2.0 - 0.5).clamp(0.0, 3.0))
            .collect();
        assert_close(&out[..4], &expected, 1e-6);
        assert_close(&out[4..], &expected, 1e-6);
    }
    assert_eq!(lefts.len(), 3, "every left offset 0, 1, 2 occurs");
    assert!(RandomResizedCrop::new((0.0, 1.0), (0.75, 1.33)).is_err());
    assert!(RandomResizedCrop::new((0.5, 1.1), (0.75, 1.33)).is_err());
    assert!(RandomResizedCrop::new((0.5, 1.0), (1.33, 0.75)).is_err());
}

#[test]
fn same_seed_same_output_different_seed_different_output() {
    let shape = [8, 8, 3];
    let image = ramp(8, 8, 3);
    let pipeline = Pipeline(vec![
        Box::new(
            RandomAffine::new(AffineConfig {
                horizontal_flip: true,
                rotation: (-0.1, 0.1),
                zoom_height: (-0.2, 0.2),
                translate_width: (-0.1, 0.1),
                ..AffineConfig::default()
            })
            .unwrap(),
        ),
        Box::new(GaussianNoise::new(0.05).unwrap()),
    ]);
    let a = applied(&pipeline, &image, &shape, 11);
    assert_eq!(a, applied(&pipeline, &image, &shape, 11));
    assert_ne!(a, applied(&pipeline, &image, &shape, 12));
    assert_ne!(a, image);
}

#[test]
fn sample_generators_depend_on_seed_epoch_and_index() {
    use rand::Rng;
    let first = |seed, epoch, index| sample_rng(seed, epoch, index).random::<u64>();
    assert_eq!(first(1, 2, 3), first(1, 2, 3));
    let others = [
        first(2, 2, 3),
        first(1, 3, 3),
        first(1, 2, 4),
        first(3, 2, 1),
    ];
    assert!(others.iter().all(|&o| o != first(1, 2, 3)));
}

#[test]
fn batch_generators_depend_on_seed_and_step_only_and_differ_from_sample_ones() {
    use rand::Rng;
    let first = |seed, step| batch_rng(seed, step).random::<u64>();
    assert_eq!(first(1, 2), first(1, 2));
    assert_ne!(first(1, 2), first(2, 2));
    assert_ne!(first(1, 2), first(1, 3));
    assert_ne!(first(1, 2), sample_rng(1, 2, 0).random::<u64>());
}

/// 12 samples of 4 x 4 x 2 with distinct values; label i % 2.
fn patterned(n: usize) -> InMemoryDataset {
    let images = Tensor::from_vec(&[n, 4, 4, 2], ramp(n, 4, 4 * 2)).unwrap();
    InMemoryDataset::new(images, (0..n).map(|i| i % 2).collect(), 2).unwrap()
}

#[test]
fn loader_augments_identically_on_any_thread_count() {
    let data = patterned(12);
    let augmentation: Arc<dyn Augmentation> = Arc::new(Pipeline(vec![
        Box::new(
            RandomAffine::new(AffineConfig {
                horizontal_flip: true,
                rotation: (-0.1, 0.1),
                zoom_height: (-0.2, 0.2),
                ..AffineConfig::default()
            })
            .unwrap(),
        ),
        Box::new(GaussianNoise::new(0.05).unwrap()),
    ]));
    let loader = BatchLoader::new(&data, 5)
        .unwrap()
        .shuffle(3)
        .augment(Arc::clone(&augmentation), 99);
    let run = |threads: usize, epoch: u64| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| loader.epoch(epoch).map(Result::unwrap).collect::<Vec<_>>())
    };
    let one = run(1, 0);
    assert_eq!(one, run(2, 0));
    assert_eq!(run(1, 4), run(2, 4));
    assert_ne!(one, run(1, 1));

    // Each sample is the dataset sample augmented with sample_rng(seed, epoch, index).
    let plain = BatchLoader::new(&data, 5).unwrap().shuffle(3);
    for (augmented, raw) in one.iter().zip(plain.epoch(0)) {
        let raw = raw.unwrap();
        assert_eq!(augmented.indices, raw.indices);
        assert_eq!(augmented.labels, raw.labels);
        for (k, &i) in raw.indices.iter().enumerate() {
            let sample = &raw.images.as_slice()[32 * k..32 * (k + 1)];
            let mut expected = sample.to_vec();
            augmentation
                .apply(&mut expected, &[4, 4, 2], &mut sample_rng(99, 0, i))
                .unwrap();
            assert_eq!(&augmented.images.as_slice()[32 * k..32 * (k + 1)], expected);
            assert_ne!(sample, expected);
        }
        // load_batch reads the raw samples.
        assert_eq!(loader.load_batch(&raw.indices).unwrap(), raw);
    }

    // A different augmentation seed changes the images but not the order.
    let other = BatchLoader::new(&data, 5)
        .unwrap()
        .shuffle(3)
        .augment(augmentation, 100);
    let other: Vec<_> = other.epoch(0).map(Result::unwrap).collect();
    assert_eq!(other[0].indices, one[0].indices);
    assert_ne!(other[0].images, one[0].images);
}

/// True when every value is finite.
fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

#[test]
fn brightness_shifts_by_one_clamped_delta() {
    let image = ramp(3, 3, 1);
    let brightness = RandomBrightness::new(0.3).unwrap();
    for seed in 0..10 {
        let out = applied(&brightness, &image, &[3, 3, 1], seed);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        let deltas: Vec<f32> = out.iter().zip(&image).map(|(o, i)| o - i).collect();
        let unclamped: Vec<f32> = deltas
            .iter()
            .zip(&out)
            .filter(|(_, &o)| o > 0.0 && o < 1.0)
            .map(|(d, _)| *d)
            .collect();
        assert!(unclamped.iter().all(|d| d.abs() <= 0.3 + 1e-6));
        assert!(unclamped.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-6));
    }
    assert!(RandomBrightness::new(-0.1).is_err());
}

#[test]
fn contrast_keeps_channel_means_and_scales_deviations() {
    let (h, w, c) = (4, 4, 3);
    let image = ramp(h, w, c);
    let mean =
        |values: &[f32], ch: usize| values.iter().skip(ch).step_by(c).sum::<f32>() / (h * w) as f32;
    let contrast = RandomContrast::new(0.5).unwrap();
    let out = applied(&contrast, &image, &[h, w, c], 5);
    for ch in 0..c {
        assert!((mean(&out, ch) - mean(&image, ch)).abs() < 1e-5);
    }
    // One factor for the whole image, within [0.5, 1.5].
    let factor = (out[c] - out[0]) / (image[c] - image[0]);
    assert!((0.5..=1.5).contains(&factor));
    for ch in 0..c {
        let f = (out[c + ch] - out[ch]) / (image[c + ch] - image[ch]);
        assert!((f - factor).abs() < 1e-3);
    }
    assert!(RandomContrast::new(1.5).is_err());
}

#[test]
fn noise_has_the_asked_spread() {
    let image = vec![0.5; 64 * 64];
    let out = applied(&GaussianNoise::new(0.1).unwrap(), &image, &[64, 64, 1], 0);
    let n = out.len() as f32;
    let mean = out.iter().sum::<f32>() / n;
    let std = (out.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    assert!(
        (mean - 0.5).abs() < 0.01 && (std - 0.1).abs() < 0.01,
        "{mean} {std}"
    );
    assert!(GaussianNoise::new(f32::INFINITY).is_err());
}

#[test]
fn blur_keeps_constants_and_spreads_a_dot_symmetrically() {
    let blur = GaussianBlur::new((1.0, 1.0), 5).unwrap();
    let constant = vec![0.25; 6 * 5 * 2];
    assert_close(&applied(&blur, &constant, &[6, 5, 2], 0), &constant, 1e-6);

    let out = applied(&blur, &dot(9, 9, 4, 4), &[9, 9, 1], 0);
    assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(out[4 * 9 + 4] < 1.0 && out[4 * 9 + 4] > out[4 * 9 + 5]);
    assert!((out[4 * 9 + 3] - out[4 * 9 + 5]).abs() < 1e-7);
    assert!((out[3 * 9 + 4] - out[4 * 9 + 3]).abs() < 1e-7);
    assert_eq!(out[0], 0.0); // beyond the kernel's reach
    assert!(GaussianBlur::new((1.0, 1.0), 4).is_err());
    assert!(GaussianBlur::new((0.0, 1.0), 3).is_err());
}

#[test]
fn cutout_zeroes_one_clipped_square() {
    let (h, w, c) = (7, 6, 2);
    let image = vec![1.0; h * w * c];
    let cutout = Cutout::new(3).unwrap();
    let mut full_squares = 0;
    for seed in 0..30 {
        let out = applied(&cutout, &image, &[h, w, c], seed);
        let zero_pixels: Vec<(usize, usize)> = (0..h * w)
            .filter(|p| out[p * c] == 0.0)
            .map(|p| (p / w, p % w))
            .collect();
        // All channels of a pixel agree.
        assert!((0..h * w).all(|p| out[p * c] == out[p * c + 1]));
        let rows = zero_pixels
            .iter()
            .map(|p| p.0)
            .collect::<std::collections::BTreeSet<_>>();
        let cols = zero_pixels
            .iter()
            .map(|p| p.1)
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(zero_pixels.len(), rows.len() * cols.len(), "a rectangle");
        assert!(rows.len() <= 3 && cols.len() <= 3 && !zero_pixels.is_empty());
        full_squares += usize::from(zero_pixels.len() == 9);
    }
    assert!(full_squares > 0);
    assert!(Cutout::new(0).is_err());
}

#[test]
fn every_photometric_augmentation_keeps_shape_and_finite_values() {
    let shape = [5, 6, 3];
    let image = ramp(5, 6, 3);
    let augmentations: Vec<Box<dyn Augmentation>> = vec![
        Box::new(RandomBrightness::new(0.5).unwrap()),
        Box::new(RandomContrast::new(1.0).unwrap()),
        Box::new(GaussianNoise::new(1.0).unwrap()),
        Box::new(GaussianBlur::new((0.1, 3.0), 7).unwrap()),
        Box::new(Cutout::new(10).unwrap()),
        Box::new(RandomResizedCrop::new((0.05, 1.0), (0.2, 5.0)).unwrap()),
    ];
    for augmentation in &augmentations {
        for seed in 0..5 {
            let out = applied(augmentation.as_ref(), &image, &shape, seed);
            assert_eq!(out.len(), image.len());
            assert!(all_finite(&out));
        }
    }
}

/// Every augmentation, with settings that change most images.
fn every_augmentation() -> Vec<Box<dyn Augmentation>> {
    vec![
        Box::new(RandomAffine::rotation(0.1).unwrap()),
        Box::new(RandomAffine::flip(true, true)),
        Box::new(RandomResizedCrop::new((0.3, 1.0), (0.75, 1.33)).unwrap()),
        Box::new(RandomBrightness::new(0.3).unwrap()),
        Box::new(RandomContrast::new(0.5).unwrap()),
        Box::new(GaussianNoise::new(0.1).unwrap()),
        Box::new(GaussianBlur::new((0.5, 2.0), 5).unwrap()),
        Box::new(Cutout::new(3).unwrap()),
        Box::new(RandomApply::new(GaussianNoise::new(0.1).unwrap(), 0.0).unwrap()),
        Box::new(Pipeline(vec![])),
    ]
}

#[test]
fn a_shape_that_does_not_fit_is_an_error_naming_it_and_the_image_is_untouched() {
    let image = vec![0.5; 10];
    for bad in [&[3, 3, 1][..], &[10], &[1, 10, 1, 1], &[usize::MAX, 2, 2]] {
        for augmentation in every_augmentation() {
            let mut out = image.clone();
            let err = augmentation
                .apply(&mut out, bad, &mut rng(0))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("10 values"),
                "{augmentation:?} on {bad:?}: {err}"
            );
            assert_eq!(out, image, "{augmentation:?} changed the image");
        }
        let mut out = image.clone();
        assert!(flip_horizontally(&mut out, bad).is_err());
        assert!(warp(&mut out, bad, &Affine::IDENTITY, FillMode::Nearest).is_err());
        assert_eq!(out, image);
    }
}

#[test]
fn empty_images_pass_through_every_augmentation() {
    for shape in [[0, 3, 1], [3, 0, 2], [2, 3, 0]] {
        for augmentation in every_augmentation() {
            let mut empty: Vec<f32> = vec![];
            augmentation.apply(&mut empty, &shape, &mut rng(0)).unwrap();
        }
        flip_horizontally(&mut [], &shape).unwrap();
    }
}

/// A batch where every value of image i is `i + 1` and target i is one-hot on class i.
fn constant_batch(b: usize, h: usize, w: usize, c: usize) -> (Tensor, Tensor) {
    let images = (0..b)
        .flat_map(|i| vec![(i + 1) as f32; h * w * c])
        .collect();
    let targets = (0..b * b)
        .map(|k| f32::from(u8::from(k / b == k % b)))
        .collect();
    (
        Tensor::from_vec(&[b, h, w, c], images).unwrap(),
        Tensor::from_vec(&[b, b], targets).unwrap(),
    )
}

/// The partner of row `i` of mixed one-hot targets and the weight of sample i's own class.
fn partner_and_lambda(row: &[f32], i: usize) -> (usize, f32) {
    assert!(
        (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
        "row {i} sums to 1: {row:?}"
    );
    let partner = (0..row.len())
        .find(|&k| k != i && row[k] > 0.0)
        .unwrap_or(i);
    (partner, row[i])
}

#[test]
fn mixup_mixes_images_and_labels_by_the_same_lambda() {
    let (b, h, w, c) = (8, 3, 3, 2);
    let (mut images, mut targets) = constant_batch(b, h, w, c);
    MixUp::new(0.4)
        .unwrap()
        .mix(&mut images, &mut targets, &mut rng(1))
        .unwrap();
    let mut mixed = 0;
    for i in 0..b {
        let (j, lambda) = partner_and_lambda(&targets.as_slice()[i * b..(i + 1) * b], i);
        let expected = lambda * (i + 1) as f32 + (1.0 - lambda) * (j + 1) as f32;
        let image = &images.as_slice()[i * h * w * c..(i + 1) * h * w * c];
        assert!(
            image.iter().all(|v| (v - expected).abs() < 1e-5),
            "sample {i}"
        );
        mixed += usize::from(j != i);
    }
    assert!(mixed > 0);
    assert!(MixUp::new(0.0).is_err());
    let mut wrong = Tensor::zeros(&[b + 1, 2]);
    assert!(MixUp::new(1.0)
        .unwrap()
        .mix(&mut images, &mut wrong, &mut rng(0))
        .is_err());
}

#[test]
fn cutmix_label_weights_match_the_pasted_area() {
    let (b, h, w, c) = (8, 10, 12, 3);
    let cutmix = CutMix::new(1.0).unwrap();
    let mut mixed = 0;
    for seed in 0..5 {
        let (mut images, mut targets) = constant_batch(b, h, w, c);
        cutmix
            .mix(&mut images, &mut targets, &mut rng(seed))
            .unwrap();
        for i in 0..b {
            let (j, lambda) = partner_and_lambda(&targets.as_slice()[i * b..(i + 1) * b], i);
            let image = &images.as_slice()[i * h * w * c..(i + 1) * h * w * c];
            // Every value is the own one or the partner's; the pasted share sets lambda.
            assert!(image
                .iter()
                .all(|&v| v == (i + 1) as f32 || v == (j + 1) as f32));
            if j != i {
                let pasted = image.iter().filter(|&&v| v == (j + 1) as f32).count() / c;
                let expected = 1.0 - pasted as f32 / (h * w) as f32;
                assert!((lambda - expected).abs() < 1e-6, "{lambda} vs {expected}");
                mixed += usize::from(pasted > 0);
            }
        }
    }
    assert!(mixed > 0);
    assert!(CutMix::new(f32::NAN).is_err());
}

/// One augmentation of each kind, its settings drawn by proptest.
fn any_augmentation() -> impl Strategy<Value = Box<dyn Augmentation>> {
    let fill = prop_oneof![
        Just(FillMode::Reflect),
        Just(FillMode::Wrap),
        Just(FillMode::Nearest),
        (-1.0f32..1.0).prop_map(FillMode::Constant),
    ];
    let affine = (
        any::<(bool, bool)>(),
        0.0f32..0.5,
        -0.9f32..1.0,
        0.0f32..1.0,
        0.0f32..0.2,
        fill,
    )
        .prop_map(|((h, v), rotation, zoom, shift, shear, fill)| {
            let config = AffineConfig {
                horizontal_flip: h,
                vertical_flip: v,
                rotation: (-rotation, rotation),
                zoom_height: (zoom.min(0.0), zoom.max(0.0)),
                zoom_width: Some((-0.5, zoom.max(-0.5))),
                translate_height: (-shift, shift),
                translate_width: (0.0, shift),
                shear: (-shear, shear),
                fill,
            };
            Box::new(RandomAffine::new(config).unwrap()) as Box<dyn Augmentation>
        });
    prop_oneof![
        affine,
        (0.01f32..1.0, 0.0f32..1.0).prop_map(|(lo, span)| {
            Box::new(RandomResizedCrop::new((lo, (lo + span).min(1.0)), (0.5, 2.0)).unwrap())
                as Box<dyn Augmentation>
        }),
        (0.0f32..1.0)
            .prop_map(|d| Box::new(RandomBrightness::new(d).unwrap()) as Box<dyn Augmentation>),
        (0.0f32..1.0)
            .prop_map(|f| Box::new(RandomContrast::new(f).unwrap()) as Box<dyn Augmentation>),
        (0.0f32..1.0)
            .prop_map(|s| Box::new(GaussianNoise::new(s).unwrap()) as Box<dyn Augmentation>),
        (0.1f32..3.0, 0usize..4).prop_map(|(s, k)| {
            Box::new(GaussianBlur::new((s, s * 2.0), 2 * k + 1).unwrap()) as Box<dyn Augmentation>
        }),
        (1usize..12).prop_map(|s| Box::new(Cutout::new(s).unwrap()) as Box<dyn Augmentation>),
        (0.0f32..=1.0).prop_map(|p| {
            Box::new(
                GaussianNoise::new(0.1)
                    .unwrap()
                    .with_probability(p)
                    .unwrap(),
            ) as Box<dyn Augmentation>
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_pipeline_keeps_shape_and_finite_values(
        augmentations in proptest::collection::vec(any_augmentation(), 0..6),
        (h, w, c) in (1usize..9, 1usize..9, 1usize..4),
        seed in any::<u64>(),
    ) {
        let image = ramp(h, w, c);
        let pipeline = Pipeline(augmentations);
        let out = applied(&pipeline, &image, &[h, w, c], seed);
        prop_assert_eq!(out.len(), image.len());
        prop_assert!(all_finite(&out), "{:?}", out);
        prop_assert_eq!(out, applied(&pipeline, &image, &[h, w, c], seed));
    }
}
