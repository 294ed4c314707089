//! Reading the `backup` section: serde derives its shape, `serde_path_to_error` names the
//! dotted key of an error (`backup.plugins[0].name`), `serde_ignored` the keys we do not know
//! (warned about, and kept on every write). What serde cannot judge — ranges, durations,
//! names, grants, keys — is checked by the small value types below, each through `TryFrom`,
//! so that their messages come after the dotted key like serde's own.

use std::marker::PhantomData;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::{
    BackupConfig, BundleRecord, ConfigError, Grant, PluginEntry, PluginLimits, ReplicaEntry,
    Retention, Secrets, ShellPlugin, TrustedKey, WasmPlugin, is_public_key,
};
use crate::duration;

/// Deserialize `value`, found at `key` of the document in `path`, into `T`; keys `T` does not
/// know are added to `warnings`.
pub(super) fn typed<T: DeserializeOwned>(
    path: &Path,
    key: &str,
    value: &Value,
    warnings: &mut Vec<String>,
) -> Result<T, ConfigError> {
    let mut unknown = |p: serde_ignored::Path<'_>| {
        warnings.push(format!(
            "unknown key {} (ignored, kept)",
            join(key, &ignored_path(&p))
        ));
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut unknown);
    serde_path_to_error::deserialize(ignored).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { at };
        let (at, message) = explain(&at, &e.inner().to_string(), value);
        ConfigError::Value {
            path: path.to_path_buf(),
            key: join(key, &at),
            message,
        }
    })
}

/// `backup` read into its typed form.
pub(super) fn backup(
    path: &Path,
    value: &Value,
    warnings: &mut Vec<String>,
) -> Result<BackupConfig, ConfigError> {
    let raw: Obj<RawBackup> = typed(path, "backup", value, warnings)?;
    let raw = raw.0;
    let retention = raw.retention.map(|r| r.0).unwrap_or_default();
    let mut cfg = BackupConfig {
        dir: raw.dir.filter(|s| !s.is_empty()),
        schedule: raw.schedule.and_then(|s| s.0),
        own_schedule: raw.thrum_backup_schedule.and_then(|s| s.0),
        db_check_every: raw.db_check_every.map(|c| c.0),
        secrets: raw.secrets.map(|s| s.0).unwrap_or_default(),
        post_backup: raw.post_backup.filter(|s| !s.trim().is_empty()),
        daily: retention.daily.map(|t| t.0),
        weekly: retention.weekly.map(|t| t.0),
        monthly: retention.monthly.map(|t| t.0),
        last: retention.last.map(|t| t.0),
        trusted_keys: raw
            .trusted_keys
            .unwrap_or_default()
            .into_iter()
            .map(|k| TrustedKey {
                name: k.0.name.unwrap_or_default(),
                key: k.0.key.0,
            })
            .collect(),
        plugins: Vec::new(),
        replicas: Vec::new(),
    };
    for (i, r) in raw.replicas.unwrap_or_default().into_iter().enumerate() {
        let r = r.0;
        let _ = r.password;
        if cfg.replicas.iter().any(|x| x.name == r.name.0) {
            return Err(ConfigError::Value {
                path: path.to_path_buf(),
                key: format!("backup.replicas[{i}].name"),
                message: format!("duplicate replica name {:?}", r.name.0),
            });
        }
        cfg.replicas.push(ReplicaEntry {
            name: r.name.0,
            repository: r.repository.0,
            password_file: r.password_file,
            password_command: r.password_command,
            options: r.options.unwrap_or_default(),
            retention: r.retention.map(|t| {
                let t = t.0;
                let d = Retention::DEFAULT;
                Retention {
                    daily: t.daily.map_or(d.daily, |x| x.0),
                    weekly: t.weekly.map_or(d.weekly, |x| x.0),
                    monthly: t.monthly.map_or(d.monthly, |x| x.0),
                    last: t.last.map_or(d.last, |x| x.0),
                }
            }),
            timeout_secs: r.timeout_secs.map(|t| t.0),
        });
    }
    for (i, plugin) in raw.plugins.unwrap_or_default().into_iter().enumerate() {
        let key = format!("backup.plugins[{i}]");
        let plugin = plugin.0.entry(path, &key, warnings)?;
        if cfg.plugins.iter().any(|p| p.name() == plugin.name()) {
            return Err(ConfigError::Value {
                path: path.to_path_buf(),
                key: format!("{key}.name"),
                message: format!("duplicate plugin name {:?}", plugin.name()),
            });
        }
        cfg.plugins.push(plugin);
    }
    Ok(cfg)
}

