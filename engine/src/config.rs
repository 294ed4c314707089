//! `.thrum/config.json`: the typed `backup` section, with every other key kept as it was.
//!
//! The file belongs to thrum and its user. We read the `backup` key into typed values with
//! precise errors (`backup.retention.daily: expected an integer, found a string`), warn about
//! keys we do not know inside `backup`, and when we write (schedule, plugins) we change only
//! the keys concerned: every other key, and the order of all keys, survives.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration;
use crate::fsx;

pub use crate::error::ConfigError;

/// Retention tiers. `-1` keeps every period forever, `0` disables a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Retention {
    /// Newest archive of each of the newest N days.
    pub daily: i64,
    /// Newest archive of each of the newest N ISO weeks.
    pub weekly: i64,
    /// Newest archive of each of the newest N months.
    pub monthly: i64,
    /// The N newest archives.
    pub last: i64,
}

impl Retention {
    /// thrum's defaults: 5 daily, 4 weekly, monthly forever.
    pub const DEFAULT: Retention = Retention {
        daily: 5,
        weekly: 4,
        monthly: -1,
        last: 0,
    };
}

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

    fn to_json(&self) -> Value {
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

/// The `backup` section, typed. `None` means "not set: the default applies".
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BackupConfig {
    /// `backup.dir`.
    pub dir: Option<String>,
    /// `backup.schedule`, as written.
    pub schedule: Option<String>,
    /// `backup.retention.daily`.
    pub daily: Option<i64>,
    /// `backup.retention.weekly`.
    pub weekly: Option<i64>,
    /// `backup.retention.monthly`.
    pub monthly: Option<i64>,
    /// `backup.retention.last` (ours; thrum ignores it).
    pub last: Option<i64>,
    /// `backup.plugins`.
    pub plugins: Vec<PluginEntry>,
    /// `backup.post_backup`.
    pub post_backup: Option<String>,
    /// `backup.trusted_keys`: keys whose signed bundles `plugin install` accepts.
    pub trusted_keys: Vec<TrustedKey>,
    /// `backup.secrets`: whether snapshots hold thrum's secrets (tokens, keys).
    pub secrets: Secrets,
    /// `backup.thrum_backup_schedule`: the interval of `thrum-backup daemon`. Ours alone:
    /// thrum's daemon starts its own backup scheduler whenever `backup.schedule` is set.
    pub own_schedule: Option<String>,
}

/// Whether snapshots capture thrum's secrets (`backup.secrets`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Secrets {
    /// Captured, marked as secrets, kept private (the default: a restore must bring the
    /// workspace back whole).
    #[default]
    Include,
    /// Left out of every snapshot; a restore leaves the live ones as they are.
    Exclude,
}

impl BackupConfig {
    /// The retention policy in force, defaults filled in.
    pub fn retention(&self) -> Retention {
        let d = Retention::DEFAULT;
        Retention {
            daily: self.daily.unwrap_or(d.daily),
            weekly: self.weekly.unwrap_or(d.weekly),
            monthly: self.monthly.unwrap_or(d.monthly),
            last: self.last.unwrap_or(d.last),
        }
    }

    /// The interval `thrum-backup daemon` follows: ours (`backup.thrum_backup_schedule`), or
    /// else thrum's `backup.schedule` (validated on load).
    pub fn schedule_interval(&self) -> Option<Duration> {
        self.own_schedule
            .as_deref()
            .or(self.schedule.as_deref())
            .and_then(|s| duration::parse(s).ok())
            .filter(|d| !d.is_zero())
    }

    /// The interval of thrum's own backup scheduler, which thrum's daemon runs whenever
    /// `backup.schedule` is set (thrum's backup takes no lock and rewrites `current/`).
    pub fn thrum_schedule_interval(&self) -> Option<Duration> {
        self.schedule
            .as_deref()
            .and_then(|s| duration::parse(s).ok())
            .filter(|d| !d.is_zero())
    }
}

