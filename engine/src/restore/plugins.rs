//! WebAssembly plugins put their files back: through the sandbox into private staging, then,
//! once every one of a plugin's files is known to be committable, into the restore's plan.
//!
//! A plugin writes only below its `write` grants, and the host checks the names it writes.
//! What the host cannot see is the live workspace they land in: a committed symbolic link
//! (`.beads/up -> ..`) would lead a write outside the grant, a folder where a file goes, or a
//! name too long for the restore's temporary names, would fail the whole commit. So each
//! target is checked against the live tree first, without following any link; a plugin with
//! one file that fails the check is not restored at all, and says why.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::layout::Planned;
use crate::config::PluginEntry;
use crate::context::Context;
use crate::error::Result;
use crate::fsx;
use crate::manifest::Manifest;
use crate::plugin::runner::Runner;
use crate::progress::{Cancel, Progress};

/// Longest file name a restore target may have: its temporary and set-aside names
/// (`.<name>.restore-tmp-xxxxxxxx`) must fit the 255 bytes of a file name.
const MAX_NAME: usize = 255 - ".restore-tmp-00000000".len() - 1;

/// Run every configured WebAssembly plugin's `restore`, and add what each put back to `plan`.
/// Returns a line per plugin restored.
#[allow(clippy::too_many_arguments)]
pub(crate) fn restore(
    ctx: &Context,
    src: &Path,
    work: &Path,
    manifest: &Manifest,
    plan: &mut Vec<Planned>,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<String>> {
    let ws = &ctx.workspace;
    let mut results = Vec::new();
    // The live config's plugins; on a workspace that has none yet (a new machine, a lost
    // config), those of the config the snapshot holds: it is the user's, and each
    // component is still checked against its pin.
    let has_wasm =
        |plugins: &[PluginEntry]| plugins.iter().any(|p| matches!(p, PluginEntry::Wasm(_)));
    let snapshot_config;
    let mut entries = ctx.config.backup.plugins.as_slice();
    if !has_wasm(entries)
        && let Ok(config) = crate::config::ThrumConfig::load(&src.join("config"))
    {
        snapshot_config = config;
        entries = &snapshot_config.backup.plugins;
    }
    let runner = Runner::new(ws, entries, Some(manifest.timestamp));
    for plugin in runner.wasm() {
        let folder = src.join("plugins").join(&plugin.name);
        if !folder.is_dir() {
            continue;
        }
        cancel.check()?;
        progress.phase(&format!("restoring plugin {}", plugin.name), None);
        let out = work.join("plugin-restore").join(&plugin.name);
        fsx::create_dir_all(&out)?;
        let outcome = match runner.restore(plugin, &folder, &out) {
            Ok(o) => o,
            Err(e) => {
                notes.push(format!("plugin {} was not restored: {e}", plugin.name));
                continue;
            }
        };
        let taken: BTreeSet<PathBuf> = plan.iter().map(|p| p.target.clone()).collect();
        let mut planned = Vec::new();
        let mut refused = None;
        for (rel, _) in &outcome.files {
            if let Err(why) = committable(&ws.repo_root, rel, &taken) {
                refused = Some(why);
                break;
            }
            let target = ws.repo_root.join(rel);
            let mode = fsx::mode_of(&target).unwrap_or(0o644);
            planned.push(Planned {
                target: target.clone(),
                source: Some(out.join(rel)),
                mode,
                dir_mode: None,
            });
            if super::db::is_sqlite(&out.join(rel)) {
                for side in ["-wal", "-shm"] {
                    let t = fsx::with_suffix(&target, side);
                    if t.exists() {
                        planned.push(Planned {
                            target: t,
                            source: None,
                            mode,
                            dir_mode: None,
                        });
                    }
                }
            }
        }
        match refused {
            Some(why) => notes.push(format!(
                "plugin {} was not restored: {why}; nothing of it was written, and thrum's data was restored",
                plugin.name
            )),
            None => {
                plan.extend(planned);
                results.push(format!(
                    "plugin {}: {} files",
                    plugin.name,
                    outcome.files.len()
                ));
            }
        }
    }
    Ok(results)
}

/// Whether the file `rel` (a plugin's output, relative to the repository) can be put in place
/// without leaving the repository or failing the commit: no component of its path in the live
/// tree is a symbolic link (not even the grant's root) or a file where a folder must be, the
/// target itself is not a folder, every name fits the restore's temporary names, and nothing
/// else of the restore writes it.
pub(crate) fn committable(
    repo_root: &Path,
    rel: &str,
    taken: &BTreeSet<PathBuf>,
) -> std::result::Result<(), String> {
    let rel_path = Path::new(rel);
    let parts: Vec<&std::ffi::OsStr> = rel_path
        .components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(format!("{rel}: not a plain relative path")),
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut at = repo_root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        if part.len() > MAX_NAME {
            return Err(format!(
                "{rel}: the name {:?} is longer than {MAX_NAME} bytes",
                part.to_string_lossy()
            ));
        }
        at.push(part);
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() && !last => {
                return Err(format!(
                    "{rel}: {} is a symbolic link in the workspace: a write through it could land outside the plugin's grant",
                    at.strip_prefix(repo_root).unwrap_or(&at).display()
                ));
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(format!(
                    "{rel}: {} is a file in the workspace, where the plugin put a folder",
                    at.strip_prefix(repo_root).unwrap_or(&at).display()
                ));
            }
            Ok(m) if last && m.is_dir() => {
                return Err(format!(
                    "{rel}: a folder in the workspace, where the plugin put a file"
                ));
            }
            Ok(_) => {}
            // Nothing further down exists: the folders are made fresh, links cannot be there.
            Err(_) => break,
        }
    }
    if taken.contains(&repo_root.join(rel_path)) {
        return Err(format!("{rel}: also restored from the snapshot's own data"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_files_folders_and_long_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.join(".beads/sub")).unwrap();
        std::fs::write(root.join(".beads/issues.jsonl"), "{}\n").unwrap();
        std::os::unix::fs::symlink("..", root.join(".beads/up")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join(".beads/out")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join(".linked")).unwrap();
        let none = BTreeSet::new();
        for (rel, why) in [
            (".beads/up/.thrum/config.json", "symbolic link"),
            (".beads/out/x", "symbolic link"),
            (".linked/x", "symbolic link"),
            (".beads/issues.jsonl/x", "is a file"),
            (".beads/sub", "a folder"),
            (&format!(".beads/{}", "a".repeat(236)), "longer than"),
        ] {
            let err = committable(root, rel, &none).unwrap_err();
            assert!(err.contains(why), "{rel}: {err}");
        }
        committable(root, ".beads/issues.jsonl", &none).unwrap();
        committable(root, ".beads/new/deeper/file", &none).unwrap();
        let taken = BTreeSet::from([root.join(".beads/issues.jsonl")]);
        assert!(committable(root, ".beads/issues.jsonl", &taken).is_err());
    }
}
