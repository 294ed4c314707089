//! Installing a checked bundle (its folder exchanged atomically, the config pin written
//! last) and verifying the installed plugins against their pins and signers.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    Bundle, BundleError, BundleManifest, COMPONENT, MANIFEST, PublicKey, README, SIGNATURE,
    SignatureFile, short_key,
};
use crate::config::{BundleRecord, Grant, PluginEntry, PluginLimits, ThrumConfig, WasmPlugin};
use crate::fsx;
use crate::plugin::wasm::{self};

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
