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

mod plugins;
mod read;
mod replicas;

pub use plugins::{
    BundleRecord, Grant, PluginEntry, PluginLimits, SHELL_EQUIVALENTS, ShellPlugin, TrustedKey,
    WasmPlugin, check_plugin_name, is_public_key,
};
pub use replicas::{
    DEFAULT_TIMEOUT_SECS, PASSWORD_ENV, PasswordFrom, ReplicaEntry, check_replica_name,
    is_repository_address,
};

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
    /// `backup.replicas`: off-site copies, pushed after every backup.
    pub replicas: Vec<ReplicaEntry>,
    /// `backup.post_backup`.
    pub post_backup: Option<String>,
    /// `backup.trusted_keys`: keys whose signed bundles `plugin install` accepts.
    pub trusted_keys: Vec<TrustedKey>,
    /// `backup.secrets`: whether snapshots hold thrum's secrets (tokens, keys).
    pub secrets: Secrets,
    /// `backup.thrum_backup_schedule`: the interval of `thrum-backup daemon`. Ours alone:
    /// thrum's daemon starts its own backup scheduler whenever `backup.schedule` is set.
    pub own_schedule: Option<String>,
    /// `backup.db_check_every` (ours): how often a database copy brought up to date page by
    /// page gets SQLite's full `quick_check` (see [`crate::snapshot::DbCheck`]).
    pub db_check_every: Option<String>,
}

