//! Captioned image grids: samples, augmentation previews, misclassified examples.

use image::{imageops, Rgb, RgbImage};

use crate::error::{Result, VizError};
use crate::raster::{draw_text, enlarge, shrink, text_width};

const CAPTION_SIZE: f64 = 13.0;
const TITLE_SIZE: f64 = 18.0;

/// One picture of a grid, with an optional caption under it (`\n` starts a new line).
#[derive(Clone, Debug)]
pub struct Tile {
    /// The picture.
    pub image: RgbImage,
    /// Text under the picture.
    pub caption: Option<String>,
}

impl Tile {
    /// A tile with a caption.
    pub fn new(image: RgbImage, caption: impl Into<String>) -> Self {
        Self {
            image,
            caption: Some(caption.into()),
        }
    }
}

/// How a grid is laid out.
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    /// Tiles per row.
    pub columns: usize,
    /// Smaller pictures are enlarged (by whole pixel blocks) to at least this side.
    pub min_tile_side: u32,
    /// Larger pictures are shrunk to at most this side (photos of 224 px in a grid of
    /// 24 would make a page of megabytes).
    pub max_tile_side: u32,
    /// Pixels between tiles and around the grid.
    pub gap: u32,
    /// A line of text above the grid.
    pub title: Option<String>,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self {
            columns: 8,
            min_tile_side: 64,
            max_tile_side: u32::MAX,
            gap: 4,
            title: None,
        }
    }
}

/// The tiles in rows of `options.columns` on a white page, each centred in its cell
/// with its caption below.
///
/// ```
/// use image::RgbImage;
/// use petal_viz::{image_grid, GridOptions, Tile};
/// let tiles = vec![Tile::new(RgbImage::new(8, 8), "a"); 5];
/// let options = GridOptions { columns: 3, min_tile_side: 16, gap: 2, ..GridOptions::default() };
/// let grid = image_grid(&tiles, &options)?;
/// assert_eq!(grid.height() > 2 * 16 && grid.width() > 3 * 16, true);
/// // Pictures larger than `max_tile_side` are shrunk: 3 x (16 + 2) + 2 wide.
/// let photos = vec![Tile::new(RgbImage::new(224, 224), "a"); 3];
/// let options = GridOptions { columns: 3, min_tile_side: 8, max_tile_side: 16, gap: 2, title: None };
/// assert_eq!(image_grid(&photos, &options)?.width(), 56);
/// # Ok::<(), petal_viz::VizError>(())
/// ```
pub fn image_grid(tiles: &[Tile], options: &GridOptions) -> Result<RgbImage> {
    if tiles.is_empty() || options.columns == 0 {
        return Err(VizError::Input(
            "an image grid needs at least one tile and one column".into(),
        ));
    }
    let pictures: Vec<RgbImage> = tiles
        .iter()
        .map(|t| {
            shrink(
                &enlarge(&t.image, options.min_tile_side),
                options.max_tile_side,
            )
        })
        .collect();
    let lines = |t: &Tile| t.caption.as_deref().map_or(0, |c| c.lines().count());
    let caption_lines = tiles.iter().map(lines).max().unwrap_or(0) as u32;
    let line_height = (CAPTION_SIZE * 1.25).ceil() as u32;
    let caption_width = tiles
        .iter()
        .flat_map(|t| t.caption.as_deref().unwrap_or("").lines())
        .map(|l| text_width(l, CAPTION_SIZE) + 4)
        .max()
        .unwrap_or(0);
    let cell_w = pictures
        .iter()
        .map(RgbImage::width)
        .max()
        .unwrap_or(0)
        .max(caption_width);
    let picture_h = pictures.iter().map(RgbImage::height).max().unwrap_or(0);
    let cell_h = picture_h + caption_lines * line_height;
    let title_h = if options.title.is_some() {
        (TITLE_SIZE * 1.6) as u32
    } else {
        0
    };
    let columns = options.columns.min(tiles.len()) as u32;
    let rows = tiles.len().div_ceil(options.columns) as u32;
    let gap = options.gap;
    let mut page = RgbImage::from_pixel(
        columns * (cell_w + gap) + gap,
        title_h + rows * (cell_h + gap) + gap,
        Rgb([255, 255, 255]),
    );
    if let Some(title) = &options.title {
        draw_text(&mut page, title, (gap as i32 + 2, 4), TITLE_SIZE);
    }
    for (i, (tile, picture)) in tiles.iter().zip(&pictures).enumerate() {
        let (col, row) = (i as u32 % columns, i as u32 / columns);
        let left = gap + col * (cell_w + gap);
        let top = title_h + gap + row * (cell_h + gap);
        let x = left + (cell_w - picture.width()) / 2;
        imageops::replace(&mut page, picture, i64::from(x), i64::from(top));
        for (k, line) in tile.caption.as_deref().unwrap_or("").lines().enumerate() {
            let x = left + (cell_w.saturating_sub(text_width(line, CAPTION_SIZE))) / 2;
            let y = top + picture_h + k as u32 * line_height + 1;
            draw_text(&mut page, line, (x as i32, y as i32), CAPTION_SIZE);
        }
    }
    Ok(page)
}
