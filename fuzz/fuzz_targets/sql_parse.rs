//! The dialect parser on arbitrary text: see `sluice_fuzz::sql_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::sql_parse(data));
