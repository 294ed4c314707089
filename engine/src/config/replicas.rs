//! `backup.replicas`: off-site copies in restic-format repositories.
//!
//! An entry names the repository the way restic and rustic users write it and says where the
//! password comes from — a file or a command — never the password itself: config.json is not a
//! secret store. With neither, the environment is read ([`PASSWORD_ENV`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Retention;

/// The environment variables a password is read from when an entry names no file or command,
/// in this order: ours first, then restic's.
pub const PASSWORD_ENV: [(&str, PasswordFrom); 4] = [
    ("THRUM_BACKUP_PASSWORD", PasswordFrom::Value),
    ("THRUM_BACKUP_PASSWORD_FILE", PasswordFrom::File),
    ("RESTIC_PASSWORD", PasswordFrom::Value),
    ("RESTIC_PASSWORD_FILE", PasswordFrom::File),
];

/// What an environment variable of [`PASSWORD_ENV`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordFrom {
    /// The password.
    Value,
    /// The path of a file whose first line is the password.
    File,
}

/// Seconds a replica has to answer (open the repository) before a command gives up on it.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// One entry of `backup.replicas`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplicaEntry {
    /// Its name in commands and reports.
    pub name: String,
    /// The repository, as restic writes it: a path, `sftp:user@host:/path`, `rest:http://…`,
    /// `s3:http://host:port/bucket/path`, `rclone:remote:path`, `opendal:SERVICE`.
    pub repository: String,
    /// A file whose first line is the password (relative paths: to `.thrum/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// A command that prints the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_command: Option<String>,
    /// Options of the backend (rustic_backend's and OpenDAL's, e.g. `region`, `key`,
    /// `connections`, `retry`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// The replica's own retention; `None`: the local one (`backup.retention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Seconds the repository has to answer before a command gives up on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl ReplicaEntry {
    /// A new entry with nothing but its name and repository.
    pub fn new(name: impl Into<String>, repository: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            repository: repository.into(),
            password_file: None,
            password_command: None,
            options: BTreeMap::new(),
            retention: None,
            timeout_secs: None,
        }
    }

    /// The timeout in force.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS))
    }

    /// The entry as written into config.json.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::from(self.name.clone()));
        m.insert("repository".into(), Value::from(self.repository.clone()));
        if let Some(f) = &self.password_file {
            m.insert("password_file".into(), Value::from(f.clone()));
        }
        if let Some(c) = &self.password_command {
            m.insert("password_command".into(), Value::from(c.clone()));
        }
        if !self.options.is_empty() {
            let o = self
                .options
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            m.insert("options".into(), Value::Object(o));
        }
        if let Some(r) = &self.retention {
            m.insert(
                "retention".into(),
                serde_json::json!({"daily": r.daily, "weekly": r.weekly, "monthly": r.monthly, "last": r.last}),
            );
        }
        if let Some(t) = self.timeout_secs {
            m.insert("timeout_secs".into(), Value::from(t));
        }
        Value::Object(m)
    }
}

/// The rule for replica names: what `replica add` accepts and config.json must hold.
pub fn check_replica_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid replica name {name:?}: use 1-64 letters, digits, '.', '-' or '_', not starting with '.' or '-'"
        ))
    }
}

/// Whether `text` looks like a repository address rather than a replica name (it holds a
/// `:` or a `/`, which names cannot).
pub fn is_repository_address(text: &str) -> bool {
    text.contains(':') || text.contains('/')
}
