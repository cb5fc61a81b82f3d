//! Vectors from content: the MiniLM text encoder and the image embedders (pixel
//! descriptor, CLIP, precomputed vectors), plus the `.npy` reader and the tiny random
//! models tests build. Imports `core` and `index` (vector normalisation).

pub mod bert;
pub mod image;
pub mod npy;
pub mod random_weights;
pub mod text;
