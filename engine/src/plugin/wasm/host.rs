//! The host side of a plugin call: the sandbox's WASI context and the `host` interface.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::thrum::backup::{host, types};
use super::limits::Limiter;
use super::{STDIO_CAP, Setting};
use crate::config::{Grant, PluginLimits, WasmPlugin};

/// Which export a call runs, and the folders it works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `backup`.
    Backup {
        /// The snapshot's `plugins/<name>/`, where its files go.
        out: PathBuf,
    },
    /// `restore`.
    Restore {
        /// The private staging folder its files go to (confined to its `write` grants).
        out: PathBuf,
        /// Its earlier output, mounted read-only at `/backup`.
        backup: PathBuf,
    },
    /// `verify`: no output.
    Verify {
        /// Its earlier output, mounted read-only at `/backup`.
        backup: PathBuf,
    },
}

/// What a store serves: `describe` alone (nothing mounted, no output), or a call (preceded by
/// `describe` on the same instance).
#[derive(Debug, Clone)]
pub enum Phase {
    Describe,
    Call(Call),
}

/// Output files a plugin may hold open at once.
pub const MAX_OPEN_FILES: usize = 64;

/// A file the plugin is writing.
pub struct OutputHandle {
    rel: String,
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<std::io::BufWriter<File>>,
}

impl Drop for OutputHandle {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Per-call host state.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    stdio: MemoryOutputPipe,
    pub limiter: Limiter,
    pub limits: PluginLimits,
    phase: Phase,
    repo_root: PathBuf,
    reads: Vec<(String, PathBuf)>,
    writes: Vec<String>,
    execs: Vec<String>,
    written: u64,
    /// Files finished: path relative to the output root, size.
    pub files: Vec<(String, u64)>,
    /// Files finished and renamed into place but not yet fsynced (see [`Self::sync_finished`]).
    unsynced: Vec<PathBuf>,
    /// Log lines (bounded).
    pub log: Vec<String>,
    /// A sandbox or limit violation that stopped the plugin.
    pub violation: Option<String>,
    /// Raised when the call was abandoned past its deadline: every host call is refused.
    pub abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// When the call's deadline falls (host waits, such as a locked database, end there).
    pub deadline: std::time::Instant,
    /// Names written so far (each name once).
    written_names: std::collections::HashSet<String>,
    /// Output files open now.
    open_files: usize,
    /// What the host saw that the user should know (hard links in a read grant).
    pub host_warnings: Vec<String>,
}

