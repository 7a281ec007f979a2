//! `repro conv-demo`: the convolution slides. A 6x6 binary image, a diagonal and a
//! vertical 3x3 filter, their 4x4 feature maps with stride 1 and 2x2 maps with stride 2;
//! then two edge filters (Sobel) on a real photo. Every map is written as a PNG.

use std::path::Path;

use image::{GrayImage, Luma};
use petal_nn::layers::Conv2dConfig;
use petal_nn::{Sequential, Summary};
use petal_tensor::{conv::conv2d, Conv2dSpec, Padding, Tensor};
use serde::Serialize;

use super::figures::Figures;
use super::{write_metrics, Experiment, ReproOptions, RunInfo};
use crate::paths::workspace_root;

const IMAGE: [&str; 6] = ["100001", "010010", "001100", "100010", "010010", "001010"];
const FILTERS: [(&str, [f32; 9]); 2] = [
    ("diagonal", [1., -1., -1., -1., 1., -1., -1., -1., 1.]),
    ("vertical", [-1., 1., -1., -1., 1., -1., -1., 1., -1.]),
];
/// Sobel kernels: the first responds to vertical edges, the second to horizontal ones.
const EDGE_FILTERS: [(&str, [f32; 9]); 2] = [
    ("vertical_edges", [-1., 0., 1., -2., 0., 2., -1., 0., 1.]),
    ("horizontal_edges", [-1., -2., -1., 0., 0., 0., 1., 2., 1.]),
];

/// The slides' convolution as a one-layer network for each stride: the two 3x3 filters
/// (no bias) on the 6x6 image.
pub(super) fn networks() -> anyhow::Result<Vec<(String, Summary)>> {
    [1, 2]
        .into_iter()
        .map(|stride| {
            let layer = Conv2dConfig {
                strides: [stride, stride],
                use_bias: false,
                ..Conv2dConfig::new(FILTERS.len(), 3)
            };
            let model = Sequential::new(&[6, 6, 1], 0).add(layer)?.build()?;
            Ok((
                format!("The two filters with stride {stride}"),
                model.summary(),
            ))
        })
        .collect()
}

/// Stacks 3x3 filters into one HWIO tensor `(3, 3, 1, filters)`.
fn filter_bank(filters: &[(&str, [f32; 9])]) -> Tensor {
    let values = (0..9)
        .flat_map(|i| filters.iter().map(move |(_, f)| f[i]))
        .collect();
    Tensor::from_vec(&[3, 3, 1, filters.len()], values).expect("9 taps per filter")
}

/// Channel `k` of a `(1, h, w, c)` tensor as rows.
fn channel(maps: &Tensor, k: usize) -> Vec<Vec<f32>> {
    let [_, h, w, c] = maps.shape() else {
        unreachable!("conv2d returns 4-D maps")
    };
    (0..*h)
        .map(|r| {
            (0..*w)
                .map(|x| maps.as_slice()[(r * w + x) * c + k])
                .collect()
        })
        .collect()
}

/// Writes rows as a grayscale PNG (min -> black, max -> white), each value a
/// `scale x scale` block.
fn write_png(rows: &[Vec<f32>], scale: u32, path: &Path) -> anyhow::Result<()> {
    let (lo, hi) = rows
        .iter()
        .flatten()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = (hi - lo).max(1e-6);
    let (h, w) = (rows.len() as u32, rows.first().map_or(0, Vec::len) as u32);
    let image = GrayImage::from_fn(w * scale, h * scale, |x, y| {
        Luma([
            ((rows[(y / scale) as usize][(x / scale) as usize] - lo) / span * 255.0).round() as u8,
        ])
    });
    image.save(path)?;
    Ok(())
}

/// The image, then each filter as rows of 3.
fn image_and_filters(image: &Tensor) -> Vec<(String, Vec<Vec<f32>>)> {
    let filters = FILTERS.iter().map(|(name, taps)| {
        (
            format!("{name} filter"),
            taps.chunks(3).map(<[f32]>::to_vec).collect(),
        )
    });
    std::iter::once(("image".to_string(), channel(image, 0)))
        .chain(filters)
        .collect()
}

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    info: RunInfo,
    /// The 6x6 image and the two 3x3 filters, as the slides show them.
    image_and_filters: Vec<(String, Vec<Vec<f32>>)>,
    maps: Vec<(String, Vec<Vec<f32>>)>,
    photo: Option<String>,
}

/// The photo of the edge filters, relative to the workspace (recorded as such).
const PHOTO: &str = "../shared/images/chelsea.png";

pub fn run(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    let pixels = IMAGE
        .iter()
        .flat_map(|row| row.chars().map(|c| if c == '1' { 1.0 } else { 0.0 }))
        .collect();
    let image = Tensor::from_vec(&[1, 6, 6, 1], pixels)?;
    let mut figures = Figures::new(output);
    let path = figures.record("image.png", "The 6x6 binary image of the slides");
    write_png(&channel(&image, 0), 40, &path)?;
    println!("image:\n{}\n", IMAGE.join("\n"));
    let mut maps = Vec::new();
    for stride in [1, 2] {
        let spec = Conv2dSpec {
            stride: [stride, stride],
            ..Conv2dSpec::default()
        };
        let out = conv2d(&image, &filter_bank(&FILTERS), None, &spec)?;
        for (k, (name, _)) in FILTERS.iter().enumerate() {
            let rows = channel(&out, k);
            println!(
                "stride {stride}, {name} filter: {}x{} feature map",
                rows.len(),
                rows.len()
            );
            rows.iter().for_each(|r| {
                println!(
                    "  {}",
                    r.iter()
                        .map(|v| format!("{v:3}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            });
            let file = format!("{name}_stride{stride}");
            let caption = format!(
                "Feature map of the {name} filter with stride {stride} ({0}x{0})",
                rows.len()
            );
            write_png(&rows, 40, &figures.record(&format!("{file}.png"), caption))?;
            maps.push((file, rows));
        }
        println!();
    }

    let photo_path = workspace_root().join(PHOTO);
    let photo = match image::open(&photo_path) {
        Ok(photo) => {
            let gray = photo.to_luma32f();
            let (w, h) = gray.dimensions();
            let input = Tensor::from_vec(&[1, h as usize, w as usize, 1], gray.into_raw())?;
            let path = figures.record("photo.png", "The photo the edge filters run on (gray)");
            write_png(&channel(&input, 0), 1, &path)?;
            let spec = Conv2dSpec {
                padding: Padding::Same,
                ..Conv2dSpec::default()
            };
            let edges = conv2d(&input, &filter_bank(&EDGE_FILTERS), None, &spec)?;
            for (k, (name, _)) in EDGE_FILTERS.iter().enumerate() {
                let magnitude: Vec<Vec<f32>> = channel(&edges, k)
                    .into_iter()
                    .map(|r| r.into_iter().map(f32::abs).collect())
                    .collect();
                let caption = format!("|Sobel {}| of the photo", name.replace('_', " "));
                let path = figures.record(&format!("photo_{name}.png"), caption);
                write_png(&magnitude, 1, &path)?;
            }
            println!("edge maps of {} written", photo_path.display());
            Some(PHOTO.to_string())
        }
        Err(e) => {
            println!(
                "no photo for the edge filters ({}: {e}); skipped",
                photo_path.display()
            );
            None
        }
    };
    write_metrics(
        output,
        &Report {
            info: RunInfo::new(Experiment::ConvDemo, options)?,
            image_and_filters: image_and_filters(&image),
            maps,
            photo,
        },
        &figures,
    )
}
