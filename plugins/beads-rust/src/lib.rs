//! The `beads-rust` preset: backs up `br` (crate `beads_rust`) losslessly.
//!
//! `br` keeps issues in a SQLite database in `.beads/` (WAL mode, possibly open) plus the
//! git-synced `.beads/issues.jsonl`, `config.yaml` and `metadata.json`. A WASM guest cannot
//! link SQLite, so the database is copied by the host's `copy-sqlite` capability: one
//! consistent snapshot even while `br` writes. No `br` binary is needed.

use thrum_backup_plugin_sdk::{
    self as sdk, Context, ErrorCode, Grant, Info, Plugin, PluginError, Summary,
};

struct BeadsRust;

impl Plugin for BeadsRust {
    fn describe() -> Info {
        let mut info = sdk::info(
            "beads-rust",
            env!("CARGO_PKG_VERSION"),
            "beads_rust (br): consistent copy of .beads/*.db plus issues.jsonl, config and metadata",
            vec![Grant::Read(".beads".into()), Grant::Write(".beads".into())],
        );
        info.config_help = "{}  (no options)".into();
        info
    }

    fn backup(_ctx: &Context) -> Result<Summary, PluginError> {
        let mut summary = Summary::default();
        let database = database_name();
        let db_path = format!("/repo/.beads/{database}");
        if std::path::Path::new(&db_path).is_file() {
            summary.add(sdk::copy_sqlite(&db_path, &format!(".beads/{database}"))?);
            summary
                .notes
                .push(format!("database .beads/{database} copied consistently"));
        }
        for name in ["issues.jsonl", "config.yaml", "metadata.json"] {
            let p = std::path::PathBuf::from(format!("/repo/.beads/{name}"));
            if p.is_file() {
                if name.ends_with(".jsonl") {
                    let (bytes, n) = sdk::copy_jsonl_to_output(&p)?;
                    summary.notes.push(format!("{n} issues in issues.jsonl"));
                    summary.add(bytes);
                } else {
                    summary.add(sdk::copy_to_output(&p)?);
                }
            }
        }
        if summary.files == 0 {
            return Err(sdk::error(
                ErrorCode::MissingInput,
                "no .beads database or issues.jsonl: is br initialized here?",
            ));
        }
        Ok(summary)
    }
}

/// The database file named by `.beads/metadata.json` (`beads.db` by default).
fn database_name() -> String {
    std::fs::read_to_string("/repo/.beads/metadata.json")
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("database")
                .and_then(|d| d.as_str())
                .map(str::to_owned)
        })
        .filter(|n| !n.contains('/') && !n.starts_with('.'))
        .unwrap_or_else(|| "beads.db".into())
}

sdk::register_plugin!(BeadsRust);
