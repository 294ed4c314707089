//! # thrum-backup plugin SDK
//!
//! Write a [thrum-backup](https://github.com/thrum-backup/thrum-backup) plugin in Rust: implement
//! [`Plugin`], register it with [`register_plugin!`], and build with
//! `cargo build --release --target wasm32-wasip2`. The result is a WebAssembly component that
//! the engine runs in a sandbox: it sees only the directories its grants name, writes only
//! through [`OutputFile`], and is bounded in time, memory and output size.
//!
//! ```ignore
//! use thrum_backup_plugin_sdk::{self as sdk, Context, Grant, Info, Plugin, PluginError, Summary};
//!
//! struct Notes;
//!
//! impl Plugin for Notes {
//!     fn describe() -> Info {
//!         sdk::info("notes", "0.1.0", "Backs up docs/notes", vec![Grant::Read("docs/notes".into())])
//!     }
//!
//!     fn backup(_ctx: &Context) -> Result<Summary, PluginError> {
//!         let mut summary = Summary::default();
//!         for file in sdk::walk("/repo/docs/notes")? {
//!             summary.add(sdk::copy_to_output(&file)?);
//!         }
//!         Ok(summary)
//!     }
//! }
//!
//! sdk::register_plugin!(Notes);
//! ```
//!
//! Files kept under their repository-relative path (what [`copy_to_output`] does) restore with
//! the default [`Plugin::restore`], which puts every file of `/backup` back where it came from.

#![forbid(unsafe_code)]

mod jsonl;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The generated bindings (`wit/v0.1.0/backup.wit`, world `plugin`). Most plugins never need them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "thrum_backup_plugin_sdk::bindings",
    });
}

use bindings::thrum::backup::host;
pub use bindings::thrum::backup::types::{Context, ErrorCode, Grant, Info, PluginError, Summary};

/// The contract version this SDK builds against.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// A backup plugin. Only `describe` and `backup` are required.
pub trait Plugin {
    /// Name, version, description and the grants the plugin needs.
    fn describe() -> Info;

    /// Write the plugin's files for a snapshot (see [`OutputFile`], [`copy_to_output`]).
    fn backup(ctx: &Context) -> Result<Summary, PluginError>;

    /// Put the plugin's files back. The default copies every file under `/backup` to the same
    /// repository-relative path, which suits plugins that kept files under those paths.
    fn restore(_ctx: &Context) -> Result<Summary, PluginError> {
        let mut summary = Summary::default();
        for file in walk("/backup")? {
            let rel = file
                .strip_prefix("/backup")
                .map_err(|_| error(ErrorCode::Other, "unexpected path"))?;
            summary.add(copy_file(&file, &rel.to_string_lossy())?);
        }
        Ok(summary)
    }

    /// Check the plugin's earlier output. The default checks that every `.jsonl` file parses.
    fn verify(_ctx: &Context) -> Result<Summary, PluginError> {
        let mut summary = Summary::default();
        for file in walk("/backup")? {
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if file.extension().is_some_and(|e| e == "jsonl") {
                validate_jsonl(&file)?;
            }
            summary.files += 1;
            summary.bytes += size;
        }
        Ok(summary)
    }
}

/// Export `$plugin` (a type implementing [`Plugin`]) as the component's `exporter` interface.
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        struct __ThrumBackupExport;

        impl $crate::bindings::exports::thrum::backup::exporter::Guest for __ThrumBackupExport {
            fn describe() -> $crate::Info {
                <$plugin as $crate::Plugin>::describe()
            }
            fn backup(ctx: $crate::Context) -> Result<$crate::Summary, $crate::PluginError> {
                <$plugin as $crate::Plugin>::backup(&ctx)
            }
            fn restore(ctx: $crate::Context) -> Result<$crate::Summary, $crate::PluginError> {
                <$plugin as $crate::Plugin>::restore(&ctx)
            }
            fn verify(ctx: $crate::Context) -> Result<$crate::Summary, $crate::PluginError> {
                <$plugin as $crate::Plugin>::verify(&ctx)
            }
        }

        $crate::bindings::export!(__ThrumBackupExport with_types_in $crate::bindings);
    };
}

