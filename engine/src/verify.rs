//! `verify`: check a snapshot (`current/` or an archive) against its manifest.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::archive::{CheckedArchive, Limits};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsx::{self, FileDigest};
use crate::manifest::{self, Manifest};
use crate::plugin::runner::Runner;
use crate::progress::Progress;

/// What was verified and what is wrong with it.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// `current` or the archive's path.
    pub target: String,
    /// Files whose content was read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Whether the manifest has checksums (thrum's do not: only structure is checked).
    pub checksums: bool,
    /// The hash functions of those checksums (`blake3`, or `sha256` in older snapshots).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<&'static str>,
    /// Every mismatch found; empty means the snapshot verifies.
    pub problems: Vec<String>,
    /// What each plugin's own `verify` said.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verify `current/` (when `archive` is `None`) or an archive.
pub fn verify(
    ctx: &Context,
    archive: Option<&Path>,
    limits: &Limits,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    if !ctx.backup.exists() {
        return Err(Error::NotFound(format!(
            "no backups yet in {} (run `thrum-backup create`)",
            ctx.backup.root().display()
        )));
    }
    let (_lock, _) = crate::recovery::open(&ctx.backup, lock_timeout, false)?;
    match archive {
        None => {
            let mut report = verify_dir(&ctx.backup.current(), progress)?;
            verify_plugins(ctx, &ctx.backup.current(), &mut report);
            Ok(report)
        }
        Some(a) => {
            let path = ctx.backup.resolve_archive(a)?;
            // What is found wrong with an archive of the backup directory is remembered, so
            // that retention never counts it (crate::health).
            let ours = path.parent() == Some(ctx.backup.archives().as_path())
                && crate::retention::ArchiveName::parse(
                    &path.file_name().unwrap_or_default().to_string_lossy(),
                )
                .is_some();
            let report = verify_archive(&path, limits, progress);
            let problem = match &report {
                Ok(r) if !r.ok() => Some(r.problems.join("; ")),
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            if let (true, Some(why)) = (ours, problem) {
                crate::health::mark_damaged(&path, &format!("verify found: {why}"))?;
            }
            report
        }
    }
}

/// Ask each configured WASM plugin to check its own files in the snapshot `dir`.
fn verify_plugins(ctx: &Context, dir: &Path, report: &mut VerifyReport) {
    let runner = Runner::new(&ctx.workspace, &ctx.config.backup.plugins, None);
    for plugin in runner.wasm() {
        let folder = dir.join("plugins").join(&plugin.name);
        if !folder.is_dir() {
            continue;
        }
        match runner.verify(plugin, &folder) {
            Ok(o) => report.plugins.push(format!(
                "{}: ok{}",
                plugin.name,
                o.warnings
                    .iter()
                    .map(|w| format!("; warning: {w}"))
                    .collect::<String>()
            )),
            Err(e) => report
                .problems
                .push(format!("plugins/{}: {e}", plugin.name)),
        }
    }
}

/// Verify a snapshot directory.
pub fn verify_dir(dir: &Path, progress: &dyn Progress) -> Result<VerifyReport> {
    let manifest = manifest::read_dir(dir)?.ok_or_else(|| {
        Error::NotFound(format!(
            "{}: no manifest.json: not a complete snapshot",
            dir.display()
        ))
    })?;
    let files = fsx::walk_files(dir)?;
    let total = files
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    progress.phase("verifying", Some(total));
    let algorithm_of = algorithms(&manifest);
    let data: Vec<(String, fsx::Algorithm)> = files
        .into_iter()
        .filter(|f| f != manifest::FILE_NAME)
        .map(|f| {
            let a = algorithm_of(&f);
            (f, a)
        })
        .collect();
    let digests = fsx::digest_files(dir, &data, &mut |n| progress.advance(n))?;
    Ok(compare("current".into(), &manifest, &digests))
}

/// Verify an archive file.
pub fn verify_archive(
    path: &Path,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let mut archive = CheckedArchive::open(path, limits)?;
    let manifest = archive.manifest()?.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no manifest.json in the archive",
            path.display()
        ))
    })?;
    let mut digests = archive.digest_all(&algorithms(&manifest), progress)?;
    digests.remove(manifest::FILE_NAME);
    Ok(compare(path.display().to_string(), &manifest, &digests))
}

/// Which hash function to read each file with: the one its manifest entry names (BLAKE3 for
/// files it does not list, which are reported as such anyway).
fn algorithms(m: &Manifest) -> impl Fn(&str) -> fsx::Algorithm + use<> {
    let by_path: BTreeMap<String, fsx::Algorithm> = m
        .files
        .iter()
        .map(|f| (f.path.clone(), f.checksum.algorithm()))
        .collect();
    move |path| by_path.get(path).copied().unwrap_or(fsx::Algorithm::Blake3)
}

fn compare(target: String, m: &Manifest, digests: &BTreeMap<String, FileDigest>) -> VerifyReport {
    let mut problems = Vec::new();
    if m.has_checksums() {
        let listed: BTreeMap<&str, &manifest::FileEntry> =
            m.files.iter().map(|f| (f.path.as_str(), f)).collect();
        for (path, entry) in &listed {
            match digests.get(*path) {
                None => problems.push(format!("{path}: missing")),
                Some(d) if d.size != entry.size => problems.push(format!(
                    "{path}: size {} but the manifest says {}",
                    d.size, entry.size
                )),
                Some(d) if d.checksum != entry.checksum => problems.push(format!(
                    "{path}: {} does not match the manifest",
                    entry.checksum.algorithm().name()
                )),
                Some(_) => {}
            }
        }
        for path in digests.keys() {
            if !listed.contains_key(path.as_str()) {
                problems.push(format!("{path}: not listed in the manifest"));
            }
        }
    } else if let Some(d) = digests.get("events.jsonl")
        && d.lines != m.counts.events
    {
        problems.push(format!(
            "events.jsonl: {} lines but the manifest counts {}",
            d.lines, m.counts.events
        ));
    }
    VerifyReport {
        target,
        files: digests.len() as u64,
        bytes: digests.values().map(|d| d.size).sum(),
        checksums: m.has_checksums(),
        algorithms: {
            let mut names: Vec<&'static str> = m
                .files
                .iter()
                .map(|f| f.checksum.algorithm().name())
                .collect();
            names.sort_unstable();
            names.dedup();
            names
        },
        problems,
        plugins: Vec::new(),
    }
}
