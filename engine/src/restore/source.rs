//! The first step of a restore: a source checked completely before the workspace is touched.
//!
//! `current/` must match its manifest; an archive is read defensively (names, types, sizes,
//! ratios, overlaps), extracted into private space with every file's CRC, size and checksum
//! checked, and must list nothing it lacks. Then, for either: the snapshot must be of this
//! workspace (unless forced), every JSON Lines file must pass the one rule of a restore, and
//! a database newer than the installed thrum opens is refused (unless forced).

use std::path::{Path, PathBuf};

use super::filter::Filter;
use super::{RestoreOptions, Source};
use crate::archive::CheckedArchive;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsx;
use crate::manifest::{self, Manifest};
use crate::progress::{Cancel, Progress};
use crate::snapshot::DB_PATH;

/// A snapshot, checked, in a folder the restore reads from.
pub(crate) struct Checked {
    /// The snapshot's files: `current/`, or the archive extracted into private space (for a
    /// partial restore, only what it may put back).
    pub dir: PathBuf,
    /// Every file of the snapshot, extracted or not.
    pub paths: Vec<String>,
    pub manifest: Manifest,
    /// `current` or the archive's path, as reports and errors name it.
    pub label: String,
    /// Warnings of the checks (a torn last line the checksum vouches for).
    pub notes: Vec<String>,
}

/// Check `opts.source` completely; an archive is extracted below `work`.
pub(crate) fn open(
    ctx: &Context,
    opts: &RestoreOptions,
    work: &Path,
    filter: Option<&Filter>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Checked> {
    let mut paths = None;
    let (dir, manifest, label) = match &opts.source {
        Source::Current => open_current(ctx, progress)?,
        Source::Archive(arg) => {
            let path = ctx.backup.resolve_archive(arg)?;
            let (dir, manifest, all) =
                extract_archive(&path, opts, work, filter, progress, cancel)?;
            paths = Some(all);
            (dir, manifest, path.display().to_string())
        }
        Source::Replica { entry, snapshot } => {
            fetch_replica(ctx, entry, snapshot.as_deref(), work, progress)?
        }
    };
    if !opts.force {
        ctx.check_same_workspace(&manifest, &label)?;
    }
    let notes = check_jsonl_tree(&dir, &manifest, &label)?;
    check_schema(&dir, &manifest, opts.force)?;
    cancel.check()?;
    let paths = match paths {
        Some(p) => p,
        None => fsx::walk_files(&dir)?,
    };
    Ok(Checked {
        paths,
        dir,
        manifest,
        label,
        notes,
    })
}

/// The manifest of `current/`, or why there is none to restore.
pub(crate) fn current_manifest(ctx: &Context) -> Result<Manifest> {
    let current = ctx.backup.current();
    manifest::read_dir(&current)?.ok_or_else(|| {
        Error::NotFound(format!(
            "no complete snapshot in {} (run `thrum-backup create`, or name an archive)",
            current.display()
        ))
    })
}

fn open_current(ctx: &Context, progress: &dyn Progress) -> Result<(PathBuf, Manifest, String)> {
    let current = ctx.backup.current();
    let m = current_manifest(ctx)?;
    let report = crate::verify::verify_dir(&current, progress)?;
    if !report.ok() {
        return Err(Error::Invalid(format!(
            "current/ does not match its manifest: {}",
            report.problems.join("; ")
        )));
    }
    Ok((current, m, "current".to_owned()))
}

/// Fetch a replica's snapshot into `work/source` and check every file against the manifest
/// it carries (sizes and checksums): what a replica gives back is trusted no more than an
/// archive.
fn fetch_replica(
    ctx: &Context,
    entry: &crate::config::ReplicaEntry,
    snapshot: Option<&str>,
    work: &Path,
    progress: &dyn Progress,
) -> Result<(PathBuf, Manifest, String)> {
    progress.phase(&format!("fetching from replica {}", entry.name), None);
    let dest = work.join("source");
    fsx::create_dir_all(&dest)?;
    let mut replica = crate::replica::Replica::open(entry, &ctx.workspace.thrum_dir, false)?;
    let snap = replica.fetch(snapshot, &dest, progress)?;
    let label = format!("replica {} snapshot {}", entry.name, snap.id);
    let m = manifest::read_dir(&dest)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{label}: no manifest.json: not a thrum-backup snapshot"
        ))
    })?;
    let report = crate::verify::verify_dir(&dest, progress)?;
    if !report.ok() {
        return Err(Error::Invalid(format!(
            "{label} does not match its manifest: {}",
            report.problems.join("; ")
        )));
    }
    Ok((dest, m, label))
}

