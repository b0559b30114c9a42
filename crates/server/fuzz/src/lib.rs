//! The checks of the fuzz targets (`checks.rs`, also run over the seeds by the server's tests).

pub mod checks;
