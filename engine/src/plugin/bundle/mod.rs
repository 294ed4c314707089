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
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::archive::{CheckedArchive, Limits};
use crate::config::{Grant, ThrumConfig};
use crate::fsx;
use crate::plugin::wasm::{self, Description};

mod install;
mod keys;
mod pack;

pub use install::{PluginCheck, install, install_dir, verify_installed};
pub use keys::{PublicKey, SecretKey, keygen, short_key};
pub use pack::pack;
use pack::{grant_set, list_or_none};

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
        let manifest = check_manifest(&manifest_bytes, &present).map_err(refused)?;
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
        let signature = zip
            .read_entry(SIGNATURE, MAX_SMALL_FILE)
            .map_err(|e| refused(strip(e)))?
            .map(|bytes| check_signature(bytes, &manifest_bytes).map_err(refused))
            .transpose()?;
        Ok(Self {
            manifest,
            manifest_bytes,
            component,
            readme,
            signature,
        })
    }
}

/// The manifest's checks: its format, and the files it lists are those the bundle holds
/// (`present`) but itself and the signature.
fn check_manifest(bytes: &[u8], present: &BTreeSet<String>) -> Result<BundleManifest, String> {
    let manifest: BundleManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest.json: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "manifest.json: format {:?} is not {FORMAT:?} (made by a newer thrum-backup?)",
            manifest.format
        ));
    }
    let listed: BTreeSet<String> = manifest.files.keys().cloned().collect();
    let expected: BTreeSet<String> = present
        .iter()
        .filter(|n| *n != MANIFEST && *n != SIGNATURE)
        .cloned()
        .collect();
    if listed != expected {
        return Err(format!(
            "manifest.json lists {} but the bundle holds {}",
            list_or_none(listed.iter()),
            list_or_none(expected.iter())
        ));
    }
    Ok(manifest)
}

/// `signature.json`: an ed25519 signature of the manifest's bytes by the key it names.
fn check_signature(
    bytes: Vec<u8>,
    manifest_bytes: &[u8],
) -> Result<(SignatureFile, Vec<u8>), String> {
    let sig: SignatureFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("signature.json: {e}"))?;
    if sig.algorithm != "ed25519" {
        return Err(format!(
            "signature.json: unknown algorithm {:?}",
            sig.algorithm
        ));
    }
    let key = PublicKey::parse(&sig.public_key).map_err(|e| format!("signature.json: {e}"))?;
    key.verify(manifest_bytes, &sig.signature)
        .map_err(|m| format!("signature.json: {m}"))?;
    Ok((sig, bytes))
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

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;

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