/// Build an [`Info`] with no config help.
pub fn info(name: &str, version: &str, description: &str, grants: Vec<Grant>) -> Info {
    Info {
        name: name.into(),
        version: version.into(),
        description: description.into(),
        grants,
        config_help: String::new(),
    }
}

/// A [`PluginError`] with `code` and `message`.
pub fn error(code: ErrorCode, message: impl Into<String>) -> PluginError {
    PluginError {
        code,
        message: message.into(),
    }
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            files: 0,
            bytes: 0,
            notes: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl Summary {
    /// Count one more file of `bytes` bytes.
    pub fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

impl From<io::Error> for PluginError {
    fn from(e: io::Error) -> Self {
        error(ErrorCode::HostCall, e.to_string())
    }
}

/// Log a line at `info` level in the backup's log.
pub fn log(message: &str) {
    host::log(host::Level::Info, message);
}

/// Log a warning.
pub fn warn(message: &str) {
    host::log(host::Level::Warn, message);
}

/// Report progress.
pub fn progress(done: u64, total: Option<u64>) {
    host::progress(done, total);
}

/// The plugin's config (the `config` object of its entry in `config.json`).
pub fn config(ctx: &Context) -> Result<serde_json::Map<String, serde_json::Value>, PluginError> {
    match serde_json::from_str::<serde_json::Value>(&ctx.config) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(
            ErrorCode::InvalidConfig,
            "config must be a JSON object",
        )),
        Err(e) => Err(error(
            ErrorCode::InvalidConfig,
            format!("config is not JSON: {e}"),
        )),
    }
}

/// A file in the plugin's output, written through the host (which caps the total size).
pub struct OutputFile {
    inner: Option<host::OutputFile>,
    written: u64,
}

impl OutputFile {
    /// Create `path` (relative, `/`-separated) in the output.
    pub fn create(path: &str) -> Result<Self, PluginError> {
        let inner = host::create_file(path)
            .map_err(|m| error(ErrorCode::HostCall, format!("create {path}: {m}")))?;
        Ok(Self {
            inner: Some(inner),
            written: 0,
        })
    }

    /// Close the file; returns its size.
    pub fn finish(mut self) -> Result<u64, PluginError> {
        let inner = self
            .inner
            .take()
            .ok_or_else(|| error(ErrorCode::Other, "finished twice"))?;
        inner.finish().map_err(|m| error(ErrorCode::HostCall, m))
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = self
            .inner
            .as_ref()
            .ok_or_else(|| io::Error::other("file already finished"))?;
        // Keep each host call to a bounded size.
        let chunk = &buf[..buf.len().min(1 << 20)];
        inner.write(chunk).map_err(io::Error::other)?;
        self.written += chunk.len() as u64;
        Ok(chunk.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copy the file at `src` to `dest` in the output; returns the bytes copied.
pub fn copy_file(src: &Path, dest: &str) -> Result<u64, PluginError> {
    let mut input = std::fs::File::open(src)
        .map_err(|e| error(ErrorCode::MissingInput, format!("{}: {e}", src.display())))?;
    let mut out = OutputFile::create(dest)?;
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = read_full(&mut input, &mut buf)
            .map_err(|e| error(ErrorCode::HostCall, format!("{}: {e}", src.display())))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| error(ErrorCode::HostCall, format!("{dest}: {e}")))?;
    }
    out.finish()
}

/// Copy a file under `/repo/...` to the output under its repository-relative path.
pub fn copy_to_output(src: &Path) -> Result<u64, PluginError> {
    copy_file(src, &repo_relative(src)?)
}

/// The repository-relative path of `src`, a path under `/repo`.
fn repo_relative(src: &Path) -> Result<String, PluginError> {
    src.strip_prefix("/repo")
        .map(|rel| rel.to_string_lossy().into_owned())
        .map_err(|_| {
            error(
                ErrorCode::Other,
                format!("{} is not under /repo", src.display()),
            )
        })
}

/// Copy a SQLite database under `/repo/...` consistently to `dest` in the output.
pub fn copy_sqlite(src: &str, dest: &str) -> Result<u64, PluginError> {
    host::copy_sqlite(src, dest).map_err(|m| error(ErrorCode::HostCall, format!("copy {src}: {m}")))
}

/// Run a granted host program; returns (status, stdout, stderr).
pub fn exec(
    program: &str,
    args: &[&str],
    timeout_ms: u32,
) -> Result<host::ExecResult, PluginError> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    host::exec(program, &args, timeout_ms)
        .map_err(|m| error(ErrorCode::HostCall, format!("{program}: {m}")))
}

