//! The binary layout of cmcl's index artifacts (HNSW graphs, TF-IDF tables): an 8-byte
//! magic, a `u32` format version, little-endian fields, and a trailing FNV-1a checksum
//! of everything before it, so a truncated or damaged file is refused, never half-read.

/// 64-bit FNV-1a: a cheap checksum that catches truncation and bit rot.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_parts(&[bytes])
}

/// [`fnv1a64`] of the parts laid end to end, without joining them first.
pub fn fnv1a64_parts(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// Builds a file's bytes; [`Writer::finish`] appends the checksum.
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub fn new(magic: &[u8; 8], version: u32, capacity: usize) -> Writer {
        let mut bytes = Vec::with_capacity(capacity + 20);
        bytes.extend_from_slice(magic);
        bytes.extend_from_slice(&version.to_le_bytes());
        Writer { bytes }
    }

    pub fn u32(&mut self, word: u32) {
        self.bytes.extend_from_slice(&word.to_le_bytes());
    }

    pub fn u64(&mut self, word: u64) {
        self.bytes.extend_from_slice(&word.to_le_bytes());
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    pub fn u32s(&mut self, words: &[u32]) {
        for w in words {
            self.u32(*w);
        }
    }

    pub fn f32s(&mut self, xs: &[f32]) {
        for x in xs {
            self.u32(x.to_bits());
        }
    }

    /// Lengths and offsets, written as `u64` so files do not depend on the platform.
    pub fn usizes(&mut self, words: &[usize]) {
        for w in words {
            self.u64(*w as u64);
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        let sum = fnv1a64(&self.bytes);
        self.bytes.extend_from_slice(&sum.to_le_bytes());
        self.bytes
    }
}

/// Reads a file written by [`Writer`]; every read is bounds-checked.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Checks the magic, the version and the checksum; the error says which failed.
    pub fn open(bytes: &'a [u8], magic: &[u8; 8], version: u32) -> Result<Reader<'a>, String> {
        let name = String::from_utf8_lossy(magic);
        if bytes.len() < 8 + 4 + 8 || &bytes[..8] != magic {
            return Err(format!("no {name} header"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| "checksum".to_string())?);
        if fnv1a64(body) != sum {
            return Err("checksum mismatch (truncated or damaged)".into());
        }
        let mut reader = Reader { bytes: body, at: 8 };
        let found = reader.u32().ok_or("truncated")?;
        if found != version {
            return Err(format!("version {found}, this build reads {version}"));
        }
        Ok(reader)
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }

    pub fn u32s(&mut self, count: usize) -> Option<Vec<u32>> {
        let raw = self.take(count.checked_mul(4)?)?;
        Some(
            raw.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }

    pub fn f32s(&mut self, count: usize) -> Option<Vec<f32>> {
        Some(self.u32s(count)?.into_iter().map(f32::from_bits).collect())
    }

    pub fn usizes(&mut self, count: usize) -> Option<Vec<usize>> {
        let raw = self.take(count.checked_mul(8)?)?;
        raw.chunks_exact(8)
            .map(|c| usize::try_from(u64::from_le_bytes(c.try_into().ok()?)).ok())
            .collect()
    }

    /// Whether every byte before the checksum was read.
    pub fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let mut w = Writer::new(b"CMCLTEST", 3, 0);
        w.u32(7);
        w.usizes(&[1, 2, 300]);
        w.f32s(&[0.5, -1.25]);
        let bytes = w.finish();
        let mut r = Reader::open(&bytes, b"CMCLTEST", 3).unwrap();
        assert_eq!(r.u32(), Some(7));
        assert_eq!(r.usizes(3), Some(vec![1, 2, 300]));
        assert_eq!(r.f32s(2), Some(vec![0.5, -1.25]));
        assert!(r.at_end());
        assert!(r.u32().is_none());

        let err = |b: &[u8]| Reader::open(b, b"CMCLTEST", 3).err().unwrap();
        assert!(err(&bytes[..bytes.len() - 1]).contains("checksum"));
        let mut flipped = bytes.clone();
        flipped[14] ^= 1;
        assert!(err(&flipped).contains("checksum"));
        assert!(err(b"CMCLHNSW0000000000000").contains("header"));
        let newer = {
            let mut w = Writer::new(b"CMCLTEST", 4, 0);
            w.u32(7);
            w.finish()
        };
        assert!(err(&newer).contains("version 4, this build reads 3"));
    }
}
