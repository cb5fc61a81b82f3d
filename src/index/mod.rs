//! Nearest-neighbour search: HNSW over dense vectors. Imports only `core`.

pub mod hnsw;