/// Files below `dir` (the read grant `grant`) with more than one name: a hard link cannot be
/// told from the file it links, which may lie outside the grant (or outside the repository),
/// so the plugin may read content the grant does not name. Reported, not refused: a copy made
/// with `cp -al` is one too. At most the first 10 000 entries are looked at.
fn hard_links(dir: &Path, grant: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut linked = Vec::new();
    let mut seen = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            seen += 1;
            if seen > 10_000 {
                break;
            }
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && m.nlink() > 1 {
                let rel = e.path();
                let rel = rel.strip_prefix(dir).unwrap_or(&rel);
                linked.push(format!("{grant}/{}", rel.display()));
            }
        }
    }
    (!linked.is_empty()).then(|| {
        format!(
            "{} file(s) in read:{grant} have another name (a hard link), whose content the plugin can read wherever that name lies: {}",
            linked.len(),
            linked.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )
    })
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    pub fn new(
        phase: Phase,
        plugin: Option<&WasmPlugin>,
        setting: &Setting,
        limits: PluginLimits,
    ) -> Result<Self, String> {
        let stdio = MemoryOutputPipe::new(STDIO_CAP);
        let mut b = WasiCtxBuilder::new();
        b.stdout(stdio.clone()).stderr(stdio.clone());
        b.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // Plugins run synchronously on the calling thread: a file read or write blocks it
        // directly instead of going through a thread pool and back for every 64 KiB.
        b.allow_blocking_current_thread(true);
        let repo_root = setting
            .repo_root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", setting.repo_root.display()))?;
        let grants: &[Grant] = plugin.map_or(&[], |p| &p.grants);
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        let mut execs = Vec::new();
        for g in grants {
            match g {
                Grant::Read(p) => reads.push(p.clone()),
                Grant::Write(p) => writes.push(p.clone()),
                Grant::Exec(p) => execs.push(p.clone()),
            }
        }
        let mut mounted = Vec::new();
        let mut host_warnings = Vec::new();
        if !matches!(phase, Phase::Describe) {
            for p in &reads {
                let host_path = repo_root.join(p);
                // A grant root reached through a link (even one that stays in the repository:
                // `notes -> .git`) would show what the grant does not name.
                let mut at = repo_root.clone();
                for part in Path::new(p).components() {
                    at.push(part);
                    if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                        return Err(format!(
                            "grant read:{p}: {} is a symbolic link: refused (grant the folder it points to instead)",
                            at.strip_prefix(&repo_root).unwrap_or(&at).display()
                        ));
                    }
                }
                let Ok(real) = host_path.canonicalize() else {
                    continue; // nothing there: the plugin sees it missing
                };
                if !real.starts_with(&repo_root) {
                    return Err(format!(
                        "grant read:{p} leads outside the repository (to {}): refused",
                        real.display()
                    ));
                }
                if real.is_dir() {
                    b.preopened_dir(&real, format!("/repo/{p}"), FsPerms::ReadOnly)
                        .map_err(|e| format!("cannot mount {}: {e}", real.display()))?;
                    host_warnings.extend(hard_links(&real, p));
                }
                mounted.push((p.clone(), real));
            }
        }
        match &phase {
            Phase::Call(Call::Restore { backup, .. } | Call::Verify { backup })
                if backup.is_dir() =>
            {
                b.preopened_dir(backup, "/backup", FsPerms::ReadOnly)
                    .map_err(|e| format!("cannot mount {}: {e}", backup.display()))?;
            }
            _ => {}
        }
        Ok(Self {
            wasi: b.build(),
            table: ResourceTable::new(),
            stdio,
            limiter: Limiter::new((limits.memory_mib << 20) as usize),
            limits,
            phase,
            repo_root,
            reads: mounted,
            writes,
            execs,
            written: 0,
            files: Vec::new(),
            unsynced: Vec::new(),
            log: Vec::new(),
            violation: None,
            abandoned: Default::default(),
            deadline: std::time::Instant::now() + Duration::from_secs(limits.timeout_secs),
            written_names: Default::default(),
            open_files: 0,
            host_warnings,
        })
    }

    /// Refuse every host call once the call was abandoned past its deadline.
    fn check_live(&self) -> wasmtime::Result<()> {
        if self.abandoned.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(wasmtime::Error::msg(
                "the plugin call was abandoned past its deadline",
            ));
        }
        Ok(())
    }

    /// Count one more file written, within `limits.max_files`.
    fn count_file(&mut self) -> wasmtime::Result<()> {
        let done = self.files.len() + self.open_files;
        if done as u64 >= self.limits.max_files {
            let msg = format!(
                "file limit of {} reached (limits.max_files)",
                self.limits.max_files
            );
            self.violation = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        if self.open_files >= MAX_OPEN_FILES {
            let msg = format!("more than {MAX_OPEN_FILES} output files open at once");
            self.violation = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(())
    }

    /// The last bytes the guest printed (its panic message, typically).
    pub fn stdio_tail(&self) -> String {
        let bytes = self.stdio.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let start = text.char_indices().rev().nth(499).map_or(0, |(i, _)| i);
        text[start..].replace('\n', " | ")
    }

    /// Remove temp files of outputs the guest never finished.
    pub fn discard_unfinished(&mut self) {
        // Dropping the table drops every remaining handle (see `OutputHandle::drop`).
        self.table = ResourceTable::new();
    }

    /// Make every finished file durable, with the folders they were renamed into, once the
    /// call has returned: fsyncs issued together cost about one journal commit, where one per
    /// file as it was finished cost one each (3 of the beads preset's 6 ms on a real
    /// `bd backup`). Nothing reads the output before this returns.
    pub fn sync_finished(&mut self) -> Result<(), String> {
        let mut paths = std::mem::take(&mut self.unsynced);
        let mut dirs: Vec<PathBuf> = paths
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        paths.extend(dirs);
        crate::fsx::sync_paths(&paths).map_err(|e| e.to_string())
    }

    fn output_target(&self, rel: &str) -> Result<PathBuf, String> {
        let rel = crate::archive::check_entry_name(rel.as_bytes())
            .map_err(|m| format!("{rel:?}: {m}"))?;
        let out = match &self.phase {
            Phase::Call(Call::Backup { out }) => out,
            Phase::Call(Call::Restore { out, .. }) => {
                let allowed = self
                    .writes
                    .iter()
                    .any(|w| rel == *w || rel.starts_with(&format!("{w}/")));
                if !allowed {
                    return Err(format!(
                        "{rel:?} is outside the plugin's write grants ({})",
                        if self.writes.is_empty() {
                            "none".to_owned()
                        } else {
                            self.writes.join(", ")
                        }
                    ));
                }
                out
            }
            Phase::Describe | Phase::Call(Call::Verify { .. }) => {
                return Err("no output during describe or verify".into());
            }
        };
        if self.written_names.contains(&rel) {
            return Err(format!("{rel:?} was already written"));
        }
        Ok(out.join(rel))
    }

    fn charge(&mut self, bytes: u64) -> wasmtime::Result<()> {
        let cap = self.limits.output_mib << 20;
        if self.written + bytes > cap {
            let msg = format!(
                "output limit of {} MiB reached (limits.output_mib)",
                self.limits.output_mib
            );
            self.violation = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        self.written += bytes;
        Ok(())
    }

    /// Map a guest path `/repo/<p>/...` inside a read grant to the host.
    fn guest_to_host(&self, guest: &str) -> Result<PathBuf, String> {
        let rel = guest
            .strip_prefix("/repo/")
            .ok_or_else(|| format!("{guest:?} is not under /repo/"))?;
        let rel = crate::archive::check_entry_name(rel.as_bytes())
            .map_err(|m| format!("{guest:?}: {m}"))?;
        let (_, root) = self
            .reads
            .iter()
            .find(|(p, _)| rel == *p || rel.starts_with(&format!("{p}/")))
            .ok_or_else(|| format!("{guest:?} is outside the plugin's read grants"))?;
        let host = self.repo_root.join(&rel);
        let real = host.canonicalize().map_err(|e| format!("{guest}: {e}"))?;
        if !real.starts_with(root) {
            return Err(format!("{guest:?} leads outside its grant: refused"));
        }
        Ok(real)
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        if self.log.len() < 200 {
            let line: String = message.chars().take(1000).collect();
            self.log
                .push(format!("{level:?}: {line}").to_lowercase().replacen(
                    &line.to_lowercase(),
                    &line,
                    1,
                ));
        }
        Ok(())
    }

    fn progress(&mut self, _done: u64, _total: Option<u64>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn create_file(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Resource<OutputHandle>, String>> {
        self.check_live()?;
        let dest = match self.output_target(&path) {
            Ok(d) => d,
            Err(m) => return Ok(Err(m)),
        };
        self.count_file()?;
        if let Some(parent) = dest.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            return Ok(Err(format!("{path}: {e}")));
        }
        let tmp = crate::fsx::temp_sibling(&dest, "partial");
        let file = match File::create(&tmp) {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("{path}: {e}"))),
        };
        let rel = crate::archive::check_entry_name(path.as_bytes()).unwrap_or(path);
        self.written_names.insert(rel.clone());
        let handle = OutputHandle {
            rel,
            tmp,
            dest,
            file: Some(std::io::BufWriter::new(file)),
        };
        self.open_files += 1;
        Ok(Ok(self.table.push(handle)?))
    }

    fn copy_sqlite(
        &mut self,
        source: String,
        dest: String,
    ) -> wasmtime::Result<Result<u64, String>> {
        self.check_live()?;
        let src = match self.guest_to_host(&source) {
            Ok(p) => p,
            Err(m) => return Ok(Err(m)),
        };
        // A regular file only: a FIFO or a device would block the host where no deadline
        // reaches.
        match std::fs::metadata(&src) {
            Ok(m) if m.is_file() => {
                // The output cap is charged before copying, not after.
                let cap = self.limits.output_mib << 20;
                if self.written + m.len() > cap {
                    let msg = format!(
                        "output limit of {} MiB reached (limits.output_mib): {source} is {} bytes",
                        self.limits.output_mib,
                        m.len()
                    );
                    self.violation = Some(msg.clone());
                    return Err(wasmtime::Error::msg(msg));
                }
            }
            Ok(_) => return Ok(Err(format!("{source}: not a regular file"))),
            Err(e) => return Ok(Err(format!("{source}: {e}"))),
        }
        let target = match self.output_target(&dest) {
            Ok(d) => d,
            Err(m) => return Ok(Err(m)),
        };
        self.count_file()?;
        if let Some(parent) = target.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let tmp = crate::fsx::temp_sibling(&target, "partial");
        // Wait for a locked database no longer than the call's deadline, and leave no -wal or
        // -shm in the (read-only) grant that were not there.
        let wait = self
            .deadline
            .saturating_duration_since(std::time::Instant::now())
            .min(Duration::from_secs(30));
        let sides: Vec<PathBuf> = ["-wal", "-shm"]
            .iter()
            .map(|side| crate::fsx::with_suffix(&src, side))
            .filter(|p| !p.exists())
            .collect();
        let result = crate::database::copy_consistent(&src, &tmp, wait);
        for side in sides {
            let _ = std::fs::remove_file(side);
        }
        let size = match result.and_then(|_| {
            std::fs::metadata(&tmp)
                .map(|m| m.len())
                .map_err(|e| crate::database::DbError::Import {
                    path: tmp.clone(),
                    line: 0,
                    message: e.to_string(),
                })
        }) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Ok(Err(e
                    .to_string()
                    .replace(&self.repo_root.display().to_string(), "/repo")));
            }
        };
        if let Err(e) = self.charge(size) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&tmp, &target) {
            return Ok(Err(format!("{dest}: {e}")));
        }
        let rel = crate::archive::check_entry_name(dest.as_bytes()).unwrap_or(dest);
        self.written_names.insert(rel.clone());
        self.files.push((rel, size));
        Ok(Ok(size))
    }

    fn exec(
        &mut self,
        program: String,
        args: Vec<String>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<host::ExecResult, String>> {
        self.check_live()?;
        if !self.execs.contains(&program) {
            return Ok(Err(format!(
                "no exec grant for {program:?}: add \"exec:{program}\" to the plugin's grants to allow it"
            )));
        }
        let left = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        let limit = Duration::from_millis(u64::from(timeout_ms)).min(left);
        match crate::process::run_argv(&program, &args, &self.repo_root, limit, 1 << 20) {
            Ok(out) => Ok(Ok(host::ExecResult {
                status: if out.timed_out {
                    -1
                } else {
                    out.code.unwrap_or(-1)
                },
                stdout: out.stdout_head,
                stderr: out.stderr_tail.into_bytes(),
            })),
            Err(e) => Ok(Err(format!("cannot run {program}: {e}"))),
        }
    }
}

