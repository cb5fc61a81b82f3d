//! Named kill points for the fault-injection tests (tests/faults.rs). With
//! `CMCL_FAULT=NAME:N` in its environment, the process sends itself SIGKILL the N-th
//! time it reaches the point NAME; without it, a point is one relaxed atomic load.
//!
//! Points: `ingested`, `stages_built`, `stage.<name>` (before a stage augments a shard),
//! `temp_written` (a file complete in its temp name, before the rename), `renamed` (just
//! after), `shard_done` (a shard written, before its record is saved).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The variable that arms a point.
pub const VARIABLE: &str = "CMCL_FAULT";

struct Armed {
    name: String,
    at: u64,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(VARIABLE).ok()?;
            let (name, at) = value.rsplit_once(':')?;
            Some(Armed {
                name: name.to_string(),
                at: at.parse().ok()?,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Dies here when this is the armed point's N-th visit.
pub fn point(name: &str) {
    let Some(armed) = armed() else { return };
    if armed.name != name || armed.seen.fetch_add(1, Ordering::Relaxed) + 1 != armed.at {
        return;
    }
    kill_self();
}

/// [`point`] `stage.<name>`, without building the name unless a point is armed.
pub fn stage(name: &str) {
    if let Some(armed) = armed() {
        if armed.name.strip_prefix("stage.") == Some(name) {
            point(&armed.name);
        }
    }
}

fn kill_self() -> ! {
    #[cfg(unix)]
    // SAFETY: kill(2) on our own pid with a valid signal has no memory effects.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}
