//! Managing the configured plugins: adding one (a preset, a component file, thrum's shell
//! form), removing one with the folder it owns, and listing them with what each component
//! says of itself. Installing a bundle is [`super::bundle`]'s. Asking the user is the
//! caller's: a [`Candidate`] says what a WebAssembly plugin is and asks for before anything
//! is written.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::bundle;
use super::wasm::{self, Description, Setting};
use crate::config::{Grant, PluginEntry, PluginLimits, ShellPlugin, ThrumConfig, WasmPlugin};
use crate::error::{Error, IoContext, Result};
use crate::fsx;
use crate::locate::Workspace;

/// Where a WebAssembly plugin's component comes from.
#[derive(Debug, Clone)]
pub enum Component {
    /// A preset built into this program (`preset:<name>`).
    Preset(String),
    /// A component file; one outside the repository is copied into
    /// `.thrum/plugins/<name>/plugin.wasm`, so that it is committed and shared.
    File(std::path::PathBuf),
}

/// A WebAssembly plugin about to be added: what its component says, and the grants it will
/// get (those it asks for, and any extra).
#[derive(Debug)]
pub struct Candidate {
    /// What the component says of itself.
    pub description: Description,
    /// The name it will have (its own, unless another was given).
    pub name: String,
    /// The grants it will get.
    pub grants: Vec<Grant>,
    component: Component,
    bytes: Vec<u8>,
}

impl Candidate {
    /// Load the component and ask it to describe itself (in the sandbox, seeing nothing).
    pub fn new(
        ws: &Workspace,
        component: Component,
        name: Option<String>,
        extra: Vec<Grant>,
    ) -> Result<Self> {
        let (bytes, shown) = match &component {
            Component::Preset(p) => (
                super::presets::component(p)
                    .ok_or_else(|| Error::Invalid(format!("unknown preset {p}")))?
                    .to_vec(),
                format!("preset:{p}"),
            ),
            Component::File(f) => (std::fs::read(f).at("read", f)?, f.display().to_string()),
        };
        let refused = |e: wasm::PluginFailure| Error::Invalid(format!("{shown} was refused: {e}"));
        let loaded = wasm::load(&bytes).map_err(refused)?;
        let setting = Setting::new(&ws.repo_root, &ws.repo_name, Some(chrono::Utc::now()));
        let description = wasm::describe(&loaded, &setting).map_err(refused)?;
        let mut grants = description.grants.clone();
        for g in extra {
            if !grants.contains(&g) {
                grants.push(g);
            }
        }
        Ok(Self {
            name: name.unwrap_or_else(|| description.name.clone()),
            description,
            grants,
            component,
            bytes,
        })
    }

    /// Why each of its grants amounts to running code or seeing too much ([`Grant::danger`]).
    pub fn dangers(&self) -> Vec<String> {
        self.grants.iter().filter_map(Grant::danger).collect()
    }

    /// Add it to `config` (replacing an entry of the same name only if `replace`), its
    /// component kept in the repository and pinned. A dangerous grant needs
    /// `allow_dangerous`. Returns the entry written.
    pub fn add(
        self,
        ws: &Workspace,
        config: &mut ThrumConfig,
        plugin_config: Value,
        allow_dangerous: bool,
        replace: bool,
    ) -> Result<PluginEntry> {
        let dangers = self.dangers();
        if !dangers.is_empty() && !allow_dangerous {
            return Err(Error::Invalid(format!(
                "{}: refused; nothing changed. Pass --allow-dangerous as well if you mean it",
                dangers.join("; ")
            )));
        }
        crate::config::check_plugin_name(&self.name).map_err(Error::Invalid)?;
        let (component, sha256) = match &self.component {
            Component::Preset(p) => (format!("preset:{p}"), None),
            Component::File(f) => (
                place_component(ws, f, &self.name, &self.bytes)?,
                Some(fsx::sha256_hex(&self.bytes)),
            ),
        };
        let entry = PluginEntry::Wasm(WasmPlugin {
            name: self.name,
            component,
            sha256,
            grants: self.grants,
            limits: PluginLimits::default(),
            config: plugin_config,
            bundle: None,
            allow_dangerous: !dangers.is_empty(),
        });
        config.add_plugin(&entry, replace)?;
        Ok(entry)
    }
}

/// Add thrum's shell form: `command` run in the repository, then `include` collected.
pub fn add_shell(
    config: &mut ThrumConfig,
    name: &str,
    command: &str,
    include: &[String],
    replace: bool,
) -> Result<PluginEntry> {
    if command.trim().is_empty() && include.is_empty() {
        return Err(Error::Invalid(
            "a shell plugin needs --command, --include, or both".into(),
        ));
    }
    let entry = PluginEntry::Shell(ShellPlugin {
        name: name.to_owned(),
        command: command.to_owned(),
        include: include.to_vec(),
    });
    config.add_plugin(&entry, replace)?;
    Ok(entry)
}