impl host::HostOutputFile for HostState {
    fn write(
        &mut self,
        h: Resource<OutputHandle>,
        bytes: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.check_live()?;
        self.charge(bytes.len() as u64)?;
        let handle = self.table.get_mut(&h)?;
        let Some(file) = handle.file.as_mut() else {
            return Ok(Err("file already finished".into()));
        };
        Ok(file
            .write_all(&bytes)
            .map_err(|e| format!("{}: {e}", handle.rel)))
    }

    fn finish(&mut self, h: Resource<OutputHandle>) -> wasmtime::Result<Result<u64, String>> {
        self.check_live()?;
        let handle = self.table.get_mut(&h)?;
        let Some(file) = handle.file.take() else {
            return Ok(Err("file already finished".into()));
        };
        self.open_files = self.open_files.saturating_sub(1);
        let handle = self.table.get_mut(&h)?;
        let result = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.metadata().map(|m| m.len()))
            .and_then(|len| std::fs::rename(&handle.tmp, &handle.dest).map(|_| len));
        match result {
            Ok(len) => {
                let rel = handle.rel.clone();
                self.unsynced.push(handle.dest.clone());
                self.files.push((rel, len));
                Ok(Ok(len))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&handle.tmp);
                Ok(Err(format!("{}: {e}", handle.rel)))
            }
        }
    }

    fn drop(&mut self, h: Resource<OutputHandle>) -> wasmtime::Result<()> {
        let handle = self.table.delete(h)?;
        if handle.file.is_some() {
            self.open_files = self.open_files.saturating_sub(1);
        }
        Ok(())
    }
}
