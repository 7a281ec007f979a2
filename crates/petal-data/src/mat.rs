//! A reader for the numeric subset of MATLAB 5.0 MAT-files (`.mat`, "level 5").
//!
//! Oxford 102 Flowers ships its labels and split as such files: a 128-byte header
//! (text starting `MATLAB 5.0 MAT-file`, version `0x0100`, endian mark `IM`), then one
//! zlib-compressed element (`miCOMPRESSED`) per variable, each holding an `miMATRIX`
//! with array flags, dimensions, name and real part; the class is `double` but the values
//! are stored as `uint8`/`uint16`. This module reads exactly that family: numeric classes
//! (`double`, `single`, the integer classes) stored as any numeric element type,
//! compressed or not, either byte order, small-element tags included. Imaginary parts are
//! ignored; cell, struct, object, char and sparse variables are skipped and listed.
//!
//! Every malformed input is a [`DataError::Format`] naming the file; sizes are checked
//! against the bytes actually present before anything is allocated, and a compressed
//! element is inflated only as far as its declared size, at most [`MAX_INFLATED_BYTES`].
//!
//! ```no_run
//! let labels = petal_data::mat::read_mat("imagelabels.mat")?;
//! let labels = labels.variable("labels")?;
//! assert_eq!(labels.dims, [1, 8189]);
//! # Ok::<(), petal_data::DataError>(())
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::ZlibDecoder;

use crate::error::{DataError, Result};

const HEADER_LEN: usize = 128;
/// The largest size a compressed element may declare once inflated: 64 MiB, far above
/// the few kilobytes of the files this reader is for, and small enough that a zip bomb
/// (a few megabytes inflating to gigabytes) is refused instead of filling memory.
pub const MAX_INFLATED_BYTES: u64 = 64 << 20;
const MI_INT8: u32 = 1;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// One numeric variable: its dimensions and its real values in MATLAB's column-major
/// order, converted to `f64` (exact for every integer MATLAB stores in 53 bits or fewer).
#[derive(Clone, Debug, PartialEq)]
pub struct MatArray {
    /// The dimensions, e.g. `[1, 8189]` for a row vector.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` values, column-major.
    pub values: Vec<f64>,
}

/// The numeric variables of one MAT-file, by name.
#[derive(Clone, Debug)]
pub struct MatFile {
    path: PathBuf,
    arrays: BTreeMap<String, MatArray>,
    skipped: Vec<String>,
}

impl MatFile {
    /// The file these variables were read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every numeric variable, by name.
    pub fn arrays(&self) -> &BTreeMap<String, MatArray> {
        &self.arrays
    }

    /// The numeric variables, by name, without the file's path.
    pub fn into_arrays(self) -> BTreeMap<String, MatArray> {
        self.arrays
    }

    /// The names of variables skipped because their class is not numeric.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The variable `name`; the error names the file, the variable and what the file holds.
    pub fn variable(&self, name: &str) -> Result<&MatArray> {
        self.arrays.get(name).ok_or_else(|| {
            let present: Vec<&str> = self.arrays.keys().map(String::as_str).collect();
            DataError::format(
                &self.path,
                format!(
                    "no numeric variable `{name}` (numeric variables: {present:?}; skipped \
                     non-numeric: {:?})",
                    self.skipped
                ),
            )
        })
    }
}

/// Reads the numeric variables of the MAT-file at `path` (the whole file is read into
/// memory; these files are small).
pub fn read_mat(path: impl AsRef<Path>) -> Result<MatFile> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, "reading", e))?;
    parse_mat(&bytes, path)
}

