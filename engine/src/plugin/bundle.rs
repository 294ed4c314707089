//! Plugin bundles (`.tbp`): one file a team shares, so every teammate runs the same bytes with
//! the same grants.
//!
//! A bundle is a plain zip with at most four entries:
//!
//! | entry            | what                                                              |
//! |------------------|-------------------------------------------------------------------|
//! | `manifest.json`  | name, version, contract, description, grants, default config, and the sha256 of every other file except the signature |
//! | `plugin.wasm`    | the component                                                     |
//! | `README.md`      | optional                                                          |
//! | `signature.json` | optional: an ed25519 signature over the exact bytes of `manifest.json` |
//!
//! Reading is strict and happens before anything is written: the zip passes the same
//! structural checks as a backup archive (no `..`, no symlinks, no duplicates, sizes that do
//! not lie, a bounded ratio), only the four names are accepted, every checksum must match, the
//! manifest must agree with what the component's `describe` says, and a signature present
//! must verify. Whether its key is *trusted* is the installer's question ([`Signer`]).
//!
//! Installed, a bundle becomes `.thrum/plugins/<name>/` (the component, the manifest, the
//! signature and the README, meant to be committed) plus a config entry pinning the
//! component's sha256, the confirmed grants, and a [`BundleRecord`] of its version and signer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::archive::{CheckedArchive, Limits};
use crate::config::{BundleRecord, Grant, PluginEntry, PluginLimits, ThrumConfig, WasmPlugin};
use crate::fsx;
use crate::plugin::wasm::{self, Description};

/// The file extension of a bundle.
pub const EXTENSION: &str = "tbp";
/// The `format` every bundle manifest carries.
pub const FORMAT: &str = "thrum-backup-plugin-bundle/1";
/// The largest bundle file accepted, in bytes.
pub const MAX_BUNDLE_BYTES: u64 = 128 << 20;
/// The largest component accepted (uncompressed), in bytes.
pub const MAX_COMPONENT_BYTES: u64 = 128 << 20;

const MANIFEST: &str = "manifest.json";
const COMPONENT: &str = "plugin.wasm";
const README: &str = "README.md";
const SIGNATURE: &str = "signature.json";
const NAMES: [&str; 4] = [MANIFEST, COMPONENT, README, SIGNATURE];
const MAX_SMALL_FILE: u64 = 1 << 20;

/// Why a bundle, a key or an installation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle file is refused; nothing was installed.
    #[error("{}: refused: {reason}", path.display())]
    Refused {
        /// The bundle.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key file or a public key is unusable.
    #[error("{0}")]
    Key(String),
    /// Packing was refused (the manifest disagrees with the component ...).
    #[error("{0}")]
    Pack(String),
    /// A file operation or the config failed.
    #[error(transparent)]
    Io(#[from] crate::Error),
}

impl From<crate::config::ConfigError> for BundleError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Io(e.into())
    }
}

/// `manifest.json` of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The plugin's name (as `describe` says).
    pub name: String,
    /// The plugin's version (as `describe` says).
    pub version: String,
    /// The contract version the component was built for (`0.1.0`).
    pub contract: String,
    /// One line.
    pub description: String,
    /// The grants the plugin requests (as `describe` says).
    pub grants: Vec<String>,
    /// The config the plugin gets unless the user changes it (a JSON object).
    pub config: Value,
    /// What the config accepts.
    pub config_help: String,
    /// sha256 of every file of the bundle but the manifest and the signature.
    pub files: BTreeMap<String, String>,
}

/// What the author may set when packing (`--manifest plugin.json`); every field is optional and
/// defaults to what the component says. Name, version and grants, when given, must agree with
/// the component.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    /// Must equal `describe`'s name.
    pub name: Option<String>,
    /// Must equal `describe`'s version.
    pub version: Option<String>,
    /// Replaces `describe`'s one-line description.
    pub description: Option<String>,
    /// Must equal `describe`'s grants (as a set).
    pub grants: Option<Vec<String>>,
    /// The default config (a JSON object).
    pub config: Option<Value>,
}

/// `signature.json` of a signed bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The signer's public key, `ed25519:<hex>`.
    pub public_key: String,
    /// The signature over the bytes of `manifest.json`, hex.
    pub signature: String,
}

