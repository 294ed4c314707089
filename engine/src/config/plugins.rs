//! The plugin entries of `backup.plugins` (thrum's shell form and WebAssembly components),
//! their grants and limits, the bundle and key records, and the one plugin-name rule.

use serde_json::{Map, Value};

/// A plugin entry of `backup.plugins`: thrum's shell form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShellPlugin {
    /// Unique name; also the folder `plugins/<name>/` in the snapshot.
    pub name: String,
    /// Shell command run with `sh -c` in the repo root before collecting files.
    pub command: String,
    /// Glob patterns, relative to the repo root, of files to collect.
    pub include: Vec<String>,
}

/// Programs that run other programs or code given as arguments (a shell, an interpreter, a
/// launcher): an `exec` grant of one is a grant to run anything.
pub const SHELL_EQUIVALENTS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox", "env", "setsid",
    "nohup", "nice", "timeout", "xargs", "sudo", "su", "doas", "chroot", "unshare", "nsenter",
    "python", "python3", "perl", "ruby", "node", "nodejs", "deno", "bun", "php", "lua", "tclsh",
    "awk", "gawk", "mawk", "find", "ssh", "script", "expect",
];

/// A capability granted to a WASM plugin, written `read:PATH`, `write:PATH` or `exec:PROGRAM`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// Read-only view of a repository subpath.
    Read(String),
    /// On restore, files may be put back under this repository subpath.
    Write(String),
    /// The plugin may run this host program (argv, no shell).
    Exec(String),
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Read(p) => write!(f, "read:{p}"),
            Grant::Write(p) => write!(f, "write:{p}"),
            Grant::Exec(p) => write!(f, "exec:{p}"),
        }
    }
}

impl serde::Serialize for Grant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Grant {
    /// Why this grant amounts to running code of the plugin's choosing, or to seeing what no
    /// plugin should see; `None` for an ordinary grant. Such grants are shown with a warning
    /// and need `--allow-dangerous` at `plugin add` / `plugin install` (and
    /// `"allow_dangerous": true` in the entry to run).
    pub fn danger(&self) -> Option<String> {
        let under = |p: &str, dir: &str| p == dir || p.starts_with(&format!("{dir}/"));
        match self {
            Grant::Write(p) if under(p, ".git") => Some(format!(
                "write:{p} lets the plugin's restore change git itself (hooks run code)"
            )),
            Grant::Write(p) if under(p, ".thrum") => Some(format!(
                "write:{p} lets the plugin's restore change thrum's config (its post_backup command runs code)"
            )),
            Grant::Read(p) if p == "." => Some(
                "read:. shows the plugin the whole repository, .git and any backup kept in it"
                    .into(),
            ),
            Grant::Read(p) if under(p, ".git") => {
                Some(format!("read:{p} shows the plugin git's own files"))
            }
            Grant::Exec(p) if SHELL_EQUIVALENTS.contains(&p.as_str()) => Some(format!(
                "exec:{p} runs a shell, an interpreter or a launcher: whatever the plugin asks"
            )),
            _ => None,
        }
    }

    /// Parse `read:PATH`, `write:PATH` or `exec:PROGRAM`, checking that paths stay inside the
    /// repository and programs are bare names. `exec:PROGRAM` trusts PROGRAM's own option
    /// parsing (`git -c alias.x=!cmd` runs a command): grant only programs you would let the
    /// plugin drive.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (kind, value) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?}: expected read:PATH, write:PATH or exec:PROGRAM"))?;
        match kind {
            "read" | "write" => {
                let p = value.trim_end_matches('/');
                let ok = !p.is_empty()
                    && !p.starts_with('/')
                    && !p.contains('\\')
                    && !p.contains('\0')
                    && p.split('/').all(|c| !c.is_empty() && c != "..");
                if !ok {
                    return Err(format!(
                        "{text:?}: the path must be relative to the repository, without `..`"
                    ));
                }
                if kind == "write" && p == "." {
                    return Err(format!(
                        "{text:?}: a plugin cannot be given the whole repository to write: name the folder it restores (write:.beads)"
                    ));
                }
                let p = p.to_owned();
                Ok(if kind == "read" {
                    Grant::Read(p)
                } else {
                    Grant::Write(p)
                })
            }
            "exec" => {
                let ok = !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    return Err(format!(
                        "{text:?}: exec takes a bare program name (looked up on PATH)"
                    ));
                }
                Ok(Grant::Exec(value.to_owned()))
            }
            other => Err(format!(
                "{text:?}: unknown grant kind {other:?} (read, write, exec)"
            )),
        }
    }
}