/// Every regular file below `dir`, sorted; empty if `dir` does not exist.
///
/// Our own twenty lines rather than `walkdir`: every crate the SDK depends on is compiled into
/// every plugin's component (and vendored by `plugin new`), and a guest sees only its
/// read-only grants, where links and loops `walkdir` guards against do not reach it.
pub fn walk(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, PluginError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.as_ref().to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(error(ErrorCode::HostCall, format!("{}: {e}", d.display()))),
        };
        for entry in entries {
            let entry = entry.map_err(|e| error(ErrorCode::HostCall, e.to_string()))?;
            let kind = entry
                .file_type()
                .map_err(|e| error(ErrorCode::HostCall, e.to_string()))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Check that every non-blank line of a JSONL file is one JSON value (UTF-8, RFC 8259);
/// returns the count of those lines. A line of spaces, tabs and `\r` alone is blank.
pub fn validate_jsonl(path: &Path) -> Result<u64, PluginError> {
    scan_jsonl(path, |_| Ok(()))
}

/// Copy a JSONL file under `/repo/...` to the output under its repository-relative path,
/// checking on the way that every non-empty line is one JSON value (as [`validate_jsonl`]).
/// The file is read once: the bytes written are the bytes checked. Returns the bytes copied
/// and the line count; on an invalid line nothing is kept.
pub fn copy_jsonl_to_output(src: &Path) -> Result<(u64, u64), PluginError> {
    let dest = repo_relative(src)?;
    let mut out = OutputFile::create(&dest)?;
    let lines = scan_jsonl(src, |block| {
        out.write_all(block)
            .map_err(|e| error(ErrorCode::HostCall, format!("{dest}: {e}")))
    })?;
    Ok((out.finish()?, lines))
}

/// Read `path` in large blocks, check each complete line, and hand every block to `sink`
/// once its lines are checked. Returns the count of non-empty lines.
fn scan_jsonl(
    path: &Path,
    mut sink: impl FnMut(&[u8]) -> Result<(), PluginError>,
) -> Result<u64, PluginError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| error(ErrorCode::MissingInput, format!("{}: {e}", path.display())))?;
    let invalid = |line: u64, what: String| {
        error(
            ErrorCode::InvalidData,
            format!("{}: line {line}: {what}", path.display()),
        )
    };
    // `buf[..pending]` is the start of a line whose end has not been read yet.
    let mut buf = vec![0u8; BLOCK];
    let mut pending = 0;
    let (mut seen, mut counted) = (0u64, 0u64);
    loop {
        if pending == buf.len() {
            buf.resize(buf.len() * 2, 0); // a line longer than the buffer
        }
        let n = read_full(&mut file, &mut buf[pending..])
            .map_err(|e| error(ErrorCode::HostCall, format!("{}: {e}", path.display())))?;
        let filled = pending + n;
        // At the end of the file the last line needs no newline.
        let complete = if n == 0 {
            filled
        } else {
            match buf[pending..filled].iter().rposition(|&b| b == b'\n') {
                Some(i) => pending + i + 1,
                None => {
                    pending = filled;
                    continue;
                }
            }
        };
        let found = jsonl::check_lines(&buf[..complete]).map_err(|e| {
            let what = match e.problem {
                jsonl::Problem::Utf8 => "not UTF-8".to_owned(),
                jsonl::Problem::Json(what) => format!("not valid JSON: {what}"),
            };
            invalid(
                seen + e.line,
                format!("{what} (byte {} of the line)", e.byte),
            )
        })?;
        seen += found.lines;
        counted += found.values;
        sink(&buf[..complete])?;
        if n == 0 {
            return Ok(counted);
        }
        buf.copy_within(complete..filled, 0);
        pending = filled - complete;
    }
}

/// The block size of the copy helpers' reads and of their writes through the host.
const BLOCK: usize = 1 << 20;

/// Read into `buf` until it is full or the file ends. A WASI read returns at most 64 KiB, and
/// each block read is one host call to write it: fill large blocks.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
