//! The one typeface of every figure: DejaVu Sans (Bitstream Vera licence, see
//! `fonts/DejaVuSans-LICENSE.txt`), compiled into the crate and registered with plotters
//! as its `sans-serif` family, so that no system font is needed.

use std::sync::Once;

use plotters::style::FontStyle;

static DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// The family name figures ask for.
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font once; every drawing function calls this first.
pub fn ensure_registered() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS)
            .unwrap_or_else(|_| unreachable!("the embedded DejaVu Sans is a valid TrueType font"));
    });
}