#[derive(Deserialize)]
struct RawBackup {
    dir: Option<String>,
    schedule: Option<Interval>,
    thrum_backup_schedule: Option<Interval>,
    db_check_every: Option<CheckEvery>,
    secrets: Option<SecretsValue>,
    post_backup: Option<String>,
    retention: Option<Obj<RawRetention>>,
    trusted_keys: Option<Vec<Obj<RawKey>>>,
    plugins: Option<Vec<Obj<RawPlugin>>>,
    replicas: Option<Vec<Obj<RawReplica>>>,
}

/// An entry of `backup.replicas`. No `password` key: config.json is not a secret store.
#[derive(Deserialize)]
struct RawReplica {
    name: ReplicaName,
    password: Option<NoPassword>,
    repository: Repository,
    password_file: Option<String>,
    password_command: Option<String>,
    options: Option<std::collections::BTreeMap<String, String>>,
    retention: Option<Obj<RawRetention>>,
    timeout_secs: Option<Positive>,
}

/// A `password` key in a replica entry: refused, whatever it holds.
struct NoPassword;

impl<'de> Deserialize<'de> for NoPassword {
    fn deserialize<D: de::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::custom(
            "a password is never read from config.json: use password_file, password_command, \
             or the THRUM_BACKUP_PASSWORD or RESTIC_PASSWORD environment variable",
        ))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct ReplicaName(String);

impl TryFrom<String> for ReplicaName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        super::check_replica_name(&name).map(|()| Self(name))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Repository(String);

impl TryFrom<String> for Repository {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, &'static str> {
        if s.trim().is_empty() {
            Err("expected a repository (a path, sftp:…, rest:…, s3:…)")
        } else {
            Ok(Self(s))
        }
    }
}

#[derive(Deserialize, Default)]
struct RawRetention {
    daily: Option<Tier>,
    weekly: Option<Tier>,
    monthly: Option<Tier>,
    last: Option<Tier>,
}

#[derive(Deserialize)]
struct RawKey {
    name: Option<String>,
    key: PublicKey,
}

/// A plugin entry of either kind: one with a `component` is a WebAssembly plugin.
#[derive(Deserialize)]
struct RawPlugin {
    name: PluginName,
    command: Option<String>,
    include: Option<Vec<String>>,
    component: Option<String>,
    sha256: Option<Sha256>,
    grants: Option<Vec<Grant>>,
    limits: Option<Obj<RawLimits>>,
    config: Option<Map<String, Value>>,
    bundle: Option<Obj<RawBundle>>,
    allow_dangerous: Option<bool>,
}

#[derive(Deserialize)]
struct RawLimits {
    timeout_secs: Option<Positive>,
    memory_mib: Option<Positive>,
    output_mib: Option<Positive>,
    max_files: Option<Positive>,
}

#[derive(Deserialize)]
struct RawBundle {
    version: String,
    signed_by: Option<PublicKey>,
}

impl RawPlugin {
    fn entry(
        self,
        path: &Path,
        key: &str,
        warnings: &mut Vec<String>,
    ) -> Result<PluginEntry, ConfigError> {
        let err = |field: &str, message: &str| ConfigError::Value {
            path: path.to_path_buf(),
            key: format!("{key}.{field}"),
            message: message.to_owned(),
        };
        let name = self.name.0;
        let Some(component) = self.component else {
            let wasm_only = [
                ("sha256", self.sha256.is_some()),
                ("grants", self.grants.is_some()),
                ("limits", self.limits.is_some()),
                ("config", self.config.is_some()),
                ("bundle", self.bundle.is_some()),
                ("allow_dangerous", self.allow_dangerous.is_some()),
            ];
            for (field, _) in wasm_only.iter().filter(|(_, set)| *set) {
                warnings.push(format!("unknown key {key}.{field} (ignored, kept)"));
            }
            return Ok(PluginEntry::Shell(ShellPlugin {
                name,
                command: self.command.unwrap_or_default(),
                include: self.include.unwrap_or_default(),
            }));
        };
        for (field, set) in [
            ("command", self.command.is_some()),
            ("include", self.include.is_some()),
        ] {
            if set {
                warnings.push(format!("unknown key {key}.{field} (ignored, kept)"));
            }
        }
        if component.is_empty() {
            return Err(err(
                "component",
                "empty; use preset:<name> or a path inside the repository",
            ));
        }
        let sha256 = self.sha256.map(|s| s.0);
        if sha256.is_none() && !component.starts_with("preset:") {
            return Err(err(
                "sha256",
                "missing: a component file needs its sha256 pin (`thrum-backup plugin add --wasm` writes it)",
            ));
        }
        let mut limits = PluginLimits::default();
        if let Some(Obj(l)) = self.limits {
            let set = |slot: &mut u64, v: Option<Positive>| *slot = v.map_or(*slot, |p| p.0);
            set(&mut limits.timeout_secs, l.timeout_secs);
            set(&mut limits.memory_mib, l.memory_mib);
            set(&mut limits.output_mib, l.output_mib);
            set(&mut limits.max_files, l.max_files);
        }
        Ok(PluginEntry::Wasm(WasmPlugin {
            name,
            component,
            sha256,
            grants: self.grants.unwrap_or_default(),
            limits,
            config: Value::Object(self.config.unwrap_or_default()),
            bundle: self.bundle.map(|Obj(b)| BundleRecord {
                version: b.version,
                signed_by: b.signed_by.map(|k| k.0),
            }),
            allow_dangerous: self.allow_dangerous.unwrap_or(false),
        }))
    }
}

