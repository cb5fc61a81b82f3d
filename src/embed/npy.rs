//! NumPy `.npy` files of 2-D arrays: read little-endian `f2`/`f4`/`f8` (clip-retrieval
//! writes `f2`, most tools `f4`) and `i4` (indices, exact below 2^24) as `f32`, and write
//! `f4`. Version 1-3 headers, C order only.

use std::io::Write;
use std::path::Path;

use crate::core::error::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A row-major matrix of `rows` x `cols`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Reads a 2-D float `.npy` file (a 1-D one is one row).
pub fn read(path: &Path) -> Result<Matrix> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |message: String| Error::input(path, 0, message);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!(".npy version {v} is not supported"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or non-UTF-8 .npy header".into()))?;
    let field = |name: &str| -> Option<&str> {
        let at = header.find(&format!("'{name}'"))? + name.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr")
        .and_then(|d| d.strip_prefix('\'')?.split('\'').next())
        .ok_or_else(|| bad(format!("no dtype in header {header:?}")))?;
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad(
            "Fortran-ordered arrays are not supported; save with C order".into(),
        ));
    }
    let shape: Vec<usize> = field("shape")
        .and_then(|s| s.strip_prefix('(')?.split(')').next())
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::parse)
                .collect::<std::result::Result<_, _>>()
        })
        .and_then(|r| r.ok())
        .ok_or_else(|| bad(format!("no shape in header {header:?}")))?;
    let (rows, cols) = match shape[..] {
        [n] => (1, n),
        [r, c] => (r, c),
        _ => return Err(bad(format!("shape {shape:?}: expected 2 dimensions"))),
    };
    let width = match descr {
        "<f2" => 2,
        "<f4" | "<i4" => 4,
        "<f8" => 8,
        other => {
            return Err(bad(format!(
                "dtype {other}: expected little-endian float16/32/64 or int32 (<f2, <f4, <f8, <i4)"
            )))
        }
    };
    let body = &bytes[start + header_len..];
    let expected = rows * cols * width;
    if body.len() != expected {
        return Err(bad(format!(
            "shape ({rows}, {cols}) of {descr} needs {expected} data bytes, the file has {}",
            body.len()
        )));
    }
    let data = match width {
        2 => body
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        4 if descr == "<i4" => body
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        4 => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
    };
    Ok(Matrix { rows, cols, data })
}

/// Writes `data` (`rows` x `cols`) as a version-1 `<f4` `.npy` file, atomically.
pub fn write(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Data starts on a 64-byte boundary, as NumPy writes it.
    let padding = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(padding));
    header.push('\n');
    crate::core::fs::write_atomic(path, |w| {
        let io = |e| Error::io(path, e);
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&[1, 0]).map_err(io)?;
        w.write_all(&(header.len() as u16).to_le_bytes())
            .map_err(io)?;
        w.write_all(header.as_bytes()).map_err(io)?;
        for x in data {
            w.write_all(&x.to_le_bytes()).map_err(io)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_other_float_widths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        write(&path, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        let m = read(&path).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.row(1), [4.0, 5.0, -6.5]);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 3 * 2 * 4) % 64, 0);

        // float16 as clip-retrieval writes it: 1.0 = 0x3c00, -2.0 = 0xc000.
        let header = "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }\n";
        let mut f16 = MAGIC.to_vec();
        f16.extend([1, 0]);
        f16.extend((header.len() as u16).to_le_bytes());
        f16.extend(header.as_bytes());
        f16.extend([0x00, 0x3c, 0x00, 0xc0]);
        std::fs::write(&path, &f16).unwrap();
        assert_eq!(read(&path).unwrap().data, [1.0, -2.0]);

        f16.pop();
        std::fs::write(&path, &f16).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("m.npy") && err.contains("data bytes"), "{err}");
        std::fs::write(&path, b"not numpy").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("magic"));
    }
}
