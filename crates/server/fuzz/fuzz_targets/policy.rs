//! See `checks::policy`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| twofold_server_fuzz::checks::policy(data));