/// The default of `backup.db_check_every`: a day.
pub const DB_CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

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

    /// How often a database copy brought up to date page by page gets a full `quick_check`:
    /// `backup.db_check_every` (validated on load), a day by default.
    pub fn db_check_every(&self) -> Duration {
        self.db_check_every
            .as_deref()
            .and_then(|s| duration::parse(s).ok())
            .unwrap_or(DB_CHECK_EVERY)
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
        let local_only = match doc.get("local_only") {
            None => false,
            Some(v) => {
                read::typed::<Option<bool>>(&path, "local_only", v, &mut warnings)?.unwrap_or(false)
            }
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
            Some(v) => read::backup(&path, v, &mut warnings)?,
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
        check_plugin_name(plugin.name()).map_err(|m| self.value_error("name", m))?;
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

    /// The replica named `name`.
    pub fn replica(&self, name: &str) -> Option<&ReplicaEntry> {
        self.backup.replicas.iter().find(|r| r.name == name)
    }

    /// Append a replica to `backup.replicas`, then save. Fails if the name is taken.
    pub fn add_replica(&mut self, replica: &ReplicaEntry) -> Result<(), ConfigError> {
        check_replica_name(&replica.name).map_err(|m| self.value_error("name", m))?;
        if self.replica(&replica.name).is_some() {
            return Err(self.value_error(
                "backup.replicas",
                format!("a replica named {:?} already exists", replica.name),
            ));
        }
        let backup = self.backup_object()?;
        let list = backup
            .entry("replicas")
            .or_insert_with(|| Value::Array(Vec::new()));
        if list.is_null() {
            *list = Value::Array(Vec::new());
        }
        let Some(list) = list.as_array_mut() else {
            return Err(self.value_error("backup.replicas", "expected an array".into()));
        };
        list.push(replica.to_json());
        self.save()
    }

    /// Remove the replica `name` from `backup.replicas`, then save. `Ok(false)` if absent.
    pub fn remove_replica(&mut self, name: &str) -> Result<bool, ConfigError> {
        self.remove_named("replicas", name)
    }

    /// Remove the plugin `name` from `backup.plugins`, then save. `Ok(false)` if absent.
    pub fn remove_plugin(&mut self, name: &str) -> Result<bool, ConfigError> {
        self.remove_named("plugins", name)
    }

    /// Remove the entry named `name` from the list `backup.<list>`, then save. `Ok(false)` if
    /// absent.
    fn remove_named(&mut self, list: &str, name: &str) -> Result<bool, ConfigError> {
        let backup = self.backup_object()?;
        let Some(entries) = backup.get_mut(list).and_then(Value::as_array_mut) else {
            return Ok(false);
        };
        let before = entries.len();
        entries.retain(|p| p.get("name").and_then(Value::as_str) != Some(name));
        if entries.len() == before {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<ThrumConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        ThrumConfig::load(dir.path())
    }

    #[test]
    fn replicas_are_read_checked_and_written_keeping_every_other_key() {
        let cfg = load_str(
            r#"{"x": 1, "backup": {"replicas": [
                {"name": "offsite", "repository": "sftp:u@h:/r", "password_file": "pw",
                 "options": {"key": "/k"}, "retention": {"daily": 3}, "timeout_secs": 5,
                 "colour": "blue"}]}}"#,
        )
        .unwrap();
        let r = cfg.replica("offsite").unwrap();
        assert_eq!(r.repository, "sftp:u@h:/r");
        assert_eq!(r.password_file.as_deref(), Some("pw"));
        assert_eq!(r.options["key"], "/k");
        let policy = r.retention.unwrap();
        assert_eq!(
            (policy.daily, policy.weekly),
            (3, Retention::DEFAULT.weekly)
        );
        assert_eq!(r.timeout(), Duration::from_secs(5));
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("backup.replicas[0].colour"))
        );

        let bad = |replicas: &str| {
            load_str(&format!(r#"{{"backup": {{"replicas": {replicas}}}}}"#))
                .unwrap_err()
                .to_string()
        };
        let e = bad(r#"[{"name": "a", "repository": "/r", "password": "hunter2"}]"#);
        assert!(
            e.contains("backup.replicas[0].password") && !e.contains("hunter2"),
            "{e}"
        );
        let e = bad(r#"[{"name": "a", "repository": "/r"}, {"name": "a", "repository": "/s"}]"#);
        assert!(
            e.contains("backup.replicas[1].name") && e.contains("duplicate"),
            "{e}"
        );
        let e = bad(r#"[{"name": "no/slash", "repository": "/r"}]"#);
        assert!(e.contains("invalid replica name"), "{e}");
        let e = bad(r#"[{"name": "a", "repository": " "}]"#);
        assert!(e.contains("backup.replicas[0].repository"), "{e}");
        let e = bad(r#"[{"name": "a", "repository": "/r", "timeout_secs": 0}]"#);
        assert!(e.contains("backup.replicas[0].timeout_secs"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            "{\"x\": [1, 2], \"backup\": {}}\n",
        )
        .unwrap();
        let mut cfg = ThrumConfig::load(dir.path()).unwrap();
        let mut e = ReplicaEntry::new("nas", "/srv/repo");
        e.password_command = Some("pass show backup".into());
        cfg.add_replica(&e).unwrap();
        assert!(cfg.add_replica(&e).is_err(), "a name is taken once");
        let cfg2 = ThrumConfig::load(dir.path()).unwrap();
        assert_eq!(cfg2.backup.replicas, vec![e]);
        assert_eq!(cfg2.document()["x"], serde_json::json!([1, 2]));
        let mut cfg2 = cfg2;
        assert!(cfg2.remove_replica("nas").unwrap());
        assert!(!cfg2.remove_replica("nas").unwrap());
        assert!(
            ThrumConfig::load(dir.path())
                .unwrap()
                .backup
                .replicas
                .is_empty()
        );
    }

    #[test]
    fn defaults_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ThrumConfig::load(dir.path()).unwrap();
        assert_eq!(cfg.backup.retention(), Retention::DEFAULT);
        assert_eq!(cfg.backup.db_check_every(), DB_CHECK_EVERY);
        assert!(!cfg.local_only);
    }

    #[test]
    fn the_database_check_interval_is_a_go_duration_and_zero_means_every_backup() {
        let every = |v: &str| {
            load_str(&format!(r#"{{"backup": {{"db_check_every": "{v}"}}}}"#))
                .unwrap()
                .backup
                .db_check_every()
        };
        assert_eq!(every("6h"), Duration::from_secs(6 * 3600));
        assert_eq!(every("0"), Duration::ZERO);
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
            (
                r#"{"backup": {"db_check_every": "off"}}"#,
                "backup.db_check_every: invalid duration \"off\": use a Go duration such as \"24h\"",
            ),
            (
                r#"{"backup": {"retention": [5, 4]}}"#,
                "backup.retention: expected an object, found an array",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "a"}, {"name": "a"}]}}"#,
                "backup.plugins[1].name: duplicate plugin name",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "x", "component": "preset:beads", "limits": {"output_mib": -1}}]}}"#,
                "backup.plugins[0].limits.output_mib: expected a positive integer, found -1",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "x", "component": "preset:beads", "grants": "read:a"}]}}"#,
                "backup.plugins[0].grants: expected an array, found a string",
            ),
            (
                r#"{"backup": {"trusted_keys": [{"name": "a", "key": "ed25519:zz"}]}}"#,
                "backup.trusted_keys[0].key: expected ed25519:<64 hex digits>",
            ),
            (
                r#"{"backup": {"trusted_keys": [{"name": "a"}]}}"#,
                "backup.trusted_keys[0].key: missing",
            ),
            (
                r#"{"backup": {"plugins": [{"name": "x", "component": "preset:beads", "config": [1]}]}}"#,
                "backup.plugins[0].config: expected an object, found an array",
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
        assert_eq!(
            cfg.warnings,
            [
                "unknown key backup.mystery (ignored, kept)",
                "unknown key backup.retention.yearly (ignored, kept)"
            ]
        );
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
    fn unknown_keys_in_plugin_entries_are_named_by_their_dotted_key() {
        let cfg = load_str(
            r#"{"backup": {"plugins": [
                 {"name": "s", "command": "true", "grants": ["read:x"], "colour": 1},
                 {"name": "w", "component": "preset:beads", "limits": {"cpu": 2}, "include": []}]}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.warnings,
            [
                "unknown key backup.plugins[0].colour (ignored, kept)",
                "unknown key backup.plugins[1].limits.cpu (ignored, kept)",
                "unknown key backup.plugins[0].grants (ignored, kept)",
                "unknown key backup.plugins[1].include (ignored, kept)",
            ]
        );
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