/// Limits of one WASM plugin run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PluginLimits {
    /// Wall-clock deadline of each call, in seconds (default 60, as thrum's shell timeout).
    pub timeout_secs: u64,
    /// Linear memory cap in MiB (default 256).
    pub memory_mib: u64,
    /// Output cap in MiB, enforced while writing (default 1024).
    pub output_mib: u64,
    /// Files one call may write (default 10 000, well below the 200 000 entries an archive
    /// may hold).
    pub max_files: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            timeout_secs: 60,
            memory_mib: 256,
            output_mib: 1024,
            max_files: 10_000,
        }
    }
}

/// A WebAssembly component plugin entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WasmPlugin {
    /// Unique name; the folder `plugins/<name>/` in the snapshot.
    pub name: String,
    /// `preset:<name>` (built into the engine) or a path inside the repository.
    pub component: String,
    /// sha256 pin of the component file (required for files; presets are part of the binary).
    pub sha256: Option<String>,
    /// Grants the user confirmed.
    pub grants: Vec<Grant>,
    /// Limits.
    pub limits: PluginLimits,
    /// Free-form config handed to the plugin (a JSON object).
    pub config: Value,
    /// Set when the plugin was installed from a bundle (`plugin install`).
    pub bundle: Option<BundleRecord>,
    /// The user confirmed its dangerous grants ([`Grant::danger`]); without it, a plugin
    /// with one is refused.
    pub allow_dangerous: bool,
}

/// Where an installed bundle came from: its version and who signed it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BundleRecord {
    /// The bundle's version (as its manifest and the component's `describe` say).
    pub version: String,
    /// The public key (`ed25519:<hex>`) whose signature was checked at install; `None` when
    /// the bundle was installed unsigned (`--allow-unsigned`).
    pub signed_by: Option<String>,
}

/// A public key whose bundle signatures `plugin install` accepts (`backup.trusted_keys`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrustedKey {
    /// Who holds the key (shown at install).
    pub name: String,
    /// `ed25519:<64 hex digits>`.
    pub key: String,
}

/// Whether `text` is a public key as we write them: `ed25519:` and 64 hex digits.
pub fn is_public_key(text: &str) -> bool {
    text.strip_prefix("ed25519:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One entry of `backup.plugins`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PluginEntry {
    /// thrum's shell form.
    Shell(ShellPlugin),
    /// A sandboxed WebAssembly component.
    Wasm(WasmPlugin),
}

impl PluginEntry {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        match self {
            PluginEntry::Shell(p) => &p.name,
            PluginEntry::Wasm(p) => &p.name,
        }
    }

    pub(super) fn to_json(&self) -> Value {
        let mut entry = Map::new();
        match self {
            PluginEntry::Shell(p) => {
                entry.insert("name".into(), Value::String(p.name.clone()));
                entry.insert("command".into(), Value::String(p.command.clone()));
                entry.insert(
                    "include".into(),
                    Value::Array(p.include.iter().cloned().map(Value::String).collect()),
                );
            }
            PluginEntry::Wasm(p) => {
                entry.insert("name".into(), Value::String(p.name.clone()));
                entry.insert("component".into(), Value::String(p.component.clone()));
                if let Some(sha) = &p.sha256 {
                    entry.insert("sha256".into(), Value::String(sha.clone()));
                }
                entry.insert(
                    "grants".into(),
                    Value::Array(
                        p.grants
                            .iter()
                            .map(|g| Value::String(g.to_string()))
                            .collect(),
                    ),
                );
                if p.limits != PluginLimits::default() {
                    entry.insert(
                        "limits".into(),
                        serde_json::json!({
                            "timeout_secs": p.limits.timeout_secs,
                            "memory_mib": p.limits.memory_mib,
                            "output_mib": p.limits.output_mib,
                            "max_files": p.limits.max_files,
                        }),
                    );
                }
                if p.allow_dangerous {
                    entry.insert("allow_dangerous".into(), Value::Bool(true));
                }
                entry.insert("config".into(), p.config.clone());
                if let Some(b) = &p.bundle {
                    entry.insert(
                        "bundle".into(),
                        serde_json::json!({"version": b.version, "signed_by": b.signed_by}),
                    );
                }
            }
        }
        Value::Object(entry)
    }
}

/// The rule of a plugin name, which becomes a folder name: a safe alphabet, and never `.` or
/// `..`. The one rule for config entries, `plugin add`, bundles and components.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid plugin name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        ))
    }
}
