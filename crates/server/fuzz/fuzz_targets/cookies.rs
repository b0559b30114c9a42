//! See `checks::cookies`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| twofold_server_fuzz::checks::cookies(data));
