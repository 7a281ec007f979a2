//! Torch storages: their element types, their raw little-endian bytes decoded to f32,
//! and the (offset, size, stride) views tensors take of them.

use std::io::{self, Read};

use half::{bf16, f16};

/// The element type of a torch storage (the tensor's dtype before Petal turns it into
/// f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.float16` (`HalfStorage`).
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`).
    BF16,
    /// `torch.float64` (`DoubleStorage`).
    F64,
    /// `torch.int64` (`LongStorage`), e.g. batch norms' `num_batches_tracked`.
    I64,
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int16` (`ShortStorage`).
    I16,
    /// `torch.int8` (`CharStorage`).
    I8,
    /// `torch.uint8` (`ByteStorage`).
    U8,
    /// `torch.bool` (`BoolStorage`).
    Bool,
}

impl Dtype {
    /// The dtype of a `torch.<name>` global: a storage class (`FloatStorage`) or a dtype
    /// (`float32`, `half`, ...).
    pub(crate) fn from_torch_name(name: &str) -> Option<Dtype> {
        Some(match name {
            "FloatStorage" | "float32" | "float" => Dtype::F32,
            "HalfStorage" | "float16" | "half" => Dtype::F16,
            "BFloat16Storage" | "bfloat16" => Dtype::BF16,
            "DoubleStorage" | "float64" | "double" => Dtype::F64,
            "LongStorage" | "int64" | "long" => Dtype::I64,
            "IntStorage" | "int32" | "int" => Dtype::I32,
            "ShortStorage" | "int16" | "short" => Dtype::I16,
            "CharStorage" | "int8" => Dtype::I8,
            "ByteStorage" | "uint8" => Dtype::U8,
            "BoolStorage" | "bool" => Dtype::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    /// Whether the values are floating point (integers become f32 exactly up to 2^24).
    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
    }

    /// One element's little-endian bytes (`bytes.len() == self.size()`) as f32.
    fn decode(self, b: &[u8]) -> f32 {
        let array = |n: usize| {
            let mut a = [0u8; 8];
            a[..n].copy_from_slice(&b[..n]);
            a
        };
        match self {
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F16 => f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::F64 => f64::from_le_bytes(array(8)) as f32,
            Dtype::I64 => i64::from_le_bytes(array(8)) as f32,
            Dtype::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            Dtype::I8 => b[0] as i8 as f32,
            Dtype::U8 | Dtype::Bool => b[0] as f32,
        }
    }
}

/// Reads exactly `elements` values of `dtype` from `reader` as f32, a chunk at a time
/// (never holding the raw bytes of the whole storage). The caller bounds `elements` by
/// the bytes its file has, as the values are allocated up front.
pub(crate) fn read_storage(
    reader: &mut impl Read,
    dtype: Dtype,
    elements: usize,
) -> io::Result<Vec<f32>> {
    const CHUNK_ELEMENTS: usize = 16 * 1024;
    let mut values = Vec::with_capacity(elements);
    let mut chunk = vec![0u8; CHUNK_ELEMENTS * dtype.size()];
    let mut left = elements;
    while left > 0 {
        let n = left.min(CHUNK_ELEMENTS);
        let bytes = &mut chunk[..n * dtype.size()];
        reader.read_exact(bytes)?;
        values.extend(bytes.chunks_exact(dtype.size()).map(|b| dtype.decode(b)));
        left -= n;
    }
    Ok(values)
}

/// A tensor's view of its storage: `element(index) = storage[offset + Σ index_k stride_k]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Elements of the storage before the tensor's first.
    pub offset: usize,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// Storage elements between neighbours along each axis.
    pub stride: Vec<usize>,
}

impl View {
    /// The number of storage elements the view reaches (one past its last element), or
    /// `None` when that overflows; 0 for an empty tensor.
    pub fn extent(&self) -> Option<usize> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        self.shape
            .iter()
            .zip(&self.stride)
            .try_fold(self.offset, |end, (&size, &stride)| {
                end.checked_add((size - 1).checked_mul(stride)?)
            })?
            .checked_add(1)
    }

    /// Whether the view is the whole storage of `len` elements, in order.
    pub fn is_whole(&self, len: usize) -> bool {
        let mut expected = 1;
        for (&size, &stride) in self.shape.iter().zip(&self.stride).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected *= size;
        }
        self.offset == 0 && expected == len
    }

    /// The view's elements in row-major order; the caller has checked
    /// `extent() <= storage.len()`.
    pub fn gather(&self, storage: &[f32]) -> Vec<f32> {
        let count: usize = self.shape.iter().product();
        let mut values = Vec::with_capacity(count);
        if count == 0 {
            return values;
        }
        let mut index = vec![0usize; self.shape.len()];
        let mut position = self.offset;
        for _ in 0..count {
            values.push(storage[position]);
            // Advance the multi-index like an odometer, last axis fastest.
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                position += self.stride[axis];
                if index[axis] < self.shape[axis] {
                    break;
                }
                position -= self.stride[axis] * self.shape[axis];
                index[axis] = 0;
            }
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_gather_strided_elements() {
        let storage: Vec<f32> = (0..10).map(|v| v as f32).collect();
        // A transposed 2x3 starting at 1: rows step 1, columns step 2.
        let view = View {
            offset: 1,
            shape: vec![2, 3],
            stride: vec![1, 2],
        };
        assert_eq!(view.extent(), Some(7));
        assert_eq!(view.gather(&storage), vec![1., 3., 5., 2., 4., 6.]);
        assert!(!view.is_whole(10));
        let whole = View {
            offset: 0,
            shape: vec![2, 5],
            stride: vec![5, 1],
        };
        assert!(whole.is_whole(10));
        assert_eq!(whole.gather(&storage), storage);
        let scalar = View {
            offset: 4,
            shape: vec![],
            stride: vec![],
        };
        assert_eq!(
            (scalar.extent(), scalar.gather(&storage)),
            (Some(5), vec![4.])
        );
    }

    #[test]
    fn storages_decode_every_dtype() {
        let mut bytes: &[u8] = &[0x00, 0x3c, 0x00, 0xc0];
        assert_eq!(
            read_storage(&mut bytes, Dtype::F16, 2).unwrap(),
            vec![1.0, -2.0]
        );
        let mut bytes: &[u8] = &[0x80, 0x3f];
        assert_eq!(read_storage(&mut bytes, Dtype::BF16, 1).unwrap(), vec![1.0]);
        let mut bytes: &[u8] = &(-3i64).to_le_bytes();
        assert_eq!(read_storage(&mut bytes, Dtype::I64, 1).unwrap(), vec![-3.0]);
        let mut short: &[u8] = &[0, 0];
        assert!(read_storage(&mut short, Dtype::F32, 1).is_err());
    }
}
