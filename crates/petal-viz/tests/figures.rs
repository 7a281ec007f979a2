//! Every figure writer: files of the expected size that are not blank, text drawn with
//! the embedded font, and errors that name the file.

use std::path::Path;

use image::RgbImage;
use petal_tensor::Tensor;
use petal_viz::{
    feature_map_grid, filter_grid, image_grid, overlay, save_png, tensor_image, Colormap,
    ConfusionPlot, GridOptions, LinePlot, Panel, Scaling, SmallMultiples, Tile,
};

fn ramp(shape: &[usize]) -> Tensor {
    let len = shape.iter().product();
    Tensor::from_vec(shape, (0..len).map(|v| (v as f32 * 0.37).sin()).collect()).unwrap()
}

/// The number of distinct colours in a region: 1 means blank.
fn colours(image: &RgbImage, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> usize {
    let mut seen: Vec<[u8; 3]> = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .map(|(x, y)| image.get_pixel(x, y).0)
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

fn reopen(path: &Path) -> RgbImage {
    image::open(path).unwrap().to_rgb8()
}

#[test]
fn raster_figures_are_written_at_their_size_and_are_not_blank() {
    let dir = tempfile::tempdir().unwrap();
    let filters = filter_grid(&ramp(&[3, 3, 3, 16]), 64, Some("conv1")).unwrap();
    let deep = filter_grid(&ramp(&[3, 3, 8, 4]), 64, None).unwrap();
    let maps = feature_map_grid(&ramp(&[1, 7, 7, 10]), 64, None).unwrap();
    // 16 RGB filters in 2 rows of 8 tiles (3 px enlarged 14x to 42 px); 4 filters x 8
    // channels of 12 px.
    assert_eq!(deep.dimensions(), (8 * 13 + 1, 4 * 13 + 1));
    assert!(filters.width() == 8 * 46 + 4 && filters.height() > 2 * 46);
    // 10 maps: 4 columns, 3 rows of 64 px (7 px maps enlarged 10x to 70 px).
    assert_eq!(maps.dimensions(), (4 * 72 + 2, 3 * 72 + 2));
    let photo = tensor_image(&ramp(&[20, 30, 3]), Scaling::MinMax).unwrap();
    let heat = overlay(&photo, &ramp(&[5, 5]), Colormap::Jet, 0.5).unwrap();
    assert_eq!(heat.dimensions(), (30, 20));
    let grid = image_grid(
        &[
            Tile::new(photo.clone(), "pred 1\ntrue 2"),
            Tile::new(heat.clone(), "x"),
        ],
        &GridOptions {
            columns: 2,
            title: Some("mistakes".into()),
            ..GridOptions::default()
        },
    )
    .unwrap();
    for (name, picture) in [
        ("filters", &filters),
        ("deep", &deep),
        ("maps", &maps),
        ("grid", &grid),
    ] {
        let path = dir.path().join(format!("{name}.png"));
        save_png(picture, &path).unwrap();
        let back = reopen(&path);
        assert_eq!(back.dimensions(), picture.dimensions(), "{name}");
        let (w, h) = back.dimensions();
        assert!(colours(&back, (0, 0, w, h)) > 10, "{name} is blank");
    }
    // The grid's title and captions are drawn: dark text pixels above and below the tiles.
    let dark = |y0: u32, y1: u32| {
        (y0..y1).any(|y| (0..grid.width()).any(|x| grid.get_pixel(x, y).0.iter().all(|&c| c < 100)))
    };
    assert!(dark(0, 24), "no title");
    let captions_from = grid.height() - 2 * 17;
    assert!(dark(captions_from, grid.height()), "no captions");
}

#[test]
fn plots_render_text_with_the_embedded_font_as_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let plot = LinePlot {
        title: "bipyramidal CNN on MNIST".into(),
        panels: vec![
            Panel::new("loss", "cross-entropy")
                .with("train", &[0.8, 0.3, 0.2])
                .with_dashed("val", &[0.5, 0.25, f64::NAN]),
            Panel::new("accuracy", "accuracy").with("train", &[0.8, 0.9, 0.95]),
        ],
    };
    let png = dir.path().join("curves.png");
    plot.save(&png).unwrap();
    let image = reopen(&png);
    assert_eq!(image.dimensions(), (960, 400));
    // The title band (above the charts) holds text, not just background.
    assert!(
        colours(&image, (300, 0, 660, 30)) > 2,
        "the title is not drawn"
    );
    assert!(
        colours(&image, (0, 40, 960, 400)) > 5,
        "the charts are blank"
    );
    let svg = dir.path().join("curves.svg");
    plot.save(&svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("bipyramidal CNN on MNIST") && text.contains("<polyline"));

    let counts = vec![vec![5, 1, 0], vec![0, 7, 2], vec![1, 0, 9]];
    let names = ["daisy", "rose", "tulip"];
    let matrix = ConfusionPlot {
        title: "confusion".into(),
        counts: &counts,
        class_names: &names,
    };
    let path = dir.path().join("confusion.png");
    matrix.save(&path).unwrap();
    let image = reopen(&path);
    let (w, h) = image.dimensions();
    assert!(w > 3 * 80 && h > 3 * 80);
    assert!(colours(&image, (0, 0, w, h)) > 10);
    // The diagonal cell of the best row (9 of 10) is bright yellow-green, an empty cell dark.
    let diag = image.get_pixel(w - 90 - 40, 60 + 2 * 80 + 10).0;
    let empty = image.get_pixel(w - 90 - 40, 60 + 10).0;
    assert!(diag[1] > 180 && empty[1] < 60, "{diag:?} {empty:?}");
    // The colour bar beside the matrix runs from the colour of the largest share (the
    // 9 of 10 on the diagonal) at the top to the colour of 0 at the bottom...
    let bar_x = w - 90 + 16 + 8;
    assert_eq!(image.get_pixel(bar_x, 60).0, Colormap::Viridis.rgb(1.0));
    assert_eq!(
        image.get_pixel(bar_x, 60 + 3 * 80 - 1).0,
        Colormap::Viridis.rgb(0.0)
    );
    assert_eq!(image.get_pixel(bar_x, 60).0, diag);
    // ... labelled with the shares it spans.
    let svg = dir.path().join("confusion.svg");
    matrix.save(&svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("90%") && text.matches('%').count() >= 2,
        "no colour bar labels"
    );
    assert!(text.contains("2: tulip"), "no class names");
}

#[test]
fn bad_input_names_the_file_and_the_problem() {
    let counts = vec![vec![1, 2], vec![3]];
    let err = ConfusionPlot {
        title: "c".into(),
        counts: &counts,
        class_names: &["a", "b"],
    }
    .save(Path::new("out/confusion.png"))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("out/confusion.png") && err.contains("n rows"),
        "{err}"
    );
    let err = LinePlot {
        title: "t".into(),
        panels: vec![],
    }
    .save(Path::new("curves.svg"))
    .unwrap_err()
    .to_string();
    assert!(err.contains("curves.svg"), "{err}");
    let missing = Path::new("/nonexistent-folder/x.png");
    let err = save_png(&RgbImage::new(2, 2), missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent-folder/x.png"), "{err}");
    assert!(tensor_image(&Tensor::zeros(&[4, 4, 2]), Scaling::MinMax).is_err());
}

#[test]
fn small_multiples_draw_one_chart_per_run_on_one_scale() {
    let dir = tempfile::tempdir().unwrap();
    // Run "low" climbs from 0.1 to 0.9; run "high" stays at 0.9 from start to end.
    let panels: Vec<Panel> = ["low", "high", "c", "d", "e"]
        .iter()
        .map(|name| {
            let values: &[f64] = if *name == "low" {
                &[0.1, 0.9]
            } else {
                &[0.9, 0.9]
            };
            Panel::new(*name, "accuracy").with("train", values)
        })
        .collect();
    let plot = SmallMultiples {
        title: "runs".into(),
        panels,
        columns: 3,
    };
    let path = dir.path().join("multiples.png");
    plot.save(&path).unwrap();
    let image = reopen(&path);
    // Five charts in three columns: two rows of 330 x 250 under a 40-pixel title band.
    assert_eq!(image.dimensions(), (3 * 330, 2 * 250 + 40));
    // Every chart is drawn (the sixth cell stays empty).
    for k in 0..5 {
        let (x, y) = (330 * (k % 3), 40 + 250 * (k / 3));
        assert!(
            colours(&image, (x, y, x + 330, y + 250)) > 5,
            "chart {k} is blank"
        );
    }
    assert_eq!(
        colours(&image, (660, 290, 990, 540)),
        1,
        "the sixth cell is not empty"
    );
    // On the shared scale, the flat 0.9 line of "high" sits near the top of its chart
    // (on a scale of its own it would sit in the middle).
    let blue = |x: u32, y: u32| image.get_pixel(x, y).0 == [31, 110, 180];
    let rows: Vec<u32> = (40..290)
        .filter(|&y| (330 + 100..330 + 300).any(|x| blue(x, y)))
        .collect();
    assert!(!rows.is_empty(), "no line in the second chart");
    let mean = rows.iter().sum::<u32>() as f64 / rows.len() as f64;
    assert!(mean < 40.0 + 250.0 * 0.4, "the 0.9 line sits at y = {mean}");

    let err = SmallMultiples {
        title: "none".into(),
        panels: vec![],
        columns: 2,
    }
    .save(&dir.path().join("empty.png"))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("empty.png") && err.contains("at least one panel"),
        "{err}"
    );
}