/// Keep the component inside the repository (so it is committed and shared): a file outside
/// goes to `.thrum/plugins/<name>/plugin.wasm`. Returns the repo-relative path.
fn place_component(ws: &Workspace, file: &Path, name: &str, bytes: &[u8]) -> Result<String> {
    let root = ws.repo_root.canonicalize().at("resolve", &ws.repo_root)?;
    let real = file.canonicalize().at("resolve", file)?;
    if let Ok(rel) = real.strip_prefix(&root) {
        return Ok(rel.to_string_lossy().into_owned());
    }
    let dest = ws.thrum_dir.join("plugins").join(name).join("plugin.wasm");
    fsx::write_atomic(&dest, bytes)?;
    let dest = dest.canonicalize().at("resolve", &dest)?;
    Ok(dest
        .strip_prefix(&root)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| dest.display().to_string()))
}

/// Remove the plugin `name` from `config`, and the folder `.thrum/plugins/<name>/` its
/// component lives in when it is its own. `Ok(false)` when there is no such plugin.
pub fn remove(ws: &Workspace, config: &mut ThrumConfig, name: &str) -> Result<bool> {
    let entry = config
        .backup
        .plugins
        .iter()
        .find(|p| p.name() == name)
        .cloned();
    if !config.remove_plugin(name)? {
        return Ok(false);
    }
    if let Some(PluginEntry::Wasm(w)) = entry {
        let own = Path::new(".thrum/plugins").join(name);
        if Path::new(&w.component).starts_with(&own) {
            fsx::remove_any(&ws.repo_root.join(&own))?;
        }
    }
    Ok(true)
}

/// One configured plugin, as `plugin list` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Listed {
    /// thrum's shell form.
    Shell {
        /// Its name.
        name: String,
        /// The command it runs.
        command: String,
        /// What it collects.
        include: Vec<String>,
    },
    /// A WebAssembly component.
    Wasm {
        /// Its name.
        name: String,
        /// `preset:<name>` or its path in the repository.
        component: String,
        /// The version its component reports (empty when it was refused).
        version: String,
        /// The grants it has.
        grants: Vec<Grant>,
        /// The pin of its component.
        sha256: Option<String>,
        /// `ok`, `needs GRANTS`, or `refused: WHY`.
        status: String,
        /// Where it was installed from, when from a bundle.
        bundle: Option<ListedBundle>,
    },
}

/// A plugin installed from a bundle.
#[derive(Debug, Clone, Serialize)]
pub struct ListedBundle {
    /// The bundle's version.
    pub version: String,
    /// The key that signed it.
    pub signed_by: Option<String>,
    /// Who holds that key, as trusted here (else the key, shortened).
    pub signer: Option<String>,
}

/// Every configured plugin, each component loaded (and checked against its pin) and asked
/// what it is.
pub fn list(ws: &Workspace, config: &ThrumConfig) -> Vec<Listed> {
    let setting = Setting::new(&ws.repo_root, &ws.repo_name, Some(chrono::Utc::now()));
    config
        .backup
        .plugins
        .iter()
        .map(|p| match p {
            PluginEntry::Shell(s) => Listed::Shell {
                name: s.name.clone(),
                command: s.command.clone(),
                include: s.include.clone(),
            },
            PluginEntry::Wasm(w) => {
                let described = wasm::component_bytes(w, &ws.repo_root)
                    .and_then(|b| wasm::load(&b))
                    .and_then(|l| wasm::describe(&l, &setting));
                let (version, status) = match &described {
                    Ok(d) => {
                        let missing = wasm::missing_grants(&d.grants, &w.grants);
                        let status = if missing.is_empty() {
                            "ok".to_owned()
                        } else {
                            format!("needs {}", missing.join(", "))
                        };
                        (d.version.clone(), status)
                    }
                    Err(e) => (String::new(), format!("refused: {e}")),
                };
                Listed::Wasm {
                    name: w.name.clone(),
                    component: w.component.clone(),
                    version,
                    grants: w.grants.clone(),
                    sha256: w.sha256.clone(),
                    status,
                    bundle: w.bundle.as_ref().map(|b| ListedBundle {
                        version: b.version.clone(),
                        signed_by: b.signed_by.clone(),
                        signer: b.signed_by.as_deref().map(|k| {
                            config
                                .trusted(k)
                                .map_or_else(|| bundle::short_key(k), |t| t.name.clone())
                        }),
                    }),
                }
            }
        })
        .collect()
}
