//! See `checks::json_bodies`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| twofold_server_fuzz::checks::json_bodies(data));
