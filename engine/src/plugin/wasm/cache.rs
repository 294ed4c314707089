//! The compiled-component cache: compile each component once, keep the native artifact on
//! disk, and load it without recompiling (0.2 ms instead of 50 ms to seconds).
//!
//! The key is the BLAKE3 of the component bytes, our version and the engine's configuration;
//! the artifact's own BLAKE3 is stored beside it and checked before use, so a file whose key
//! or content does not match is never loaded (it is rebuilt instead). (Both were SHA-256 at
//! first: 0.4 of a warm start's 0.8 ms went to hashing; BLAKE3 takes a tenth of that.)
//!
//! Artifacts are large (a Python or JavaScript component's is tens of MB) and every new
//! component, version of this program or cache key makes a new one, so the cache is swept:
//! a load refreshes its artifact's modification time (at most daily), and whenever a new
//! artifact is written, those not used for [`UNUSED_FOR`] are removed.
//!
//! Kept ours rather than wasmtime's own cache (its `cache` feature): a warm start here is
//! 0.5-1 ms (`bench`: "plugin start, warm"), each artifact's BLAKE3 is checked before the
//! `unsafe` load, and only a folder this user owns is used. wasmtime's cache has not been
//! measured against it; it would have to match those three to replace it.

// Deserializing a compiled artifact is `unsafe` in wasmtime: it trusts the file to be one it
// produced. This module is the only place that does it; see `load` for why it is sound.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where artifacts live: `$THRUM_BACKUP_CACHE_DIR`, else `$XDG_CACHE_HOME/thrum-backup`, else
/// `~/.cache/thrum-backup`. `None` disables the cache.
pub fn dir() -> Option<PathBuf> {
    let base = std::env::var_os("THRUM_BACKUP_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("thrum-backup"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/thrum-backup"))
        })?;
    let dir = base.join("components");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .ok()?;
    }
    private(&dir).then_some(dir)
}

/// Whether only this user can change what is in `dir`: the BLAKE3 beside an artifact proves
/// it was not damaged, not who wrote it, and a loaded artifact is native code. A folder that
/// another user owns or can write (or whose parent is so) is not used; components are then
/// compiled each time.
fn private(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    [Some(dir), dir.parent()].into_iter().flatten().all(|d| {
        std::fs::metadata(d).is_ok_and(|m| {
            let sticky = m.mode() & 0o1000 != 0;
            (m.uid() == me || m.uid() == 0) && (m.mode() & 0o022 == 0 || (sticky && d != dir))
        })
    }) && std::fs::metadata(dir).is_ok_and(|m| m.uid() == me)
}

fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut h = blake3::Hasher::new();
    h.update(bytes);
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(&engine_hash.finish().to_le_bytes());
    h.finalize().to_hex().to_string()
}

/// Load a component, from the cache in `dir` when a verified artifact is there (no cache
/// when `dir` is `None`).
pub fn load(engine: &Engine, bytes: &[u8], dir: Option<PathBuf>) -> wasmtime::Result<Component> {
    let Some(dir) = dir else {
        return Component::new(engine, bytes);
    };
    let key = key(engine, bytes);
    let artifact = dir.join(format!("{key}.cwasm"));
    let sum = dir.join(format!("{key}.blake3"));
    if let (Ok((file, data)), Ok(expected)) = (read(&artifact), std::fs::read_to_string(&sum))
        && blake3::hash(&data).to_hex().as_str() == expected.trim()
    {
        // SAFETY: `data` is an artifact this engine configuration serialized (its name is
        // keyed by the component's BLAKE3, our version and the engine's compatibility hash)
        // and its content matches the BLAKE3 we recorded when we wrote it, in our own cache
        // directory. wasmtime also checks the engine compatibility header and refuses a
        // mismatch with an error, in which case we recompile.
        if let Ok(component) = unsafe { Component::deserialize(engine, &data) } {
            mark_used(&file);
            return Ok(component);
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Ok(serialized) = component.serialize() {
        let digest = blake3::hash(&serialized).to_hex();
        let _ = crate::fsx::write_atomic(&artifact, &serialized)
            .and_then(|_| crate::fsx::write_atomic(&sum, digest.as_bytes()));
        sweep(&dir, SystemTime::now());
    }
    Ok(component)
}

/// Artifacts not loaded for this long are removed when a new one is written.
pub const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// How stale an artifact's modification time may be before a load refreshes it: a warm
/// start need not write to the disk every time.
const MARK_USED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The file at `path`, still open, and its bytes.
fn read(path: &Path) -> std::io::Result<(File, Vec<u8>)> {
    let mut file = File::open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok((file, data))
}

/// Record that the artifact open as `file` was used, by its modification time. Best effort.
fn mark_used(file: &File) {
    let now = SystemTime::now();
    let stale = file
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > MARK_USED_AFTER));
    if stale {
        let _ = file.set_modified(now);
    }
}