/// A retention tier: a count, `0` (off) or `-1` (forever).
#[derive(Deserialize)]
#[serde(try_from = "i64")]
struct Tier(i64);

impl TryFrom<i64> for Tier {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        if n < -1 {
            return Err(format!(
                "{n} is not allowed: use a count, 0 to disable, or -1 to keep forever"
            ));
        }
        Ok(Self(n))
    }
}

/// A schedule: a Go duration, or `""` / `"off"` for none.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Interval(Option<String>);

impl TryFrom<String> for Interval {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s == "off" {
            return Ok(Self(None));
        }
        duration::parse(&s)?;
        Ok(Self(Some(s)))
    }
}

/// `backup.db_check_every`: a Go duration, `"0"` for every backup. It cannot be turned off.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct CheckEvery(String);

impl TryFrom<String> for CheckEvery {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        duration::parse(&s)
            .map(|_| Self(s))
            .map_err(|e| format!("{e}: use a Go duration such as \"24h\" (\"0\": at every backup)"))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct SecretsValue(Secrets);

impl TryFrom<String> for SecretsValue {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "include" => Ok(Self(Secrets::Include)),
            "exclude" => Ok(Self(Secrets::Exclude)),
            other => Err(format!(
                "{other:?} is not allowed: use \"include\" (the default) or \"exclude\""
            )),
        }
    }
}

/// `ed25519:` and 64 hex digits, lowercased.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct PublicKey(String);

impl TryFrom<String> for PublicKey {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, &'static str> {
        let s = s.to_ascii_lowercase();
        if is_public_key(&s) {
            Ok(Self(s))
        } else {
            Err("expected ed25519:<64 hex digits> (as `thrum-backup plugin keygen` prints)")
        }
    }
}

/// A component's pin: 64 hex digits, lowercased.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Sha256(String);

impl TryFrom<String> for Sha256 {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, &'static str> {
        let s = s.to_ascii_lowercase();
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s))
        } else {
            Err("expected 64 hex digits")
        }
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct PluginName(String);

impl TryFrom<String> for PluginName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        super::check_plugin_name(&name)?;
        Ok(Self(name))
    }
}

/// A limit: a positive integer.
#[derive(Deserialize)]
#[serde(try_from = "u64")]
struct Positive(u64);

impl TryFrom<u64> for Positive {
    type Error = &'static str;
    fn try_from(n: u64) -> Result<Self, &'static str> {
        if n > 0 {
            Ok(Self(n))
        } else {
            Err("expected a positive integer, found 0")
        }
    }
}

impl<'de> Deserialize<'de> for Grant {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Grant::parse(&text).map_err(de::Error::custom)
    }
}

/// A struct read only from a JSON object (serde would also read one from an array, by
/// position).
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Obj<T>, M::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(ObjVisitor(PhantomData))
    }
}

/// The dotted key and the message of a serde error at `at` (relative to `value`): a type
/// error says what was expected and what was found, in words; a missing field is named.
fn explain(at: &str, message: &str, value: &Value) -> (String, String) {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        return (join(at, field), "missing".to_owned());
    }
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|m| m.split_once(", expected "));
    let Some((_, expected)) = mismatch else {
        return (at.to_owned(), message.to_owned());
    };
    let expected = match expected {
        "i64" => "an integer",
        "u64" => "a positive integer",
        "a boolean" => "true or false",
        "a sequence" => "an array",
        "a map" => "an object",
        e if e.starts_with("struct ") => "an object",
        e => e,
    };
    let found = match find(value, at) {
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => super::kind(v).to_owned(),
        None => "something else".to_owned(),
    };
    (at.to_owned(), format!("expected {expected}, found {found}"))
}

/// The value at the dotted path `at` (`plugins[0].name`) below `value`.
fn find<'v>(value: &'v Value, at: &str) -> Option<&'v Value> {
    let mut v = value;
    for part in at.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            v = v.get(name)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            v = v.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(v)
}

/// `serde_ignored`'s path as the dotted key the rest of the errors use.
fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        P::Map { parent, key } => join(&ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}.{b}"),
    }
}
