//! `cargo xtask classify`: a pretrained ImageNet model's top classes for photos, and with
//! `--cam DIR` where it looked (Grad-CAM of the top class, drawn over each photo).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use petal_interop::{load_classifier, load_onnx_classifier};
use petal_viz::saliency::{grad_cam, last_feature_map_layer, GradCam};
use petal_viz::{overlay, save_png, Colormap};
use petal_zoo::pretrained::{weights_named, Classifier, Preprocessing};
use serde::Serialize;

use crate::paths::weights_folder;

/// Options of `cargo xtask classify`.
#[derive(Clone, Debug, clap::Args)]
pub struct ClassifyOptions {
    /// Which pretrained model: efficientnet-lite0, resnet18, resnet50, resnet50-v2,
    /// mobilenet_v2, vgg16 (the catalog in petal-zoo), or the path of an `.onnx` file
    /// (imported; ImageNet preprocessing unless --preprocessing says otherwise).
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// The weights file, safetensors or the published `.pth` (default:
    /// `<PETAL_WEIGHTS>/<file>`, PETAL_WEIGHTS defaulting to datasets/cache/weights).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Prepare photos as `imagenet`, `efficientnet-lite` or `none` instead of as the
    /// model's weights were trained.
    #[arg(long)]
    pub preprocessing: Option<String>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print JSON (with the full logits, and the Grad-CAM map with --cam) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the Grad-CAM overlay of the top class, `<photo name>.gradcam.png`, per photo
    /// into this folder.
    #[arg(long, value_name = "DIR")]
    pub cam: Option<PathBuf>,
    /// The layer Grad-CAM weights (default: the last layer with feature maps, the
    /// model's last convolutional block).
    #[arg(long, requires = "cam")]
    pub cam_layer: Option<String>,
    /// The photos.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    image: String,
    top: Vec<(usize, &'a str, f32)>,
    logits: Vec<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cam: Option<CamJson>,
}

/// A Grad-CAM map in a photo's JSON line.
#[derive(Serialize)]
struct CamJson {
    layer: String,
    class: usize,
    /// The map at the layer's resolution, row by row (e.g. 7x7).
    map: Vec<Vec<f32>>,
    /// Every value equal: nothing to see, and no overlay was written.
    flat: bool,
    overlay: Option<String>,
}

impl CamJson {
    fn new(cam: &GradCam, overlay: Option<&Path>) -> Self {
        let width = cam.coarse.shape()[1];
        Self {
            layer: cam.layer.clone(),
            class: cam.class,
            map: cam
                .coarse
                .as_slice()
                .chunks(width)
                .map(<[f32]>::to_vec)
                .collect(),
            flat: cam.is_flat(),
            overlay: overlay.map(|p| p.display().to_string()),
        }
    }
}

/// Grad-CAM of `class` for `photo`, drawn over what the model saw into `dir` unless the
/// map is flat; returns the map and the file written.
fn explain(
    classifier: &Classifier,
    photo: &Path,
    class: usize,
    layer: &str,
    dir: &Path,
    written: &mut HashSet<PathBuf>,
) -> anyhow::Result<(GradCam, Option<PathBuf>)> {
    let input = classifier.input(photo)?;
    let cam = grad_cam(&classifier.model, &input, class, layer)?;
    if cam.is_flat() {
        return Ok((cam, None));
    }
    let stem = photo.file_stem().unwrap_or_default().to_string_lossy();
    let file = dir.join(format!("{stem}.gradcam.png"));
    anyhow::ensure!(
        written.insert(file.clone()),
        "two photos named {stem} would both write {}: rename one",
        file.display()
    );
    let picture = classifier.picture(photo)?;
    save_png(&overlay(&picture, &cam.map, Colormap::Jet, 0.45)?, &file)?;
    Ok((cam, Some(file)))
}

/// Runs `classify`.
pub fn run(options: &ClassifyOptions) -> anyhow::Result<()> {
    let preprocessing = options
        .preprocessing
        .as_deref()
        .map(str::parse::<Preprocessing>)
        .transpose()?;
    let onnx = Path::new(&options.model);
    let mut classifier = if onnx.extension().is_some_and(|e| e == "onnx") {
        anyhow::ensure!(
            options.weights.is_none(),
            "--weights does not apply to an ONNX model: {} holds its own",
            onnx.display()
        );
        load_onnx_classifier(onnx, &weights_folder())?
    } else {
        load_classifier(
            weights_named(&options.model)?,
            &weights_folder(),
            options.weights.as_deref(),
        )?
    };
    if let Some(preprocessing) = preprocessing {
        classifier = classifier.with_preprocessing(preprocessing);
    }
    let cam_layer = match (&options.cam, &options.cam_layer) {
        (None, _) => None,
        (Some(dir), layer) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let layer = layer
                .clone()
                .or_else(|| last_feature_map_layer(&classifier.model))
                .ok_or_else(|| {
                    anyhow::anyhow!("{} has no feature maps for Grad-CAM", options.model)
                })?;
            Some((dir, layer))
        }
    };
    let mut written = HashSet::new();
    for path in &options.images {
        let (logits, best) = classifier.classify(path, options.top.max(1))?;
        let cam = match &cam_layer {
            Some((dir, layer)) => Some(explain(
                &classifier,
                path,
                best[0].class,
                layer,
                dir,
                &mut written,
            )?),
            None => None,
        };
        if options.json {
            let top = best
                .iter()
                .take(options.top)
                .map(|p| (p.class, p.name.as_str(), p.probability))
                .collect();
            println!(
                "{}",
                serde_json::to_string(&JsonResult {
                    image: path.display().to_string(),
                    top,
                    logits: logits.to_vec(),
                    cam: cam.map(|(cam, file)| CamJson::new(&cam, file.as_deref())),
                })?
            );
            continue;
        }
        println!("{}", path.display());
        for (rank, p) in best.iter().take(options.top).enumerate() {
            println!(
                "  {}. {:<40} {:>6.2}%  (class {})",
                rank + 1,
                p.name,
                p.probability * 100.0,
                p.class
            );
        }
        match cam {
            Some((cam, Some(file))) => println!(
                "  Grad-CAM of {} on {}: {}",
                best[0].name,
                cam.layer,
                file.display()
            ),
            Some((cam, None)) => println!(
                "  Grad-CAM of {} on {}: the map is flat (nothing in the layer speaks for the class), not drawn",
                best[0].name, cam.layer
            ),
            None => {}
        }
    }
    Ok(())
}
