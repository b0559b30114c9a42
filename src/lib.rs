//! The library side of the `twofold` package: what tools beside the binary share with it.
//! Today that is the master key files, which the load-test seeder (`crates/bench`) must create
//! exactly as the server does, so that the server can open the secrets it sealed.

pub mod master_key;