/// A public key, written `ed25519:<64 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parse `ed25519:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<Self, BundleError> {
        let bad = || {
            BundleError::Key(format!(
                "{text:?} is not a public key: expected ed25519:<64 hex digits> (as `thrum-backup plugin keygen` prints)"
            ))
        };
        let hex_part = text.trim().strip_prefix("ed25519:").ok_or_else(bad)?;
        let bytes: [u8; 32] = hex::decode(hex_part)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| bad())
    }

    fn verify(&self, message: &[u8], signature_hex: &str) -> Result<(), String> {
        let bytes: [u8; 64] = hex::decode(signature_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not 64 bytes of hex")?;
        self.0
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .map_err(|_| "the signature does not match the manifest (the bundle was altered, or signed by another key)".to_owned())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", hex::encode(self.0.as_bytes()))
    }
}

/// A signing key, kept in a key file made by [`keygen`].
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    kind: String,
    algorithm: String,
    secret_key: String,
    public_key: String,
}

const KEY_KIND: &str = "thrum-backup bundle signing key";

impl SecretKey {
    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Read a key file made by [`keygen`].
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let bytes = fsx::read(path)?;
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
            BundleError::Key(format!(
                "{}: not a thrum-backup key file: {e}",
                path.display()
            ))
        })?;
        let seed: [u8; 32] = (file.kind == KEY_KIND && file.algorithm == "ed25519")
            .then(|| hex::decode(&file.secret_key).ok())
            .flatten()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                BundleError::Key(format!(
                    "{}: not a thrum-backup ed25519 key file",
                    path.display()
                ))
            })?;
        let key = Self(SigningKey::from_bytes(&seed));
        if key.public().to_string() != file.public_key {
            return Err(BundleError::Key(format!(
                "{}: its public key does not belong to its secret key (the file was edited)",
                path.display()
            )));
        }
        Ok(key)
    }
}

/// Make a new signing key and write it to `path` (mode 0600; an existing file is never
/// replaced). Returns the key.
pub fn keygen(path: &Path) -> Result<SecretKey, BundleError> {
    use rand::TryRngCore as _;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| BundleError::Key(format!("no randomness from the OS: {e}")))?;
    let key = SecretKey(SigningKey::from_bytes(&seed));
    let file = KeyFile {
        kind: KEY_KIND.into(),
        algorithm: "ed25519".into(),
        secret_key: hex::encode(seed),
        public_key: key.public().to_string(),
    };
    let mut text = serde_json::to_vec_pretty(&file).map_err(|e| BundleError::Key(e.to_string()))?;
    text.push(b'\n');
    write_private_new(path, &text)?;
    Ok(key)
}

fn write_private_new(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsx::create_dir_all(parent)?;
    }
    let io = |action, e| crate::Error::Io {
        action,
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                BundleError::Key(format!(
                    "{} exists: a key file is never replaced (choose another name)",
                    path.display()
                ))
            } else {
                io("create", e).into()
            }
        })?;
    f.write_all(bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("sync", e))?;
    Ok(())
}

fn grant_set(grants: &[String]) -> Result<BTreeSet<String>, String> {
    grants
        .iter()
        .map(|g| Grant::parse(g).map(|g| g.to_string()))
        .collect()
}