/// Lines added with `with_xy` sit at their given x (seconds here), not at epochs 1, 2,
/// 3: the point at 100 s lands ten times as far right of the one at 0 s as the point at
/// 10 s does.
#[test]
fn points_given_in_seconds_sit_at_their_x() {
    let dir = tempfile::tempdir().unwrap();
    let plot = LinePlot {
        title: "per second".into(),
        panels: vec![Panel::new("accuracy", "accuracy")
            .x_axis("training seconds")
            .with_xy("train", &[0.0, 10.0, 100.0], &[0.2, 0.5, 0.8])],
    };
    let path = dir.path().join("seconds.svg");
    plot.save(&path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.contains("training seconds"));
    let attribute = |element: &str, name: &str| -> f64 {
        let from = element.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        let value = &element[from..];
        value[..value.find('"').unwrap()].parse().unwrap()
    };
    // One circle per point, in the order drawn.
    let circles: Vec<(f64, f64)> = svg
        .split("<circle")
        .skip(1)
        .map(|c| (attribute(c, "cx"), attribute(c, "cy")))
        .collect();
    assert_eq!(circles.len(), 3, "{svg}");
    let (at0, at10, at100) = (circles[0], circles[1], circles[2]);
    assert!(at100.0 > at10.0 && at10.0 > at0.0, "{circles:?}");
    assert!(at100.1 < at10.1, "the higher value is drawn higher");
    let ratio = (at100.0 - at0.0) / (at10.0 - at0.0);
    assert!(
        (ratio - 10.0).abs() < 0.5,
        "100 s lies {ratio} times as far as 10 s"
    );
}
