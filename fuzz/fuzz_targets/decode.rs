//! Record framing and decoding on arbitrary bytes: see `sluice_fuzz::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::decode(data));