/// Make a bundle: the component (checked by loading it and calling `describe`), the manifest
/// (defaults from `describe`, overrides from `pack`), an optional README, and a signature when
/// `key` is given. Returns the bundle's bytes and its manifest.
pub fn pack(
    component: &[u8],
    pack: &PackManifest,
    readme: Option<&[u8]>,
    key: Option<&SecretKey>,
) -> Result<(Vec<u8>, BundleManifest), BundleError> {
    let loaded = wasm::load(component)
        .map_err(|e| BundleError::Pack(format!("the component was refused: {e}")))?;
    let d = wasm::describe_standalone(&loaded)
        .map_err(|e| BundleError::Pack(format!("the component's describe failed: {e}")))?;
    let described: Vec<String> = d.grants.iter().map(ToString::to_string).collect();
    if let Some(name) = &pack.name
        && *name != d.name
    {
        return Err(BundleError::Pack(format!(
            "the manifest names the plugin {name:?} but the component says {:?}",
            d.name
        )));
    }
    if let Some(version) = &pack.version
        && *version != d.version
    {
        return Err(BundleError::Pack(format!(
            "the manifest says version {version} but the component says {}",
            d.version
        )));
    }
    if let Some(grants) = &pack.grants {
        let given =
            grant_set(grants).map_err(|m| BundleError::Pack(format!("manifest grants: {m}")))?;
        let wanted = grant_set(&described).map_err(BundleError::Pack)?;
        if given != wanted {
            return Err(BundleError::Pack(format!(
                "the manifest's grants ({}) differ from the component's ({})",
                list_or_none(given.iter()),
                list_or_none(wanted.iter())
            )));
        }
    }
    let config = match &pack.config {
        None => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return Err(BundleError::Pack(
                "the manifest's config must be a JSON object".into(),
            ));
        }
    };
    let mut files = BTreeMap::new();
    files.insert(COMPONENT.to_owned(), fsx::sha256_hex(component));
    if let Some(r) = readme {
        if r.len() as u64 > MAX_SMALL_FILE {
            return Err(BundleError::Pack("the README is larger than 1 MiB".into()));
        }
        files.insert(README.to_owned(), fsx::sha256_hex(r));
    }
    let manifest = BundleManifest {
        format: FORMAT.into(),
        name: d.name,
        version: d.version,
        contract: d.contract,
        description: pack.description.clone().unwrap_or(d.description),
        grants: described,
        config,
        config_help: d.config_help,
        files,
    };
    let mut manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::Pack(e.to_string()))?;
    manifest_bytes.push(b'\n');
    let signature = key.map(|k| {
        let sig = SignatureFile {
            algorithm: "ed25519".into(),
            public_key: k.public().to_string(),
            signature: hex::encode(k.0.sign(&manifest_bytes).to_bytes()),
        };
        let mut bytes = serde_json::to_vec_pretty(&sig).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    });
    let mut entries: Vec<(&str, &[u8])> = vec![(MANIFEST, &manifest_bytes), (COMPONENT, component)];
    if let Some(r) = readme {
        entries.push((README, r));
    }
    if let Some(s) = &signature {
        entries.push((SIGNATURE, s));
    }
    let bytes = zip_entries(&entries)
        .map_err(|e| BundleError::Pack(format!("cannot write the zip: {e}")))?;
    Ok((bytes, manifest))
}

/// A deterministic zip (fixed times and modes) of `entries`.
fn zip_entries(entries: &[(&str, &[u8])]) -> zip::result::ZipResult<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(9))
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    for (name, data) in entries {
        zip.start_file(*name, options)?;
        zip.write_all(data)?;
    }
    Ok(zip.finish()?.into_inner())
}

fn list_or_none<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A bundle whose every check passed except trust (see [`Bundle::signer`]).
#[derive(Debug)]
pub struct Bundle {
    /// The bundle file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: BundleManifest,
    manifest_bytes: Vec<u8>,
    component: Vec<u8>,
    readme: Option<Vec<u8>>,
    signature: Option<(SignatureFile, Vec<u8>)>,
    /// What the component says about itself (equal to the manifest).
    pub description: Description,
}

/// Who signed a bundle, as far as this repository's config is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Signer {
    /// No signature.
    Unsigned,
    /// A valid signature by a key in `backup.trusted_keys`.
    Trusted {
        /// The key.
        key: String,
        /// Its holder, as the config names them.
        name: String,
    },
    /// A valid signature by a key this repository does not trust.
    Untrusted {
        /// The key.
        key: String,
    },
}

impl Signer {
    /// The key, if signed.
    pub fn key(&self) -> Option<&str> {
        match self {
            Signer::Unsigned => None,
            Signer::Trusted { key, .. } | Signer::Untrusted { key } => Some(key),
        }
    }
}

/// A bundle's files, after the checks that need no WebAssembly: the zip's structure, the
/// names, sizes and checksums, the manifest's syntax, and the signature if there is one.
#[derive(Debug)]
pub struct Parts {
    /// The parsed manifest.
    pub manifest: BundleManifest,
    manifest_bytes: Vec<u8>,
    component: Vec<u8>,
    readme: Option<Vec<u8>>,
    signature: Option<(SignatureFile, Vec<u8>)>,
}

