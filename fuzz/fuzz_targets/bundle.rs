//! Plugin bundle reading: any bytes, as a `.tbp`, must be refused with an error or yield parts
//! whose checksums hold, never panic. (The component check that follows is wasmtime's.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::Digest as _;
use thrum_backup::plugin::bundle::Parts;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in.tbp");
    std::fs::write(&path, data).expect("write");
    if let Ok(parts) = Parts::read(&path) {
        // Whatever was accepted lists a component whose checksum the reader verified.
        assert!(parts.manifest.files.contains_key("plugin.wasm"));
        assert_eq!(parts.manifest.format, thrum_backup::plugin::bundle::FORMAT);
        let sha = hex::encode(sha2::Sha256::digest(parts.component()));
        assert_eq!(Some(&sha), parts.manifest.files.get("plugin.wasm"));
    }
});
