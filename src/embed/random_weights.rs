//! Randomly initialised checkpoints for tests and benchmarks: no real weights can be
//! fetched here, so the loading code of each model is exercised on a safetensors file
//! whose tensor names and shapes come from candle's own model code.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::core::error::{Error, Result};

/// Writes `path` with every tensor that `register` asks a `VarBuilder` for, drawn from
/// `seed`: `fixed(name)` when it gives a value (layer-norm gains and biases), else
/// uniform within twice PyTorch's usual bound for matrices (so outputs depend on
/// inputs) and 0.02 for the rest.
pub fn write(
    path: &Path,
    seed: u64,
    register: impl FnOnce(VarBuilder) -> candle_core::Result<()>,
    fixed: impl Fn(&str) -> Option<f32>,
) -> Result<()> {
    let err = |e: candle_core::Error| Error::model(path, e);
    let shapes: BTreeMap<String, Vec<usize>> = {
        let varmap = VarMap::new();
        register(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).map_err(err)?;
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| Error::model(path, "variable map lock poisoned"))?;
        vars.iter()
            .map(|(name, var)| (name.clone(), var.dims().to_vec()))
            .collect()
    };
    // Sorted names, so the seed alone fixes every value.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = HashMap::new();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = match fixed(&name) {
            Some(value) => vec![value; n],
            None => {
                let bound = match shape.as_slice() {
                    [_, fan_in] => 2.0 * (3.0 / *fan_in as f32).sqrt(),
                    _ => 0.02,
                };
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            }
        };
        let tensor = Tensor::from_vec(values, shape, &Device::Cpu).map_err(err)?;
        tensors.insert(name, tensor);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    candle_core::safetensors::save(&tensors, path).map_err(err)
}
