//! Arbitrary requests to a real engine: see `sluice_fuzz::PlanHarness`.
#![no_main]

use std::sync::OnceLock;

use sluice_fuzz::PlanHarness;

/// One engine per process: building one per input would cost more than the input.
static HARNESS: OnceLock<PlanHarness> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| HARNESS.get_or_init(PlanHarness::new).run(data));