/// Parses MAT-file `bytes`; `origin` names them in errors.
pub fn parse_mat(bytes: &[u8], origin: &Path) -> Result<MatFile> {
    let fail = |reason: String| DataError::format(origin, format!("MAT-file: {reason}"));
    if bytes.len() < HEADER_LEN {
        return Err(fail(format!(
            "{} bytes is shorter than the 128-byte header",
            bytes.len()
        )));
    }
    if !bytes.starts_with(b"MATLAB 5.0 MAT-file") {
        return Err(fail(
            "the header does not start with \"MATLAB 5.0 MAT-file\" (not a level-5 MAT-file; \
             v7.3 files are HDF5 and not supported)"
                .into(),
        ));
    }
    let big_endian = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => return Err(fail(format!("bad endian indicator {other:?} at byte 126"))),
    };
    let mut file = MatFile {
        path: origin.to_path_buf(),
        arrays: BTreeMap::new(),
        skipped: Vec::new(),
    };
    let mut reader = Elements {
        bytes: &bytes[HEADER_LEN..],
        offset: HEADER_LEN,
        big_endian,
    };
    while !reader.bytes.is_empty() {
        let element = reader.next_element().map_err(fail)?;
        let (name, array) = match element.kind {
            MI_MATRIX => read_matrix(element.data, element.offset, big_endian),
            MI_COMPRESSED => {
                inflate(element.data, element.offset, big_endian).and_then(|inflated| {
                    let mut inner = Elements {
                        bytes: &inflated,
                        offset: 0,
                        big_endian,
                    };
                    let matrix = inner.next_element()?;
                    if matrix.kind != MI_MATRIX {
                        return Err(format!(
                            "the compressed element at byte {} holds element type {}, not miMATRIX",
                            element.offset, matrix.kind
                        ));
                    }
                    read_matrix(matrix.data, element.offset, big_endian)
                })
            }
            other => Err(format!(
                "unexpected top-level element type {other} at byte {}",
                element.offset
            )),
        }
        .map_err(fail)?;
        match array {
            Some(array) => {
                file.arrays.insert(name, array);
            }
            None => file.skipped.push(name),
        }
    }
    Ok(file)
}

/// One data element: its type, its payload and the byte offset of its tag.
struct Element<'a> {
    kind: u32,
    data: &'a [u8],
    offset: usize,
}

/// A cursor over consecutive data elements.
struct Elements<'a> {
    bytes: &'a [u8],
    /// The offset of `bytes` in the file (or in the inflated element), for messages.
    offset: usize,
    big_endian: bool,
}

impl<'a> Elements<'a> {
    fn u32_at(&self, at: usize) -> u32 {
        let word: [u8; 4] = self.bytes[at..at + 4].try_into().expect("4 bytes");
        if self.big_endian {
            u32::from_be_bytes(word)
        } else {
            u32::from_le_bytes(word)
        }
    }

    /// Reads the next element, in the normal (8-byte tag) or small (4-byte tag) format,
    /// and skips its padding to 8 bytes (compressed elements are not padded).
    fn next_element(&mut self) -> Result<Element<'a>, String> {
        let offset = self.offset;
        if self.bytes.len() < 8 {
            return Err(format!(
                "truncated: {} bytes at byte {offset} cannot hold an element tag",
                self.bytes.len()
            ));
        }
        let first = self.u32_at(0);
        let (kind, start, len, stride) = if first >> 16 != 0 {
            // Small data element: type and size share the first word, data in the second.
            let len = (first >> 16) as usize;
            if len > 4 {
                return Err(format!(
                    "small element at byte {offset} claims {len} bytes (at most 4)"
                ));
            }
            (first & 0xffff, 4, len, 8)
        } else {
            let len = self.u32_at(4) as usize;
            let padded = if first == MI_COMPRESSED {
                len
            } else {
                len.div_ceil(8) * 8
            };
            (first, 8, len, 8 + padded)
        };
        if start + len > self.bytes.len() {
            return Err(format!(
                "truncated: the element of type {kind} at byte {offset} declares {len} bytes but \
                 only {} remain",
                self.bytes.len() - start
            ));
        }
        let data = &self.bytes[start..start + len];
        let stride = stride.min(self.bytes.len());
        self.bytes = &self.bytes[stride..];
        self.offset += stride;
        Ok(Element { kind, data, offset })
    }
}