fn extract_archive(
    path: &Path,
    opts: &RestoreOptions,
    work: &Path,
    filter: Option<&Filter>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(PathBuf, Manifest, Vec<String>)> {
    let mut archive = CheckedArchive::open(path, &opts.limits)?;
    let m = archive.manifest()?;
    let expected = Manifest::expected(m.as_ref());
    let all: Vec<String> = archive.entries().iter().map(|e| e.path.clone()).collect();
    let keep = |p: &str| filter.is_none_or(|f| f.extracts(p, &all));
    let extracted = work.join("source");
    fsx::create_dir_all(&extracted)?;
    let digests = archive.extract_some(&extracted, &expected, &keep, progress, cancel)?;
    if let Some(listed) = expected
        .keys()
        .find(|k| keep(k) && !digests.contains_key(*k))
    {
        return Err(Error::Invalid(format!(
            "{}: {listed} is listed in the manifest but missing from the archive",
            path.display()
        )));
    }
    let m = m.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no manifest.json: not a thrum backup archive",
            path.display()
        ))
    })?;
    Ok((extracted, m, all))
}

/// The one JSON Lines rule of a restore ([`crate::jsonl`]): a file whose bytes the manifest's
/// checksum vouches for (checked before this) goes back exactly as it was captured, torn last
/// line included, with a warning naming the file and line; a file without a checksum to trust
/// (thrum's own archives) must hold one JSON value per line, or the restore is refused.
///
/// A vouched file of a snapshot whose manifest says every JSON Lines file was checked when
/// it was taken (`jsonl_checked`) is not read again: its bytes are the ones checked then, so
/// what the manifest's `jsonl` says of it is what a check would find.
pub fn check_jsonl_tree(root: &Path, manifest: &Manifest, label: &str) -> Result<Vec<String>> {
    let vouched: std::collections::BTreeSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).collect();
    let mut notes = Vec::new();
    for rel in fsx::walk_files(root)? {
        if !crate::jsonl::is_jsonl(&rel) {
            continue;
        }
        let shown = format!("{label}: {rel}");
        let is_vouched = vouched.contains(rel.as_str());
        let issue = if manifest.jsonl_checked && is_vouched {
            manifest
                .jsonl
                .iter()
                .find(|i| i.path == rel)
                .map(|i| crate::jsonl::Issue {
                    path: shown.clone(),
                    line: i.line,
                    problem: i.problem.clone(),
                })
        } else {
            crate::jsonl::check_file(&root.join(&rel), 0, 1, &shown)?
        };
        let Some(issue) = issue else {
            continue;
        };
        if is_vouched {
            notes.push(format!(
                "{issue}: restored exactly as it was backed up (its checksum matches)"
            ));
        } else {
            return Err(Error::Jsonl {
                path: PathBuf::from(shown),
                line: issue.line,
                message: issue.problem,
            });
        }
    }
    Ok(notes)
}

/// Refuse a database whose schema is newer than the installed thrum opens (thrum refuses to
/// start on it), unless forced. Without a `thrum` on PATH there is nothing to compare with.
fn check_schema(src: &Path, manifest: &Manifest, force: bool) -> Result<()> {
    let db = src.join(DB_PATH);
    if force || !db.is_file() || manifest.database.is_none() {
        return Ok(());
    }
    let Some(snapshot_schema) = crate::thrumd::schema_version(&db) else {
        return Ok(());
    };
    let Some(version) = crate::thrumd::installed_thrum_version() else {
        return Ok(());
    };
    match crate::thrumd::schema_of_release(&version) {
        Some(max) if snapshot_schema > max => Err(Error::Invalid(format!(
            "the snapshot's database has schema version {snapshot_schema}, newer than the installed thrum {version} opens ({max}): upgrade thrum first, or pass --force"
        ))),
        _ => Ok(()),
    }
}
