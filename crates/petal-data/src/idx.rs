//! The IDX format of MNIST: a magic number, big-endian dimensions, then unsigned bytes.
//!
//! Files may be gzip-compressed (detected by the `1f 8b` magic) or raw.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{DataError, Result};

/// The IDX type code of unsigned bytes, the only element type MNIST uses.
const TYPE_U8: u8 = 0x08;
/// Refuse files that claim more elements than this, before allocating anything.
const MAX_ELEMENTS: usize = 1 << 31;
/// Deflate's largest expansion: one compressed byte never stands for more than about
/// 1032 bytes (a run of 258 bytes per 2-bit code, within whole blocks), so a gzip file
/// cannot unpack to more than this many times its own size.
const GZIP_MAX_RATIO: u64 = 1032;
/// How many times its size a file's data is first assumed to unpack to; the buffer grows
/// past that only as the bytes actually arrive.
const FIRST_GUESS_RATIO: u64 = 8;

/// An opened file, gunzipped when it is gzip, with the most bytes it can deliver.
pub(crate) struct Opened {
    /// The file's bytes, unpacked if they were gzip.
    pub reader: Box<dyn Read>,
    /// The size of the file on disk.
    pub file_len: u64,
    /// Whether the file is gzip.
    pub gzip: bool,
}

impl Opened {
    /// The most bytes `reader` can deliver: the file's size, or its size times gzip's
    /// largest expansion.
    pub fn max_len(&self) -> u64 {
        if self.gzip {
            self.file_len.saturating_mul(GZIP_MAX_RATIO)
        } else {
            self.file_len
        }
    }
}

/// The content of an IDX file of unsigned bytes: its dimensions and row-major data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first, e.g. `[60000, 28, 28]`.
    pub dims: Vec<usize>,
    /// The `dims.iter().product()` bytes in row-major order.
    pub data: Vec<u8>,
}

/// Opens `path` for reading, transparently gunzipping it when it starts with `1f 8b`.
pub(crate) fn open_maybe_gz(path: &Path) -> Result<Opened> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, "opening", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| DataError::io(path, "reading the size of", e))?
        .len();
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| DataError::io(path, "reading", e))?;
    let head = io::Cursor::new(magic[..n].to_vec());
    let reader = BufReader::new(head.chain(file));
    let gzip = magic[..n] == [0x1f, 0x8b];
    let reader: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    Ok(Opened {
        reader,
        file_len,
        gzip,
    })
}

