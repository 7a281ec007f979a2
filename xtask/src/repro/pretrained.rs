//! `repro pretrained` (pretrained_model): an ImageNet-pretrained EfficientNet-Lite0 (or
//! the `--model` of the catalog: ResNet, MobileNetV2, VGG16) names the sample photos and a few flowers (top-5), and shows with Grad-CAM where it
//! looked; ImageNet has no flower species, so the flowers get the nearest things it knows.

use std::path::{Path, PathBuf};

use petal_data::flowers::Flowers102;
use petal_interop::load_classifier;
use petal_viz::saliency::last_feature_map_layer;
use serde::Serialize;

use super::figures::{short, Figures};
use super::inspect::{self, Explained};
use super::{write_metrics, Experiment, ReproOptions, RunInfo};
use crate::paths::{data_config, weights_folder, workspace_root};

#[derive(Serialize)]
struct Classified {
    image: String,
    top5: Vec<(String, f32)>,
}

#[derive(Serialize)]
struct PretrainedReport {
    #[serde(flatten)]
    info: RunInfo,
    model: &'static str,
    published_top1: f32,
    photos: Vec<Classified>,
}

/// `repro pretrained`: the sample photos and a few flowers through the ImageNet classifier.
pub fn run_pretrained(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    let entry = options.pretrained()?;
    let classifier = load_classifier(entry, &weights_folder(), None)?;
    let samples = std::env::var_os("PETAL_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/images"));
    let mut photos: Vec<PathBuf> = ["chelsea.png", "coffee.png"]
        .iter()
        .map(|f| samples.join(f))
        .filter(|p| p.exists())
        .collect();
    let flowers = Flowers102::fetch(&data_config(), None)?;
    photos.extend(
        flowers
            .most_frequent_classes(3)?
            .indices
            .iter()
            .step_by(97)
            .take(if options.quick { 1 } else { 6 })
            .map(|&i| flowers.image_path(i)),
    );
    let mut results = Vec::new();
    let mut explained = Vec::new();
    for photo in photos {
        let (_, best) = classifier.classify(&photo, 5)?;
        println!("{}", photo.display());
        for p in &best {
            println!("  {:<40} {:>6.2}%", p.name, p.probability * 100.0);
        }
        let file_name = photo.file_name().unwrap_or_default().to_string_lossy();
        explained.push(Explained {
            image: classifier.input(&photo)?,
            caption: short(&file_name),
        });
        results.push(Classified {
            image: file_name.into_owned(),
            top5: best.into_iter().map(|p| (p.name, p.probability)).collect(),
        });
    }
    println!("ImageNet has no flower species among its 1000 classes (only 'daisy'), so the flowers get the nearest things it knows.");
    let mut figures = Figures::new(output);
    let names: Vec<&str> = classifier.names.iter().map(String::as_str).collect();
    let model = &classifier.model;
    let layer = last_feature_map_layer(model)
        .ok_or_else(|| anyhow::anyhow!("{} has no feature maps for Grad-CAM", entry.name))?;
    inspect::saliency(
        &mut figures,
        "gradcam.png",
        model,
        &explained,
        &names,
        &layer,
        false,
    )?;
    write_metrics(
        output,
        &PretrainedReport {
            info: RunInfo::new(Experiment::Pretrained, options)?,
            model: entry.name,
            published_top1: entry.top1_accuracy,
            photos: results,
        },
        &figures,
    )
}
