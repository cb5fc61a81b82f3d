//! Files inside tar archives, read in place: webdataset shards keep their images in
//! tars, and unpacking millions of them to disk would double the data. A member is
//! named `ARCHIVE.tar#MEMBER` wherever a file path is expected (a record's
//! `image_path`), and [`read_path`] reads such a name or a plain file alike.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::core::error::{Error, Result};

/// What separates the archive from the member in a member's name.
const SEPARATOR: &str = ".tar#";

/// One regular file of an archive: where its bytes start and how many there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// The regular files of an archive, in archive order, from its headers alone.
#[derive(Debug)]
pub struct TarIndex {
    pub path: PathBuf,
    pub members: Vec<Member>,
    /// Why the scan stopped before the end-of-archive marker (an unreadable header, a
    /// member cut off by the end of the file); the members before it are usable.
    pub damage: Option<String>,
    by_name: HashMap<String, usize>,
}

impl TarIndex {
    /// Reads every header of the archive at `path`, seeking over the members' bytes.
    pub fn scan(path: &Path) -> Result<TarIndex> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let length = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut archive = tar::Archive::new(file);
        let mut members = Vec::new();
        let mut damage = None;
        let entries = archive
            .entries_with_seek()
            .map_err(|e| Error::io(path, e))?;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    damage = Some(format!(
                        "unreadable header after {} members: {e}",
                        members.len()
                    ));
                    break;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = match entry.path() {
                Ok(p) => p.to_string_lossy().into_owned(),
                Err(e) => {
                    damage = Some(format!("unreadable member name: {e}"));
                    break;
                }
            };
            let (offset, size) = (entry.raw_file_position(), entry.size());
            // A cut-off archive ends without a marker, so the reader just stops; only
            // the sizes in the headers tell that bytes are missing.
            if offset + size > length {
                damage = Some(format!(
                    "truncated: member {name} needs bytes up to {} but the file has {length}",
                    offset + size
                ));
                break;
            }
            members.push(Member { name, offset, size });
        }
        let by_name = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
            damage,
            by_name,
        })
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.by_name.get(name).map(|&i| &self.members[i])
    }

    /// The first `limit` bytes of `member` (all of them when it is shorter).
    pub fn read(&self, member: &Member, limit: u64) -> Result<Vec<u8>> {
        let fail = |e| Error::io(self.location(&member.name), e);
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        file.seek(SeekFrom::Start(member.offset)).map_err(fail)?;
        let mut bytes = Vec::with_capacity(member.size.min(limit) as usize);
        file.take(member.size.min(limit))
            .read_to_end(&mut bytes)
            .map_err(fail)?;
        Ok(bytes)
    }

    /// The name of `member` of this archive as a path (see the module docs).
    pub fn location(&self, member: &str) -> PathBuf {
        PathBuf::from(member_path(&self.path, member))
    }
}

/// `ARCHIVE#MEMBER`, the name of a member wherever a path is expected.
pub fn member_path(archive: &Path, member: &str) -> String {
    format!("{}#{member}", archive.display())
}

/// The archive and member of a name made by [`member_path`]; `None` for a plain path.
pub fn split_member_path(path: &str) -> Option<(&Path, &str)> {
    let at = path.rfind(SEPARATOR)? + SEPARATOR.len() - 1;
    Some((Path::new(&path[..at]), &path[at + 1..]))
}

/// The bytes of a file, or of an archive member named as [`member_path`] makes it. An
/// archive's index is read once per process and kept, so reading many members costs
/// one scan of its headers.
pub fn read_path(path: &Path) -> Result<Vec<u8>> {
    let text = path.to_string_lossy();
    let Some((archive, member)) = split_member_path(&text) else {
        return std::fs::read(path).map_err(|e| Error::io(path, e));
    };
    let index = cached_index(archive)?;
    let found = index
        .member(member)
        .ok_or_else(|| Error::input(path, 0, format!("no member {member:?} in the archive")))?;
    index.read(found, u64::MAX)
}

/// The index of `archive`, scanned on first use and kept for the process: ingest and
/// every image reader share one scan.
pub fn cached_index(archive: &Path) -> Result<Arc<TarIndex>> {
    static INDEXES: OnceLock<Mutex<HashMap<PathBuf, Arc<TarIndex>>>> = OnceLock::new();
    let indexes = INDEXES.get_or_init(Default::default);
    let lock = || {
        indexes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    if let Some(index) = lock().get(archive) {
        return Ok(Arc::clone(index));
    }
    // Scanned outside the lock: other archives need not wait for this one.
    let index = Arc::new(TarIndex::scan(archive)?);
    Ok(Arc::clone(
        lock().entry(archive.to_path_buf()).or_insert(index),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
        let mut builder = tar::Builder::new(File::create(path).unwrap());
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, bytes.as_slice())
                .unwrap();
        }
        builder.finish().unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Every member reads back as written, long names (GNU extension headers)
        /// included, through its index and through its member path.
        #[test]
        fn members_read_back_as_written(
            sizes in proptest::collection::vec(0usize..3000, 1..6),
            long in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("shard.tar");
            let members: Vec<(String, Vec<u8>)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let stem = if long { "x".repeat(120) } else { String::new() };
                    let bytes = (0..n).map(|b| (b * 31 + i) as u8).collect();
                    (format!("{stem}{i:05}.jpg"), bytes)
                })
                .collect();
            write_tar(&path, &members);
            let index = TarIndex::scan(&path).unwrap();
            prop_assert_eq!(index.damage.as_deref(), None);
            prop_assert_eq!(index.members.len(), members.len());
            for (name, bytes) in &members {
                let found = index.member(name).unwrap();
                prop_assert_eq!(&index.read(found, u64::MAX).unwrap(), bytes);
                prop_assert_eq!(&index.read(found, 10).unwrap()[..], &bytes[..bytes.len().min(10)]);
                let named = member_path(&path, name);
                prop_assert_eq!(&read_path(Path::new(&named)).unwrap(), bytes);
            }
        }
    }

    #[test]
    fn a_cut_off_archive_keeps_its_whole_members_and_says_where_it_broke() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.tar");
        let members: Vec<(String, Vec<u8>)> = (0..3)
            .map(|i| (format!("{i}.txt"), vec![b'a'; 2000]))
            .collect();
        write_tar(&path, &members);
        let bytes = std::fs::read(&path).unwrap();
        // Into the third member's data: 3 x (512 header + 2048 data) blocks, minus 1000.
        std::fs::write(&path, &bytes[..3 * 2560 - 1000]).unwrap();
        let index = TarIndex::scan(&path).unwrap();
        assert_eq!(index.members.len(), 2);
        let damage = index.damage.unwrap();
        assert!(damage.contains("truncated: member 2.txt"), "{damage}");
    }

    #[test]
    fn member_paths_split_at_the_last_archive() {
        assert_eq!(
            split_member_path("/d/a.tar/b.tar#000001.jpg"),
            Some((Path::new("/d/a.tar/b.tar"), "000001.jpg"))
        );
        assert_eq!(split_member_path("/d/img#1.jpg"), None);
        let err = read_path(Path::new("/nonexistent/x.tar#1.jpg")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.tar"), "{err}");
    }
}
