//! The bottom layer: what every other layer speaks. Errors, input records and the
//! corpus, the samples stages produce, atomic file writes, the binary layout of index
//! files, fault points for the kill tests, files inside tar archives, and progress bars. Imports nothing of cmcl.

pub mod binfile;
pub mod error;
pub mod fault;
pub mod fs;
pub mod progress;
pub mod record;
pub mod sample;
pub mod tar;
