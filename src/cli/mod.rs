//! The `cmcl` subcommands, one function each (`run` on its arguments). Library errors
//! are typed; here they become `anyhow` reports with context.

pub mod corpus;
pub mod inspect;
pub mod parse;
pub mod pipeline;
pub mod train;

use std::path::PathBuf;

use anyhow::Context;

use cmcl::run::config::Pipeline;

/// What a pipeline run needs: the pipeline, where it writes, and how it runs.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Pipeline TOML file.
    #[arg(long)]
    pub pipeline: PathBuf,
    /// Output folder [default: out/<pipeline name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads [default: all cores]. Output bytes do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Hide the progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

impl RunArgs {
    /// The loaded pipeline and its output folder, with the thread pool sized.
    pub fn start(&self) -> anyhow::Result<(Pipeline, PathBuf)> {
        let p = Pipeline::load(&self.pipeline)?;
        p.check_image_inputs(&self.pipeline)?;
        // Sized here, as rayon itself would (RAYON_NUM_THREADS, else the cores), so that
        // `kernels_single_threaded` may then change the variable for candle alone.
        let threads = self.threads.unwrap_or_else(|| {
            std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        });
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting up the thread pool")?;
        let out_dir = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("out").join(&p.name));
        Ok((p, out_dir))
    }
}
