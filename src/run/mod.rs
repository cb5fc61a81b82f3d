//! Running a pipeline: its config, one process (`augment`), a shard plan of many
//! workers and their merge (`plan`), and the artifacts built ahead of both (`index`).

pub mod augment;
pub mod config;
pub mod index;
pub mod plan;
