//! Manifest parsing: any bytes; a manifest that parses re-serializes and parses to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thrum_backup::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_slice(data) {
        let again = Manifest::from_slice(&m.to_vec()).expect("a written manifest parses");
        assert_eq!(again, m);
    }
});