/// `.thrum/config.json`, loaded.
#[derive(Debug, Clone)]
pub struct ThrumConfig {
    path: PathBuf,
    doc: Map<String, Value>,
    /// The file's text as read, and its document: writes edit only what changed in it.
    read: Option<(String, Map<String, Value>)>,
    /// The typed `backup` section.
    pub backup: BackupConfig,
    /// `local_only` at the top level (older thrum configs).
    pub local_only: bool,
    /// `daemon.local_only` (thrum v0.10.6): the `a-sync` branch is never pushed, so its
    /// history exists only in this machine's `.git`.
    pub daemon_local_only: bool,
    /// `identity.repo_name`, when thrum recorded one.
    pub identity_repo_name: Option<String>,
    /// Keys inside `backup` that we do not know (reported, kept as they are).
    pub warnings: Vec<String>,
}

impl ThrumConfig {
    /// Load `<thrum_dir>/config.json`; a missing file is an empty config.
    pub fn load(thrum_dir: &Path) -> Result<Self, ConfigError> {
        let path = thrum_dir.join("config.json");
        let text = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let doc = match &text {
            None => Map::new(),
            Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Some(bytes) => parse_document(&path, bytes)?,
        };
        let read = text
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|t| !t.trim().is_empty())
            .map(|t| (t, doc.clone()));
        let mut cfg = Self::from_document(path, doc)?;
        cfg.read = read;
        Ok(cfg)
    }

    fn from_document(path: PathBuf, doc: Map<String, Value>) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let reader = Reader { path: &path };
        let local_only = match doc.get("local_only") {
            None | Some(Value::Null) => false,
            Some(v) => reader.boolean("local_only", v)?,
        };
        // thrum's own sections are read leniently: thrum validates them, and a value we do not
        // understand must not stop a backup.
        let daemon_local_only = doc
            .get("daemon")
            .and_then(|d| d.get("local_only"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let identity_repo_name = doc
            .get("identity")
            .and_then(|d| d.get("repo_name"))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned);
        let backup = match doc.get("backup") {
            None | Some(Value::Null) => BackupConfig::default(),
            Some(v) => reader.backup(v, &mut warnings)?,
        };
        Ok(Self {
            path,
            doc,
            read: None,
            backup,
            local_only,
            daemon_local_only,
            identity_repo_name,
            warnings,
        })
    }

    /// The whole document as read (thrum's sections included).
    pub fn document(&self) -> &Map<String, Value> {
        &self.doc
    }

    /// The file this config was read from (and will be written to).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the `a-sync` history exists only on this machine (either key).
    pub fn sync_local_only(&self) -> bool {
        self.daemon_local_only || self.local_only
    }

    /// Set or clear `backup.thrum_backup_schedule` (ours), then save.
    pub fn set_schedule(&mut self, schedule: Option<&str>) -> Result<(), ConfigError> {
        self.set_backup_string("thrum_backup_schedule", schedule)
    }

    /// Set or clear thrum's `backup.schedule` (thrum's daemon runs its own backups while it
    /// is set), then save.
    pub fn set_thrum_schedule(&mut self, schedule: Option<&str>) -> Result<(), ConfigError> {
        self.set_backup_string("schedule", schedule)
    }

    fn set_backup_string(&mut self, key: &str, value: Option<&str>) -> Result<(), ConfigError> {
        let backup = self.backup_object()?;
        match value {
            Some(s) => {
                backup.insert(key.into(), Value::String(s.to_owned()));
            }
            None => {
                backup.shift_remove(key);
            }
        }
        self.save()
    }

    /// Append a plugin to `backup.plugins`, then save. Fails if the name is taken, unless
    /// `replace` (then the entry of that name is replaced in place).
    pub fn add_plugin(&mut self, plugin: &PluginEntry, replace: bool) -> Result<(), ConfigError> {
        validate_plugin_name(&self.path, "name", plugin.name())?;
        let exists = self
            .backup
            .plugins
            .iter()
            .any(|p| p.name() == plugin.name());
        if exists && !replace {
            return Err(self.value_error(
                "backup.plugins",
                format!("a plugin named {:?} already exists", plugin.name()),
            ));
        }
        let backup = self.backup_object()?;
        let plugins = backup
            .entry("plugins")
            .or_insert_with(|| Value::Array(Vec::new()));
        if plugins.is_null() {
            *plugins = Value::Array(Vec::new());
        }
        let Some(list) = plugins.as_array_mut() else {
            return Err(self.value_error("backup.plugins", "expected an array".into()));
        };
        let entry = plugin.to_json();
        match list
            .iter_mut()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(plugin.name()))
        {
            Some(slot) => *slot = entry,
            None => list.push(entry),
        }
        self.save()
    }

    /// Add `key` to `backup.trusted_keys` under `name` (renaming it if already trusted), then
    /// save. Returns whether the key is new.
    pub fn trust_key(&mut self, key: &str, name: &str) -> Result<bool, ConfigError> {
        let key = key.to_ascii_lowercase();
        if !is_public_key(&key) {
            return Err(self.value_error(
                "backup.trusted_keys",
                format!("{key:?} is not a public key: expected ed25519:<64 hex digits>"),
            ));
        }
        let backup = self.backup_object()?;
        let list = backup
            .entry("trusted_keys")
            .or_insert_with(|| Value::Array(Vec::new()));
        if list.is_null() {
            *list = Value::Array(Vec::new());
        }
        let Some(list) = list.as_array_mut() else {
            return Err(self.value_error("backup.trusted_keys", "expected an array".into()));
        };
        let entry = serde_json::json!({"name": name, "key": key});
        let existing = list.iter_mut().find(|k| {
            k.get("key")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                == Some(key.clone())
        });
        let new = existing.is_none();
        match existing {
            Some(slot) => *slot = entry,
            None => list.push(entry),
        }
        self.save()?;
        Ok(new)
    }

    /// Remove the trusted keys whose key or name is `key_or_name`, then save. Returns what
    /// was removed.
    pub fn untrust_key(&mut self, key_or_name: &str) -> Result<Vec<TrustedKey>, ConfigError> {
        let wanted = key_or_name.to_ascii_lowercase();
        let removed: Vec<TrustedKey> = self
            .backup
            .trusted_keys
            .iter()
            .filter(|k| k.key == wanted || k.name == key_or_name)
            .cloned()
            .collect();
        if removed.is_empty() {
            return Ok(removed);
        }
        let backup = self.backup_object()?;
        if let Some(list) = backup.get_mut("trusted_keys").and_then(Value::as_array_mut) {
            list.retain(|k| {
                let key = k
                    .get("key")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase);
                let name = k.get("name").and_then(Value::as_str);
                key.as_deref() != Some(wanted.as_str()) && name != Some(key_or_name)
            });
        }
        self.save()?;
        Ok(removed)
    }

    /// The trusted key `key`, if it is trusted.
    pub fn trusted(&self, key: &str) -> Option<&TrustedKey> {
        self.backup.trusted_keys.iter().find(|k| k.key == key)
    }

    /// Remove the plugin `name` from `backup.plugins`, then save. `Ok(false)` if absent.
    pub fn remove_plugin(&mut self, name: &str) -> Result<bool, ConfigError> {
        let backup = self.backup_object()?;
        let Some(list) = backup.get_mut("plugins").and_then(Value::as_array_mut) else {
            return Ok(false);
        };
        let before = list.len();
        list.retain(|p| p.get("name").and_then(Value::as_str) != Some(name));
        if list.len() == before {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    fn backup_object(&mut self) -> Result<&mut Map<String, Value>, ConfigError> {
        let path = self.path.clone();
        let backup = self
            .doc
            .entry("backup")
            .or_insert_with(|| Value::Object(Map::new()));
        if backup.is_null() {
            *backup = Value::Object(Map::new());
        }
        backup.as_object_mut().ok_or_else(|| ConfigError::Value {
            path,
            key: "backup".into(),
            message: "expected an object".into(),
        })
    }

    fn value_error(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Value {
            path: self.path.clone(),
            key: key.into(),
            message,
        }
    }

    /// Write the document back atomically and reload the typed view. Only the members of
    /// `backup` that changed are rewritten in the text as it was read ([`crate::jsonedit`]):
    /// the rest of the file keeps its every byte (numbers, order, indentation); a new file is
    /// written with two-space indentation, as thrum writes it. A symbolic link is written
    /// through, and the file keeps its mode.
    fn save(&mut self) -> Result<(), ConfigError> {
        let bytes = match &self.read {
            Some((text, before)) => crate::jsonedit::patch(text, before, &self.doc)
                .map(String::into_bytes)
                .unwrap_or_else(|| render(&self.doc)),
            None => render(&self.doc),
        };
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        fsx::write_atomic(&target, &bytes).map_err(|e| ConfigError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).ok();
        let doc = std::mem::take(&mut self.doc);
        let mut reloaded = Self::from_document(self.path.clone(), doc.clone())?;
        reloaded.read = text.map(|t| (t, doc));
        *self = reloaded;
        Ok(())
    }

    /// The whole document as JSON text, as it would be saved.
    pub fn render(&self) -> Vec<u8> {
        render(&self.doc)
    }
}

fn parse_document(path: &Path, bytes: &[u8]) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            message: format!(
                "expected a JSON object at the top level, found {}",
                kind(&other)
            ),
        }),
        Err(e) => Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

