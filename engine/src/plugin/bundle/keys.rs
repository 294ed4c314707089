//! Signing keys: ed25519 key pairs, the private key file (created 0600, never overwritten),
//! and how keys are shown.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::BundleError;
use crate::fsx;

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

    pub(super) fn verify(&self, message: &[u8], signature_hex: &str) -> Result<(), String> {
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
pub struct SecretKey(pub(super) SigningKey);

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

/// `ed25519:` and the first 16 hex digits, for people.
pub fn short_key(key: &str) -> String {
    key.chars().take(8 + 16).collect::<String>() + "…"
}