/// Reads into `buf` until it is full or the stream ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads an IDX file of unsigned bytes, gzip-compressed or raw.
///
/// The header must be `00 00 08 <ndims>` with 1 to 4 dimensions, and the data must hold
/// exactly the product of the dimensions: a truncated file or trailing bytes are errors.
/// Dimensions that describe more bytes than the file can hold (its size, or for gzip its
/// size times deflate's largest expansion, about 1032) are refused before anything is
/// unpacked, and the data buffer grows only as bytes arrive.
///
/// ```
/// use petal_data::idx::{read_idx, write_idx, IdxArray};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("labels-idx1-ubyte.gz");
/// let labels = IdxArray { dims: vec![3], data: vec![5, 0, 4] };
/// write_idx(&path, &labels, true)?;
/// assert_eq!(read_idx(&path)?, labels);
/// # Ok::<(), petal_data::DataError>(())
/// ```
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let read_err = |e| DataError::io(path, "reading", e);
    let opened = open_maybe_gz(path)?;
    let (file_len, gzip, max_len) = (opened.file_len, opened.gzip, opened.max_len());
    let mut reader = opened.reader;

    let mut magic = [0u8; 4];
    let n = read_up_to(&mut reader, &mut magic).map_err(read_err)?;
    if n < 4 {
        return Err(DataError::format(
            path,
            format!("file ends inside the 4-byte IDX magic number ({n} bytes)"),
        ));
    }
    if magic[..2] != [0, 0] {
        return Err(DataError::format(
            path,
            format!(
                "not an IDX file: the magic number must start with 00 00, found {:02x} {:02x}",
                magic[0], magic[1]
            ),
        ));
    }
    if magic[2] != TYPE_U8 {
        return Err(DataError::format(
            path,
            format!(
                "IDX element type 0x{:02x} is not supported, only unsigned bytes (0x08)",
                magic[2]
            ),
        ));
    }
    let ndims = usize::from(magic[3]);
    if !(1..=4).contains(&ndims) {
        return Err(DataError::format(
            path,
            format!("the IDX header declares {ndims} dimensions, expected 1 to 4"),
        ));
    }

    let mut dim_bytes = [0u8; 16];
    let dim_bytes = &mut dim_bytes[..4 * ndims];
    let n = read_up_to(&mut reader, dim_bytes).map_err(read_err)?;
    if n < dim_bytes.len() {
        return Err(DataError::format(
            path,
            format!(
                "file ends inside the IDX header: {ndims} dimensions need {} bytes, found {n}",
                dim_bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            DataError::format(
                path,
                format!("dimensions {dims:?} describe more than 2^31 elements; refusing to read"),
            )
        })?;

    let header_len = 4 + 4 * ndims as u64;
    let can_hold = max_len.saturating_sub(header_len);
    if expected as u64 > can_hold {
        let kind = if gzip { "gzip" } else { "raw" };
        return Err(DataError::format(
            path,
            format!(
                "dimensions {dims:?} describe {expected} bytes, more than this {file_len}-byte {kind} file can hold (at most {can_hold}): it is truncated or its header is wrong"
            ),
        ));
    }
    let first_guess = file_len.saturating_mul(FIRST_GUESS_RATIO);
    let mut data =
        Vec::with_capacity(expected.min(usize::try_from(first_guess).unwrap_or(usize::MAX)));
    (&mut reader)
        .take(expected as u64)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() < expected {
        return Err(DataError::format(
            path,
            format!(
                "truncated: expected {expected} bytes of data after the header (dimensions {dims:?}), found {}",
                data.len()
            ),
        ));
    }
    let trailing = io::copy(&mut reader, &mut io::sink()).map_err(read_err)?;
    if trailing > 0 {
        return Err(DataError::format(
            path,
            format!(
                "{trailing} unexpected bytes after the {expected} bytes of data that dimensions {dims:?} describe"
            ),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Writes `array` as an IDX file of unsigned bytes, gzip-compressed when `gzip` is true.
///
/// Fails when `array.data` does not hold exactly the product of `array.dims`, or when
/// there are not 1 to 4 dimensions or one does not fit in 32 bits.
pub fn write_idx(path: impl AsRef<Path>, array: &IdxArray, gzip: bool) -> Result<()> {
    let path = path.as_ref();
    let invalid =
        |reason: String| DataError::invalid("write_idx", format!("{}: {reason}", path.display()));
    if !(1..=4).contains(&array.dims.len()) {
        return Err(invalid(format!(
            "{} dimensions, expected 1 to 4",
            array.dims.len()
        )));
    }
    if array.dims.iter().product::<usize>() != array.data.len() {
        return Err(invalid(format!(
            "dimensions {:?} do not hold {} bytes",
            array.dims,
            array.data.len()
        )));
    }
    let mut header = vec![0, 0, TYPE_U8, array.dims.len() as u8];
    for &d in &array.dims {
        let d = u32::try_from(d).map_err(|_| invalid(format!("dimension {d} exceeds u32")))?;
        header.extend_from_slice(&d.to_be_bytes());
    }
    let write = || -> io::Result<()> {
        let mut file = BufWriter::new(File::create(path)?);
        if gzip {
            let mut gz = GzEncoder::new(file, Compression::default());
            gz.write_all(&header)?;
            gz.write_all(&array.data)?;
            file = gz.finish()?;
        } else {
            file.write_all(&header)?;
            file.write_all(&array.data)?;
        }
        file.flush()
    };
    write().map_err(|e| DataError::io(path, "writing", e))
}