fn render(doc: &Map<String, Value>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number with a fraction",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn err(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Value {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            message,
        }
    }

    fn expected(&self, key: &str, what: &str, v: &Value) -> ConfigError {
        self.err(key, format!("expected {what}, found {}", kind(v)))
    }

    fn boolean(&self, key: &str, v: &Value) -> Result<bool, ConfigError> {
        v.as_bool()
            .ok_or_else(|| self.expected(key, "true or false", v))
    }

    fn string(&self, key: &str, v: &Value) -> Result<String, ConfigError> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.expected(key, "a string", v))
    }

    fn object<'v>(&self, key: &str, v: &'v Value) -> Result<&'v Map<String, Value>, ConfigError> {
        v.as_object()
            .ok_or_else(|| self.expected(key, "an object", v))
    }

    fn tier(&self, key: &str, v: &Value) -> Result<i64, ConfigError> {
        let n = v
            .as_i64()
            .ok_or_else(|| self.expected(key, "an integer", v))?;
        if n < -1 {
            return Err(self.err(
                key,
                format!("{n} is not allowed: use a count, 0 to disable, or -1 to keep forever"),
            ));
        }
        Ok(n)
    }

    fn backup(&self, v: &Value, warnings: &mut Vec<String>) -> Result<BackupConfig, ConfigError> {
        let obj = self.object("backup", v)?;
        let mut cfg = BackupConfig::default();
        for (key, value) in obj {
            let dotted = format!("backup.{key}");
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "dir" => cfg.dir = Some(self.string(&dotted, value)?).filter(|s| !s.is_empty()),
                "schedule" => {
                    let s = self.string(&dotted, value)?;
                    if !s.is_empty() && s != "off" {
                        duration::parse(&s).map_err(|m| self.err(&dotted, m))?;
                        cfg.schedule = Some(s);
                    }
                }
                "thrum_backup_schedule" => {
                    let s = self.string(&dotted, value)?;
                    if !s.is_empty() && s != "off" {
                        duration::parse(&s).map_err(|m| self.err(&dotted, m))?;
                        cfg.own_schedule = Some(s);
                    }
                }
                "secrets" => {
                    cfg.secrets = match self.string(&dotted, value)?.as_str() {
                        "include" => Secrets::Include,
                        "exclude" => Secrets::Exclude,
                        other => {
                            return Err(self.err(
                                &dotted,
                                format!("{other:?} is not allowed: use \"include\" (the default) or \"exclude\""),
                            ));
                        }
                    };
                }
                "post_backup" => {
                    cfg.post_backup =
                        Some(self.string(&dotted, value)?).filter(|s| !s.trim().is_empty());
                }
                "retention" => {
                    for (tier, n) in self.object(&dotted, value)? {
                        let key = format!("{dotted}.{tier}");
                        if n.is_null() {
                            continue;
                        }
                        match tier.as_str() {
                            "daily" => cfg.daily = Some(self.tier(&key, n)?),
                            "weekly" => cfg.weekly = Some(self.tier(&key, n)?),
                            "monthly" => cfg.monthly = Some(self.tier(&key, n)?),
                            "last" => cfg.last = Some(self.tier(&key, n)?),
                            _ => warnings.push(format!("unknown key {key} (ignored, kept)")),
                        }
                    }
                }
                "trusted_keys" => {
                    let list = value
                        .as_array()
                        .ok_or_else(|| self.expected(&dotted, "an array", value))?;
                    for (i, entry) in list.iter().enumerate() {
                        let k = format!("{dotted}[{i}]");
                        let obj = self.object(&k, entry)?;
                        let name = match obj.get("name") {
                            None | Some(Value::Null) => String::new(),
                            Some(n) => self.string(&format!("{k}.name"), n)?,
                        };
                        let key = match obj.get("key") {
                            Some(v) => self.string(&format!("{k}.key"), v)?.to_ascii_lowercase(),
                            None => return Err(self.err(&format!("{k}.key"), "missing".into())),
                        };
                        if !is_public_key(&key) {
                            return Err(self.err(
                                &format!("{k}.key"),
                                "expected ed25519:<64 hex digits> (as `thrum-backup plugin keygen` prints)".into(),
                            ));
                        }
                        cfg.trusted_keys.push(TrustedKey { name, key });
                    }
                }
                "plugins" => {
                    let list = value
                        .as_array()
                        .ok_or_else(|| self.expected(&dotted, "an array", value))?;
                    for (i, entry) in list.iter().enumerate() {
                        let plugin = self.plugin(&format!("{dotted}[{i}]"), entry, warnings)?;
                        if cfg.plugins.iter().any(|p| p.name() == plugin.name()) {
                            return Err(self.err(
                                &format!("{dotted}[{i}].name"),
                                format!("duplicate plugin name {:?}", plugin.name()),
                            ));
                        }
                        cfg.plugins.push(plugin);
                    }
                }
                _ => warnings.push(format!("unknown key {dotted} (ignored, kept)")),
            }
        }
        Ok(cfg)
    }

    fn plugin(
        &self,
        key: &str,
        v: &Value,
        warnings: &mut Vec<String>,
    ) -> Result<PluginEntry, ConfigError> {
        let obj = self.object(key, v)?;
        let name_key = format!("{key}.name");
        let name = match obj.get("name") {
            Some(n) => self.string(&name_key, n)?,
            None => return Err(self.err(&name_key, "missing; every plugin needs a name".into())),
        };
        validate_plugin_name(self.path, &name_key, &name)?;
        if obj.contains_key("component") {
            return self
                .wasm_plugin(key, name, obj, warnings)
                .map(PluginEntry::Wasm);
        }
        let command = match obj.get("command") {
            None | Some(Value::Null) => String::new(),
            Some(c) => self.string(&format!("{key}.command"), c)?,
        };
        let mut include = Vec::new();
        if let Some(list) = obj.get("include").filter(|v| !v.is_null()) {
            let inc_key = format!("{key}.include");
            let list = list
                .as_array()
                .ok_or_else(|| self.expected(&inc_key, "an array of strings", list))?;
            for (i, p) in list.iter().enumerate() {
                include.push(self.string(&format!("{inc_key}[{i}]"), p)?);
            }
        }
        for other in obj.keys() {
            if !matches!(other.as_str(), "name" | "command" | "include") {
                warnings.push(format!("unknown key {key}.{other} (ignored, kept)"));
            }
        }
        Ok(PluginEntry::Shell(ShellPlugin {
            name,
            command,
            include,
        }))
    }

    fn wasm_plugin(
        &self,
        key: &str,
        name: String,
        obj: &Map<String, Value>,
        warnings: &mut Vec<String>,
    ) -> Result<WasmPlugin, ConfigError> {
        let comp_key = format!("{key}.component");
        let component = self.string(&comp_key, &obj["component"])?;
        if component.is_empty() {
            return Err(self.err(
                &comp_key,
                "empty; use preset:<name> or a path inside the repository".into(),
            ));
        }
        let sha256 = match obj.get("sha256").filter(|v| !v.is_null()) {
            None => None,
            Some(v) => {
                let s = self
                    .string(&format!("{key}.sha256"), v)?
                    .to_ascii_lowercase();
                if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(self.err(&format!("{key}.sha256"), "expected 64 hex digits".into()));
                }
                Some(s)
            }
        };
        if sha256.is_none() && !component.starts_with("preset:") {
            return Err(self.err(
                &format!("{key}.sha256"),
                "missing: a component file needs its sha256 pin (`thrum-backup plugin add --wasm` writes it)".into(),
            ));
        }
        let mut grants = Vec::new();
        if let Some(list) = obj.get("grants").filter(|v| !v.is_null()) {
            let gkey = format!("{key}.grants");
            let list = list
                .as_array()
                .ok_or_else(|| self.expected(&gkey, "an array of strings", list))?;
            for (i, g) in list.iter().enumerate() {
                let k = format!("{gkey}[{i}]");
                let text = self.string(&k, g)?;
                grants.push(Grant::parse(&text).map_err(|m| self.err(&k, m))?);
            }
        }
        let mut limits = PluginLimits::default();
        if let Some(l) = obj.get("limits").filter(|v| !v.is_null()) {
            let lkey = format!("{key}.limits");
            for (k, v) in self.object(&lkey, l)? {
                let full = format!("{lkey}.{k}");
                let n = v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| self.expected(&full, "a positive integer", v))?;
                match k.as_str() {
                    "timeout_secs" => limits.timeout_secs = n,
                    "memory_mib" => limits.memory_mib = n,
                    "output_mib" => limits.output_mib = n,
                    "max_files" => limits.max_files = n,
                    _ => warnings.push(format!("unknown key {full} (ignored, kept)")),
                }
            }
        }
        let config = match obj.get("config") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(v) => return Err(self.expected(&format!("{key}.config"), "an object", v)),
        };
        let bundle = match obj.get("bundle").filter(|v| !v.is_null()) {
            None => None,
            Some(v) => {
                let bkey = format!("{key}.bundle");
                let b = self.object(&bkey, v)?;
                let version = match b.get("version") {
                    Some(v) => self.string(&format!("{bkey}.version"), v)?,
                    None => return Err(self.err(&format!("{bkey}.version"), "missing".into())),
                };
                let signed_by = match b.get("signed_by") {
                    None | Some(Value::Null) => None,
                    Some(v) => {
                        let k = self.string(&format!("{bkey}.signed_by"), v)?;
                        if !is_public_key(&k) {
                            return Err(self.err(
                                &format!("{bkey}.signed_by"),
                                "expected ed25519:<64 hex digits>".into(),
                            ));
                        }
                        Some(k)
                    }
                };
                Some(BundleRecord { version, signed_by })
            }
        };
        let allow_dangerous = match obj.get("allow_dangerous") {
            None | Some(Value::Null) => false,
            Some(v) => self.boolean(&format!("{key}.allow_dangerous"), v)?,
        };
        for other in obj.keys() {
            if !matches!(
                other.as_str(),
                "name"
                    | "component"
                    | "sha256"
                    | "grants"
                    | "limits"
                    | "config"
                    | "bundle"
                    | "allow_dangerous"
            ) {
                warnings.push(format!("unknown key {key}.{other} (ignored, kept)"));
            }
        }
        Ok(WasmPlugin {
            name,
            component,
            sha256,
            grants,
            limits,
            config,
            bundle,
            allow_dangerous,
        })
    }
}

