//! config.json parsing: any bytes are an error or a config; a config that loads saves and
//! reloads to the same typed view, keeping every other key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thrum_backup::config::ThrumConfig;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.json"), data).expect("write");
    if let Ok(cfg) = ThrumConfig::load(dir.path()) {
        std::fs::write(dir.path().join("config.json"), cfg.render()).expect("write");
        let again = ThrumConfig::load(dir.path()).expect("a rendered config loads");
        assert_eq!(again.backup, cfg.backup);
        assert_eq!(again.local_only, cfg.local_only);
    }
});