impl Parts {
    /// The component's bytes (their sha256 matches the manifest's).
    pub fn component(&self) -> &[u8] {
        &self.component
    }

    /// Read `path` and run every check that does not load the component.
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let refused = |reason: String| BundleError::Refused {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| crate::Error::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e,
        })?;
        if !meta.is_file() {
            return Err(refused("not a file".into()));
        }
        if meta.len() > MAX_BUNDLE_BYTES {
            return Err(refused(format!(
                "{} bytes is over the bundle size cap of {MAX_BUNDLE_BYTES} bytes",
                meta.len()
            )));
        }
        let limits = Limits {
            max_total: MAX_COMPONENT_BYTES + 3 * MAX_SMALL_FILE,
            max_entries: NAMES.len(),
            max_ratio: 1_100,
        };
        // The archive's own errors name the file already.
        let strip = |e: crate::Error| {
            let text = e.to_string();
            let prefix = format!("{}: ", path.display());
            text.strip_prefix(&prefix)
                .map(str::to_owned)
                .unwrap_or(text)
        };
        let mut zip = CheckedArchive::open(path, &limits).map_err(|e| refused(strip(e)))?;
        let present: BTreeSet<String> = zip.entries().iter().map(|e| e.path.clone()).collect();
        if let Some(other) = present.iter().find(|n| !NAMES.contains(&n.as_str())) {
            return Err(refused(format!(
                "unexpected entry {other:?} (a bundle holds only {})",
                NAMES.join(", ")
            )));
        }
        if zip.entries().len() != present.len() {
            return Err(refused(
                "a directory entry (a bundle holds only files)".into(),
            ));
        }
        let manifest_bytes = zip
            .read_entry(MANIFEST, MAX_SMALL_FILE)
            .map_err(|e| refused(strip(e)))?
            .ok_or_else(|| refused("no manifest.json: not a plugin bundle".into()))?;
        let manifest: BundleManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| refused(format!("manifest.json: {e}")))?;
        if manifest.format != FORMAT {
            return Err(refused(format!(
                "manifest.json: format {:?} is not {FORMAT:?} (made by a newer thrum-backup?)",
                manifest.format
            )));
        }
        let listed: BTreeSet<String> = manifest.files.keys().cloned().collect();
        let expected: BTreeSet<String> = present
            .iter()
            .filter(|n| *n != MANIFEST && *n != SIGNATURE)
            .cloned()
            .collect();
        if listed != expected {
            return Err(refused(format!(
                "manifest.json lists {} but the bundle holds {}",
                list_or_none(listed.iter()),
                list_or_none(expected.iter())
            )));
        }
        let component = zip
            .read_entry(COMPONENT, MAX_COMPONENT_BYTES)
            .map_err(|e| refused(strip(e)))?
            .ok_or_else(|| refused("no plugin.wasm".into()))?;
        let readme = zip
            .read_entry(README, MAX_SMALL_FILE)
            .map_err(|e| refused(strip(e)))?;
        for (name, bytes) in [(COMPONENT, Some(&component)), (README, readme.as_ref())] {
            if let (Some(bytes), Some(want)) = (bytes, manifest.files.get(name)) {
                let found = fsx::sha256_hex(bytes);
                if found != want.to_ascii_lowercase() {
                    return Err(refused(format!(
                        "{name} does not match its checksum in manifest.json (expected {want}, found {found}): altered or swapped"
                    )));
                }
            }
        }
        let signature = match zip
            .read_entry(SIGNATURE, MAX_SMALL_FILE)
            .map_err(|e| refused(strip(e)))?
        {
            None => None,
            Some(bytes) => {
                let sig: SignatureFile = serde_json::from_slice(&bytes)
                    .map_err(|e| refused(format!("signature.json: {e}")))?;
                if sig.algorithm != "ed25519" {
                    return Err(refused(format!(
                        "signature.json: unknown algorithm {:?}",
                        sig.algorithm
                    )));
                }
                let key = PublicKey::parse(&sig.public_key)
                    .map_err(|e| refused(format!("signature.json: {e}")))?;
                key.verify(&manifest_bytes, &sig.signature)
                    .map_err(|m| refused(format!("signature.json: {m}")))?;
                Some((sig, bytes))
            }
        };
        Ok(Self {
            manifest,
            manifest_bytes,
            component,
            readme,
            signature,
        })
    }
}