/// A plugin name becomes a folder name: keep it to a safe alphabet.
fn validate_plugin_name(path: &Path, key: &str, name: &str) -> Result<(), ConfigError> {
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
        Err(ConfigError::Value {
            path: path.to_path_buf(),
            key: key.to_owned(),
            message: format!(
                "invalid plugin name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<ThrumConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        ThrumConfig::load(dir.path())
    }

    #[test]
    fn defaults_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ThrumConfig::load(dir.path()).unwrap();
        assert_eq!(cfg.backup.retention(), Retention::DEFAULT);
        assert!(!cfg.local_only);
    }

    #[test]
    fn reads_thrum_v0_10_6_keys() {
        let cfg = load_str(
            r#"{"daemon": {"local_only": true, "sync_interval": 60},
                "identity": {"daemon_id": "d_1", "repo_name": "team-repo"},
                "backup": {"secrets": "exclude", "schedule": "24h",
                           "thrum_backup_schedule": "6h"}}"#,
        )
        .unwrap();
        assert!(cfg.daemon_local_only && !cfg.local_only && cfg.sync_local_only());
        assert_eq!(cfg.identity_repo_name.as_deref(), Some("team-repo"));
        assert_eq!(cfg.backup.secrets, Secrets::Exclude);
        // Ours is followed; thrum's is thrum's.
        assert_eq!(
            cfg.backup.schedule_interval(),
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(
            cfg.backup.thrum_schedule_interval(),
            Some(Duration::from_secs(24 * 3600))
        );
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // The older top-level key is still read; thrum's sections are never refused.
        let old = load_str(r#"{"local_only": true, "daemon": "odd"}"#).unwrap();
        assert!(old.local_only && old.sync_local_only());
        assert_eq!(load_str("{}").unwrap().backup.secrets, Secrets::Include);
    }

    #[test]
    fn reads_thrum_keys() {
        let cfg = load_str(
            r#"{"local_only": true, "backup": {"dir": "/b", "schedule": "6h30m",
               "retention": {"daily": 0, "monthly": 12},
               "plugins": [{"name": "beads", "command": "bd backup --force", "include": [".beads/backup/*"]}],
               "post_backup": "echo hi"}}"#,
        )
        .unwrap();
        assert!(cfg.local_only);
        let b = &cfg.backup;
        assert_eq!(b.dir.as_deref(), Some("/b"));
        assert_eq!(b.schedule_interval(), Some(Duration::from_secs(23_400)));
        assert_eq!(
            b.retention(),
            Retention {
                daily: 0,
                weekly: 4,
                monthly: 12,
                last: 0
            }
        );
        let PluginEntry::Shell(p) = &b.plugins[0] else {
            panic!("expected a shell plugin")
        };
        assert_eq!(p.include, vec![".beads/backup/*"]);
        assert_eq!(b.post_backup.as_deref(), Some("echo hi"));
        assert!(cfg.warnings.is_empty());
    }

    #[test]
    fn precise_errors() {
        let cases = [
            (
                r#"{"backup": {"retention": {"daily": "5"}}}"#,
                "backup.retention.daily: expected an integer, found a string",
            ),
            (
                r#"{"backup": {"retention": {"weekly": 1.5}}}"#,
                "backup.retention.weekly: expected an integer",
            ),
            (
                r#"{"backup": {"retention": {"monthly": -2}}}"#,
                "-2 is not allowed",
            ),
            (r#"{"backup": {"schedule": "often"}}"#, "backup.schedule"),
            (
                r#"{"backup": {"plugins": {}}}"#,
                "backup.plugins: expected an array",
            ),
            (
                r#"{"backup": {"plugins": [{"command": "x"}]}}"#,
                "backup.plugins[0].name: missing",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "../x"}]}}"#,
                "invalid plugin name",
            ),
            (
                r#"{"backup": []}"#,
                "backup: expected an object, found an array",
            ),
            (
                r#"{"local_only": "yes"}"#,
                "local_only: expected true or false",
            ),
            (
                r#"{"backup": {"secrets": "sometimes"}}"#,
                "backup.secrets: \"sometimes\" is not allowed",
            ),
            (
                r#"{"backup": {"thrum_backup_schedule": "soon"}}"#,
                "backup.thrum_backup_schedule",
            ),
            (r#"[1]"#, "expected a JSON object at the top level"),
            (r#"{"backup": "#, "not valid JSON"),
        ];
        for (text, needle) in cases {
            let err = load_str(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text} -> {err}");
            assert!(err.contains("config.json"), "{err}");
        }
    }

    #[test]
    fn unknown_backup_keys_warn_and_survive() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{
  "daemon": {"port": 9999},
  "backup": {
    "mystery": 1,
    "retention": {"daily": 3, "yearly": 2}
  },
  "zeta": [1, 2]
}
"#;
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        let mut cfg = ThrumConfig::load(dir.path()).unwrap();
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
        cfg.set_schedule(Some("24h")).unwrap();
        cfg.set_schedule(None).unwrap();
        let after: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        let before: Value = serde_json::from_str(text).unwrap();
        assert_eq!(after, before);
        // Key order survives too.
        let keys: Vec<_> = after.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["daemon", "backup", "zeta"]);
    }

    #[test]
    fn plugins_add_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ThrumConfig::load(dir.path()).unwrap();
        let p = PluginEntry::Shell(ShellPlugin {
            name: "notes".into(),
            command: "true".into(),
            include: vec!["notes/*.md".into()],
        });
        cfg.add_plugin(&p, false).unwrap();
        assert!(
            cfg.add_plugin(&p, false)
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
        let cfg2 = ThrumConfig::load(dir.path()).unwrap();
        assert_eq!(cfg2.backup.plugins, vec![p]);
        let mut cfg3 = cfg2;
        assert!(cfg3.remove_plugin("notes").unwrap());
        assert!(!cfg3.remove_plugin("notes").unwrap());
        assert!(cfg3.backup.plugins.is_empty());
    }

    #[test]
    fn every_shipped_example_parses_without_warnings() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let tmp = tempfile::tempdir().unwrap();
            std::fs::copy(&path, tmp.path().join("config.json")).unwrap();
            let cfg =
                ThrumConfig::load(tmp.path()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                cfg.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                cfg.warnings
            );
            n += 1;
        }
        assert!(n >= 4, "examples missing from {}", dir.display());
    }

    #[test]
    fn wasm_entries_parse_and_round_trip() {
        let cfg = load_str(
            r#"{"backup": {"plugins": [{"name": "b", "component": "preset:beads",
               "grants": ["read:.beads", "write:.beads", "exec:bd"],
               "limits": {"timeout_secs": 5}, "config": {"refresh": true}}]}}"#,
        )
        .unwrap();
        let PluginEntry::Wasm(w) = &cfg.backup.plugins[0] else {
            panic!("expected a wasm plugin")
        };
        assert_eq!(w.grants[2], Grant::Exec("bd".into()));
        assert_eq!(w.limits.timeout_secs, 5);
        assert_eq!(w.limits.memory_mib, 256);
        for (text, needle) in [
            (
                r#"{"backup": {"plugins": [{"name": "x", "component": "p.wasm"}]}}"#,
                "sha256",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "x", "component": "preset:beads", "grants": ["read:../etc"]}]}}"#,
                "without `..`",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "x", "component": "preset:beads", "grants": ["exec:/bin/sh"]}]}}"#,
                "bare program name",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "x", "component": "preset:beads", "grants": ["net:all"]}]}}"#,
                "unknown grant kind",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "x", "component": "preset:beads", "limits": {"memory_mib": 0}}]}}"#,
                "positive integer",
            ),
        ] {
            let err = load_str(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text} -> {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trip_keeps_every_other_key(
            keys in proptest::collection::vec("[a-z_]{1,8}", 0..6),
            vals in proptest::collection::vec(proptest::num::i64::ANY, 0..6),
        ) {
            let mut doc = Map::new();
            for (k, v) in keys.iter().zip(vals.iter()) {
                if k != "backup" && k != "local_only" {
                    doc.insert(k.clone(), Value::from(*v));
                }
            }
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("config.json"), render(&doc)).unwrap();
            let mut cfg = ThrumConfig::load(dir.path()).unwrap();
            cfg.set_schedule(Some("1h")).unwrap();
            cfg.set_schedule(None).unwrap();
            let mut after: Map<String, Value> = serde_json::from_slice(
                &std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
            // The emptied backup object is the only addition.
            proptest::prop_assert_eq!(after.shift_remove("backup"), Some(Value::Object(Map::new())));
            proptest::prop_assert_eq!(after, doc);
        }
    }
}
