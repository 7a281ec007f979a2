//! Colormaps from a value in [0, 1] to an RGB colour.

/// Viridis sampled at ten evenly spaced points (the published matplotlib map); colours
/// in between are interpolated linearly.
const VIRIDIS: [[u8; 3]; 10] = [
    [0x44, 0x01, 0x54],
    [0x48, 0x28, 0x78],
    [0x3e, 0x4a, 0x89],
    [0x31, 0x68, 0x8e],
    [0x26, 0x82, 0x8e],
    [0x1f, 0x9e, 0x89],
    [0x35, 0xb7, 0x79],
    [0x6d, 0xcd, 0x59],
    [0xb4, 0xde, 0x2c],
    [0xfd, 0xe7, 0x25],
];

/// How a scalar becomes a colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    /// Black to white.
    Gray,
    /// Dark purple through teal to yellow; perceptually uniform (heatmaps, matrices).
    Viridis,
    /// Blue through cyan, yellow to red: the classic saliency overlay.
    Jet,
}

impl Colormap {
    /// The colour of `t`, clamped to [0, 1] (NaN maps like 0).
    ///
    /// ```
    /// use petal_viz::Colormap;
    /// assert_eq!(Colormap::Gray.rgb(1.0), [255, 255, 255]);
    /// assert_eq!(Colormap::Viridis.rgb(0.0), [0x44, 0x01, 0x54]);
    /// assert_eq!(Colormap::Jet.rgb(1.0), [128, 0, 0]);
    /// ```
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        match self {
            Colormap::Gray => [to_byte(t); 3],
            Colormap::Viridis => {
                let x = t * (VIRIDIS.len() - 1) as f32;
                let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
                let f = x - i as f32;
                std::array::from_fn(|c| {
                    let (a, b) = (f32::from(VIRIDIS[i][c]), f32::from(VIRIDIS[i + 1][c]));
                    (a + (b - a) * f).round() as u8
                })
            }
            // Each channel is a trapezoid: rising, flat at 1, falling, offset by a quarter.
            Colormap::Jet => [3.0, 2.0, 1.0].map(|centre| to_byte(1.5 - (4.0 * t - centre).abs())),
        }
    }
}

fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_runs_from_blue_through_green_to_red() {
        assert_eq!(Colormap::Jet.rgb(0.0), [0, 0, 128]);
        assert_eq!(Colormap::Jet.rgb(0.5), [128, 255, 128]);
        let mid = Colormap::Viridis.rgb(0.5);
        assert!(
            mid[1] > mid[0] && mid[1] > 100,
            "viridis is teal-green mid-way: {mid:?}"
        );
        assert_eq!(Colormap::Viridis.rgb(1.0), [0xfd, 0xe7, 0x25]);
        assert_eq!(Colormap::Gray.rgb(f32::NAN), [0, 0, 0]);
    }
}