impl Bundle {
    /// Read and check `path`: structure, names, sizes, checksums, the signature if there is
    /// one ([`Parts::read`]), then the manifest against what the component's `describe` says.
    pub fn open(path: &Path) -> Result<Self, BundleError> {
        let refused = |reason: String| BundleError::Refused {
            path: path.to_path_buf(),
            reason,
        };
        let Parts {
            manifest,
            manifest_bytes,
            component,
            readme,
            signature,
        } = Parts::read(path)?;
        let loaded =
            wasm::load(&component).map_err(|e| refused(format!("plugin.wasm was refused: {e}")))?;
        let description = wasm::describe_standalone(&loaded)
            .map_err(|e| refused(format!("plugin.wasm's describe failed: {e}")))?;
        let described: BTreeSet<String> =
            description.grants.iter().map(ToString::to_string).collect();
        let declared = grant_set(&manifest.grants)
            .map_err(|m| refused(format!("manifest.json grants: {m}")))?;
        let mut disagreements = Vec::new();
        if manifest.name != description.name {
            disagreements.push(format!(
                "name {:?} vs {:?}",
                manifest.name, description.name
            ));
        }
        if manifest.version != description.version {
            disagreements.push(format!(
                "version {} vs {}",
                manifest.version, description.version
            ));
        }
        if manifest.contract != description.contract {
            disagreements.push(format!(
                "contract {} vs {}",
                manifest.contract, description.contract
            ));
        }
        if declared != described {
            disagreements.push(format!(
                "grants ({}) vs ({})",
                list_or_none(declared.iter()),
                list_or_none(described.iter())
            ));
        }
        if !disagreements.is_empty() {
            return Err(refused(format!(
                "manifest.json disagrees with the component: {}",
                disagreements.join("; ")
            )));
        }
        if !manifest.config.is_object() {
            return Err(refused(
                "manifest.json: config must be a JSON object".into(),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            manifest,
            manifest_bytes,
            component,
            readme,
            signature,
            description,
        })
    }

    /// Who signed it, judged against the config's trusted keys.
    pub fn signer(&self, config: &ThrumConfig) -> Signer {
        match &self.signature {
            None => Signer::Unsigned,
            Some((sig, _)) => {
                let key = sig.public_key.to_ascii_lowercase();
                match config.trusted(&key) {
                    Some(t) => Signer::Trusted {
                        name: t.name.clone(),
                        key,
                    },
                    None => Signer::Untrusted { key },
                }
            }
        }
    }

    /// The sha256 of the component.
    pub fn component_sha256(&self) -> String {
        fsx::sha256_hex(&self.component)
    }

    /// The grants the bundle requests.
    pub fn grants(&self) -> &[Grant] {
        &self.description.grants
    }
}

/// The folder an installed bundle lives in, relative to the repository root.
pub fn install_dir(name: &str) -> PathBuf {
    Path::new(".thrum").join("plugins").join(name)
}

/// Install a checked bundle: write `.thrum/plugins/<name>/` (replacing an earlier version as
/// one atomic exchange) and the config entry with the component's pin and `grants`. An earlier
/// entry of the same name keeps its limits and config. Trust and confirmation are the
/// caller's; this only writes.
pub fn install(
    repo_root: &Path,
    config: &mut ThrumConfig,
    bundle: &Bundle,
    grants: Vec<Grant>,
    allow_dangerous: bool,
) -> Result<WasmPlugin, BundleError> {
    let name = &bundle.manifest.name;
    let rel = install_dir(name);
    let dest = repo_root.join(&rel);
    let parent = dest.parent().unwrap_or(repo_root).to_path_buf();
    fsx::create_dir_all(&parent)?;
    let stage = tempfile::Builder::new()
        .prefix(&format!(".install-{name}-"))
        .tempdir_in(&parent)
        .map_err(|e| crate::Error::Io {
            action: "create a staging folder in",
            path: parent.clone(),
            source: e,
        })?;
    let mut files: Vec<(&str, &[u8])> = vec![
        (COMPONENT, &bundle.component),
        (MANIFEST, &bundle.manifest_bytes),
    ];
    if let Some(r) = &bundle.readme {
        files.push((README, r));
    }
    if let Some((_, bytes)) = &bundle.signature {
        files.push((SIGNATURE, bytes));
    }
    for (file, bytes) in files {
        fsx::write_new_with(&stage.path().join(file), |w| w.write_all(bytes))?;
    }
    fsx::sync_dir(stage.path())?;
    let previous = config.backup.plugins.iter().find_map(|p| match p {
        PluginEntry::Wasm(w) if w.name == *name => Some(w.clone()),
        _ => None,
    });
    let entry = WasmPlugin {
        name: name.clone(),
        component: rel.join(COMPONENT).to_string_lossy().into_owned(),
        sha256: Some(bundle.component_sha256()),
        grants,
        limits: previous
            .as_ref()
            .map_or_else(PluginLimits::default, |p| p.limits),
        config: previous
            .as_ref()
            .map_or_else(|| bundle.manifest.config.clone(), |p| p.config.clone()),
        bundle: Some(BundleRecord {
            version: bundle.manifest.version.clone(),
            signed_by: bundle
                .signature
                .as_ref()
                .map(|(s, _)| s.public_key.to_ascii_lowercase()),
        }),
        allow_dangerous,
    };
    // Put the new folder in place: exchanged with the old one (kept in the stage until the
    // config is written), or renamed when there was none.
    let had_old = dest.exists();
    if had_old {
        if !fsx::exchange(stage.path(), &dest)? {
            let old = fsx::temp_sibling(&dest, "old");
            std::fs::rename(&dest, &old).map_err(|e| io_err("rename", &dest, e))?;
            std::fs::rename(stage.path(), &dest).map_err(|e| io_err("rename", &dest, e))?;
            std::fs::rename(&old, stage.path()).map_err(|e| io_err("rename", &old, e))?;
        }
    } else {
        std::fs::rename(stage.path(), &dest).map_err(|e| io_err("rename", &dest, e))?;
    }
    fsx::sync_dir(&parent)?;
    if let Err(e) = config.add_plugin(&PluginEntry::Wasm(entry.clone()), true) {
        // Put the earlier files back: the config still pins them.
        if had_old {
            let _ = fsx::exchange(stage.path(), &dest);
        } else {
            let _ = fsx::remove_any(&dest);
        }
        return Err(e.into());
    }
    Ok(entry)
}

fn io_err(action: &'static str, path: &Path, source: std::io::Error) -> BundleError {
    crate::Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
    .into()
}

/// The result of checking one configured plugin (`plugin verify`).
#[derive(Debug, Clone, Serialize)]
pub struct PluginCheck {
    /// The plugin.
    pub name: String,
    /// `ok`, `warning` or `refused`.
    pub status: &'static str,
    /// What was checked, or what is wrong.
    pub detail: String,
}

/// Check every WASM plugin of the config: its pin, that it loads and describes itself with
/// grants the config gives, and for bundles the installed manifest and signature.
pub fn verify_installed(repo_root: &Path, config: &ThrumConfig) -> Vec<PluginCheck> {
    let mut out = Vec::new();
    for p in &config.backup.plugins {
        let PluginEntry::Wasm(w) = p else {
            out.push(PluginCheck {
                name: p.name().to_owned(),
                status: "ok",
                detail: "shell plugin (nothing to verify)".into(),
            });
            continue;
        };
        out.push(match check_one(repo_root, config, w) {
            Ok((detail, None)) => PluginCheck {
                name: w.name.clone(),
                status: "ok",
                detail,
            },
            Ok((_, Some(warning))) => PluginCheck {
                name: w.name.clone(),
                status: "warning",
                detail: warning,
            },
            Err(reason) => PluginCheck {
                name: w.name.clone(),
                status: "refused",
                detail: reason,
            },
        });
    }
    out
}

fn check_one(
    repo_root: &Path,
    config: &ThrumConfig,
    w: &WasmPlugin,
) -> Result<(String, Option<String>), String> {
    let bytes = wasm::component_bytes(w, repo_root).map_err(|e| e.to_string())?;
    let loaded = wasm::load(&bytes).map_err(|e| e.to_string())?;
    let d = wasm::describe_standalone(&loaded).map_err(|e| e.to_string())?;
    let missing = wasm::missing_grants(&d.grants, &w.grants);
    if !missing.is_empty() {
        return Err(format!(
            "asks for grants the config does not give: {}",
            missing.join(", ")
        ));
    }
    let mut detail = match &w.sha256 {
        Some(sha) => format!("{} {}, pin sha256:{}", d.name, d.version, &sha[..12]),
        None => format!("{} {} (built in)", d.name, d.version),
    };
    let Some(record) = &w.bundle else {
        return Ok((detail, None));
    };
    let folder = wasm::component_path(&w.component, repo_root)
        .map_err(|e| e.to_string())?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let manifest_path = folder.join(MANIFEST);
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|e| {
        format!(
            "{}: {e} (installed from a bundle, its manifest is missing)",
            manifest_path.display()
        )
    })?;
    let manifest: BundleManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    if manifest.files.get(COMPONENT) != w.sha256.as_ref() {
        return Err(format!(
            "{} does not list the pinned component (the manifest or the pin was edited)",
            manifest_path.display()
        ));
    }
    if manifest.version != d.version
        || manifest.version != record.version
        || manifest.name != d.name
    {
        return Err(format!(
            "installed manifest ({} {}), config ({}) and component ({} {}) disagree",
            manifest.name, manifest.version, record.version, d.name, d.version
        ));
    }
    let Some(key_text) = &record.signed_by else {
        detail.push_str(", bundle unsigned");
        return Ok((detail, None));
    };
    let sig_path = folder.join(SIGNATURE);
    let sig: SignatureFile = std::fs::read(&sig_path)
        .map_err(|e| format!("{}: {e} (the bundle was signed)", sig_path.display()))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", sig_path.display()))
        })?;
    if sig.public_key.to_ascii_lowercase() != *key_text {
        return Err(format!(
            "{} is by {} but the config records {key_text}",
            sig_path.display(),
            sig.public_key
        ));
    }
    let key = PublicKey::parse(key_text).map_err(|e| e.to_string())?;
    key.verify(&manifest_bytes, &sig.signature)
        .map_err(|m| format!("{}: {m}", sig_path.display()))?;
    match config.trusted(key_text) {
        Some(t) => {
            detail.push_str(&format!(", signed by {} ({})", t.name, short_key(key_text)));
            Ok((detail, None))
        }
        None => Ok((
            detail.clone(),
            Some(format!(
                "{detail}, signed by {} which is no longer trusted (`thrum-backup plugin trust` it, or remove the plugin)",
                short_key(key_text)
            )),
        )),
    }
}