/// The cache's files in `dir` are `<key>.cwasm`, its checksum `<key>.blake3` (`<key>.sha256`
/// before), and `.<name>.tmp-<nonce>` while one is written. Remove the artifacts (with their
/// checksums) last used more than [`UNUSED_FOR`] before `now`, and temporary files as old
/// (a write cut short). Other files are left alone. Best effort: a process loading a removed
/// artifact has already read it; one writing an artifact writes a fresh temporary file.
fn sweep(dir: &Path, now: SystemTime) {
    let old = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age > UNUSED_FOR);
    let mut last_used: HashMap<String, SystemTime> = HashMap::new();
    let mut kept = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((key, temporary)) = cache_file(&name) else {
            continue;
        };
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if temporary {
            if old(modified) {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        let used = last_used.entry(key.to_owned()).or_insert(modified);
        *used = (*used).max(modified);
        kept.push((key.to_owned(), entry.path()));
    }
    for (key, path) in kept {
        if old(last_used[&key]) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The key of one of the cache's own file names, and whether it is a temporary file.
fn cache_file(name: &str) -> Option<(&str, bool)> {
    let (hidden, name) = match name.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let (key, rest) = name.split_once('.')?;
    let (ext, temporary) = match rest.split_once(".tmp-") {
        Some((ext, _)) if hidden => (ext, true),
        None if !hidden => (rest, false),
        _ => return None,
    };
    let ours = matches!(ext, "cwasm" | "blake3" | "sha256")
        && key.len() == 64
        && key.bytes().all(|b| b.is_ascii_hexdigit());
    ours.then_some((key, temporary))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one artifact in `dir` and its bytes, which must match the checksum beside it.
    fn stored_whole(dir: &Path) -> (PathBuf, Vec<u8>) {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        let path = found.remove(0);
        let bytes = std::fs::read(&path).unwrap();
        let sum = std::fs::read_to_string(path.with_extension("blake3")).unwrap();
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), sum);
        (path, bytes)
    }

    #[test]
    fn damaged_artifacts_are_rebuilt_never_loaded() {
        let engine = &super::super::runtime().unwrap().engine;
        let bytes = crate::plugin::presets::component("beads").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = || Some(dir.path().to_path_buf());
        load(engine, bytes, cache()).unwrap();
        let (path, good) = stored_whole(dir.path());

        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x5a;
        let damages = [flipped, good[..good.len() / 2].to_vec(), Vec::new()];
        for damaged in damages {
            std::fs::write(&path, &damaged).unwrap();
            let component = load(engine, bytes, cache()).unwrap();
            assert!(
                component
                    .component_type()
                    .exports(engine)
                    .any(|(name, _)| name.starts_with("thrum:backup/exporter@"))
            );
            // Compiled again and stored whole: the damaged file was not the one loaded.
            assert_ne!(stored_whole(dir.path()).1, damaged);
        }

        // A checksum that does not match a whole artifact also means: compile again.
        std::fs::write(path.with_extension("blake3"), "0".repeat(64)).unwrap();
        load(engine, bytes, cache()).unwrap();
        stored_whole(dir.path());
    }

    fn set_modified(path: &Path, t: SystemTime) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    fn modified(path: &Path) -> SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn a_cache_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("components");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(private(&dir));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!private(&dir));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!private(&dir));
    }

    #[test]
    fn artifacts_unused_for_a_month_are_swept_when_another_is_written() {
        let engine = &super::super::runtime().unwrap().engine;
        let bytes = crate::plugin::presets::component("beads").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let long_ago = now - UNUSED_FOR - Duration::from_secs(3600);
        let (stale, legacy, used) = ("a".repeat(64), "c".repeat(64), "b".repeat(64));
        let files = [
            (format!("{stale}.cwasm"), long_ago, false),
            (format!("{stale}.blake3"), long_ago, false),
            (format!("{legacy}.cwasm"), long_ago, false),
            (format!("{legacy}.sha256"), long_ago, false),
            (format!(".{stale}.cwasm.tmp-0badc0de"), long_ago, false),
            // Used lately: its checksum is as old as it was written, the artifact was loaded.
            (format!("{used}.cwasm"), now, true),
            (format!("{used}.blake3"), long_ago, true),
            (format!(".{used}.cwasm.tmp-12345678"), now, true),
            // Not the cache's: left alone however old.
            ("notes.txt".to_owned(), long_ago, true),
            ("abc.cwasm".to_owned(), long_ago, true),
            (format!("{stale}.cwasm.tmp-0badc0de"), long_ago, true),
        ];
        for (name, t, _) in &files {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            set_modified(&path, *t);
        }
        load(engine, bytes, Some(dir.path().to_path_buf())).unwrap();
        for (name, _, kept) in &files {
            assert_eq!(dir.path().join(name).exists(), *kept, "{name}");
        }
        let new = dir.path().join(format!("{}.cwasm", key(engine, bytes)));
        assert!(new.is_file());

        // A load from the cache marks its artifact used, so that it is not swept.
        set_modified(&new, long_ago);
        load(engine, bytes, Some(dir.path().to_path_buf())).unwrap();
        assert!(modified(&new) >= now);
        sweep(dir.path(), SystemTime::now());
        assert!(new.is_file());
        // The sweep itself goes by the time it is given.
        sweep(dir.path(), SystemTime::now() + UNUSED_FOR * 2);
        assert!(!new.exists());
        assert!(dir.path().join("notes.txt").exists());
    }
}
