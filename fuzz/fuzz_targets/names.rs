//! Entry-name checks and archive-name parsing: an accepted entry name never escapes; a parsed
//! archive name formats back to itself.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use thrum_backup::archive::check_entry_name;
use thrum_backup::retention::ArchiveName;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = check_entry_name(data) {
        assert!(
            Path::new(&name)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        );
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Some(a) = ArchiveName::parse(s)
    {
        assert_eq!(ArchiveName::format(a.time, a.seq), s);
    }
});