/// `ed25519:` and the first 16 hex digits, for people.
pub fn short_key(key: &str) -> String {
    key.chars().take(8 + 16).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let key = keygen(&dir.path().join("k.json")).unwrap();
        let text = key.public().to_string();
        assert!(crate::config::is_public_key(&text));
        assert_eq!(PublicKey::parse(&text).unwrap(), key.public());
        for bad in [
            "",
            "ed25519:",
            "ed25519:zz",
            "rsa:00",
            &text[..text.len() - 2],
        ] {
            assert!(PublicKey::parse(bad).is_err(), "{bad}");
        }
        let again = SecretKey::read(&dir.path().join("k.json")).unwrap();
        assert_eq!(again.public(), key.public());
        // Never replaced.
        assert!(matches!(
            keygen(&dir.path().join("k.json")),
            Err(BundleError::Key(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("k.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn signatures_cover_every_byte_of_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let key = keygen(&dir.path().join("k.json")).unwrap();
        let msg = b"{\"name\": \"x\"}\n".to_vec();
        let sig = hex::encode(key.0.sign(&msg).to_bytes());
        key.public().verify(&msg, &sig).unwrap();
        for i in 0..msg.len() {
            let mut m = msg.clone();
            m[i] ^= 1;
            assert!(key.public().verify(&m, &sig).is_err());
        }
        let other = keygen(&dir.path().join("k2.json")).unwrap();
        assert!(other.public().verify(&msg, &sig).is_err());
    }
}
