//! Locks on a run folder, so two processes never write one file.

use std::fs::File;
use std::path::Path;

use super::layout::{part_lock, LOCK_FILE, PARTS_DIR};
use crate::core::error::{Error, Result};

/// Locks on the output folder, held for the life of a run. A whole run, a plan or a
/// merge holds `OUT/.lock` alone; the workers of a plan share it, each also holding its
/// part's own lock, so two workers never write one part.
pub struct OutputLock {
    _files: Vec<File>,
}

impl OutputLock {
    pub fn acquire(dir: &Path) -> Result<OutputLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let file = lock_file(
            &dir.join(LOCK_FILE),
            false,
            "another cmcl run is writing to this output folder; wait for it to finish",
        )?;
        Ok(OutputLock { _files: vec![file] })
    }

    pub fn acquire_part(dir: &Path, part: usize) -> Result<OutputLock> {
        let parts = dir.join(PARTS_DIR);
        std::fs::create_dir_all(&parts).map_err(|e| Error::io(&parts, e))?;
        let shared = lock_file(
            &dir.join(LOCK_FILE),
            true,
            "a whole run, a plan or a merge is using this output folder; wait for it to finish",
        )?;
        let own = lock_file(
            &part_lock(dir, part),
            false,
            "another worker is writing this part; wait for it to finish",
        )?;
        Ok(OutputLock {
            _files: vec![shared, own],
        })
    }
}

fn lock_file(path: &Path, shared: bool, busy: &str) -> Result<File> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let locked = match shared {
        true => file.try_lock_shared(),
        false => file.try_lock(),
    };
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(Error::io(path, std::io::Error::other(busy.to_string())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}
