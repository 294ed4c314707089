//! Packing a bundle: the manifest taken from the component's own `describe`, the checksums
//! of every file, the optional signature.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Write};

use ed25519_dalek::Signer as _;
use serde_json::Value;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::{
    BundleError, BundleManifest, COMPONENT, FORMAT, MANIFEST, MAX_SMALL_FILE, PackManifest, README,
    SIGNATURE, SecretKey, SignatureFile,
};
use crate::config::Grant;
use crate::fsx;
use crate::plugin::wasm::{self};

pub(super) fn grant_set(grants: &[String]) -> Result<BTreeSet<String>, String> {
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

pub(super) fn list_or_none<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