/// Inflates a compressed element: its inner tag first, then exactly the declared bytes,
/// so a corrupt size or a zip bomb cannot make it allocate more than is really there.
fn inflate(data: &[u8], offset: usize, big_endian: bool) -> Result<Vec<u8>, String> {
    let zlib_error = |e: std::io::Error| format!("zlib error in the element at byte {offset}: {e}");
    let mut decoder = ZlibDecoder::new(data);
    let mut tag = [0u8; 8];
    decoder.read_exact(&mut tag).map_err(zlib_error)?;
    let declared = u64::from(decode_u32s(&tag[4..8], big_endian)[0]);
    if declared > MAX_INFLATED_BYTES {
        return Err(format!(
            "the compressed element at byte {offset} declares {declared} bytes once inflated, \
             more than the {MAX_INFLATED_BYTES} this reader accepts"
        ));
    }
    let mut inflated = tag.to_vec();
    decoder
        .take(declared)
        .read_to_end(&mut inflated)
        .map_err(zlib_error)?;
    Ok(inflated)
}

/// Reads the sub-elements of an `miMATRIX`: `Some(array)` for a numeric class, `None`
/// (with the name) for a class this reader skips.
fn read_matrix(
    data: &[u8],
    offset: usize,
    big_endian: bool,
) -> Result<(String, Option<MatArray>), String> {
    let mut parts = Elements {
        bytes: data,
        offset,
        big_endian,
    };
    let bad = |what: &str| format!("the matrix at byte {offset}: {what}");
    let flags = parts.next_element()?;
    if flags.kind != MI_UINT32 || flags.data.len() != 8 {
        return Err(bad("array flags are not 8 bytes of miUINT32"));
    }
    let class = decode_u32s(flags.data, big_endian)[0] & 0xff;
    let dims_element = parts.next_element()?;
    if dims_element.kind != MI_INT32 || dims_element.data.len() % 4 != 0 {
        return Err(bad("dimensions are not miINT32"));
    }
    let dims: Vec<usize> = decode_u32s(dims_element.data, big_endian)
        .into_iter()
        .map(|d| d as i32)
        .map(|d| usize::try_from(d).map_err(|_| bad(&format!("negative dimension {d}"))))
        .collect::<Result<_, _>>()?;
    if dims.len() < 2 {
        return Err(bad(&format!(
            "{} dimensions (MATLAB writes at least 2)",
            dims.len()
        )));
    }
    let name_element = parts.next_element()?;
    if name_element.kind != MI_INT8 {
        return Err(bad("the array name is not miINT8"));
    }
    let name = String::from_utf8_lossy(name_element.data).into_owned();
    if !(6..=15).contains(&class) {
        return Ok((name, None));
    }
    let real = parts.next_element()?;
    let values = decode_numbers(real.kind, real.data, big_endian)
        .ok_or_else(|| bad(&format!("`{name}`: unsupported element type {}", real.kind)))?;
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad(&format!("`{name}`: dimensions {dims:?} overflow")))?;
    if values.len() != expected {
        return Err(bad(&format!(
            "`{name}`: dimensions {dims:?} need {expected} values but the real part holds {}",
            values.len()
        )));
    }
    // A complex array's imaginary part may follow; only the real part is kept.
    Ok((name, Some(MatArray { dims, values })))
}

fn decode_u32s(data: &[u8], big_endian: bool) -> Vec<u32> {
    data.chunks_exact(4)
        .map(|w| {
            let w: [u8; 4] = w.try_into().expect("4 bytes");
            if big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        })
        .collect()
}

/// Decodes numeric element `kind` into f64; `None` for a non-numeric type or a byte
/// count that is not a whole number of values.
fn decode_numbers(kind: u32, data: &[u8], big_endian: bool) -> Option<Vec<f64>> {
    macro_rules! decode {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            if !data.len().is_multiple_of(N) {
                return None;
            }
            data.chunks_exact(N)
                .map(|c| {
                    let c: [u8; N] = c.try_into().expect("element width");
                    let v = if big_endian {
                        <$t>::from_be_bytes(c)
                    } else {
                        <$t>::from_le_bytes(c)
                    };
                    v as f64
                })
                .collect()
        }};
    }
    Some(match kind {
        1 => decode!(i8),
        2 => decode!(u8),
        3 => decode!(i16),
        4 => decode!(u16),
        5 => decode!(i32),
        6 => decode!(u32),
        7 => decode!(f32),
        9 => decode!(f64),
        12 => decode!(i64),
        13 => decode!(u64),
        _ => return None,
    })
}
