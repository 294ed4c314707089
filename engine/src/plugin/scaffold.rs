//! `plugin new NAME`: a plugin crate that builds with one command.
//!
//! The crate carries its own copy of the SDK and the WIT contract (this engine's version), so
//! it needs nothing but crates.io: `cargo build --release` in it produces the component.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsx;

const SDK_LIB: &str = include_str!("../../../plugin-sdk/src/lib.rs");
const SDK_TOML: &str = include_str!("../../../plugin-sdk/Cargo.toml");
const WIT: &str = include_str!("../../../wit/backup.wit");

/// Create the crate `name` in `dir` (which must not exist or be empty). Returns the files.
pub fn create(dir: &Path, name: &str) -> Result<Vec<String>> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(Error::Invalid(format!(
            "invalid plugin name {name:?}: use lower-case letters, digits, '-' and '_', starting with a letter"
        )));
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Invalid(format!(
            "{} exists and is not empty",
            dir.display()
        )));
    }
    let files: Vec<(&str, String)> = vec![
        ("Cargo.toml", cargo_toml(name)),
        (
            ".cargo/config.toml",
            "[build]\ntarget = \"wasm32-wasip2\"\n".into(),
        ),
        (".gitignore", "/target\n".into()),
        ("src/lib.rs", lib_rs(name)),
        ("README.md", readme(name)),
        ("sdk/Cargo.toml", SDK_TOML.into()),
        ("sdk/src/lib.rs", SDK_LIB.into()),
        ("wit/backup.wit", WIT.into()),
    ];
    for (rel, content) in &files {
        fsx::write_atomic(&dir.join(rel), content.as_bytes())?;
    }
    Ok(files.into_iter().map(|(f, _)| f.to_owned()).collect())
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
thrum-backup-plugin-sdk = {{ path = "sdk" }}

# A standalone workspace: builds on its own, wherever it lives.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true
panic = "abort"
"#
    )
}

fn lib_rs(name: &str) -> String {
    format!(
        r#"//! {name}: a thrum-backup plugin.
//!
//! Backs up the repository's `notes/` folder (edit `describe` and `backup` for your data).
//! Files are kept under their repository-relative paths, so the SDK's default `restore`
//! puts them back where they came from.

use thrum_backup_plugin_sdk::{{self as sdk, Context, Grant, Info, Plugin, PluginError, Summary}};

struct MyPlugin;

impl Plugin for MyPlugin {{
    fn describe() -> Info {{
        sdk::info(
            "{name}",
            env!("CARGO_PKG_VERSION"),
            "Backs up notes/",
            vec![Grant::Read("notes".into()), Grant::Write("notes".into())],
        )
    }}

    fn backup(_ctx: &Context) -> Result<Summary, PluginError> {{
        let mut summary = Summary::default();
        for file in sdk::walk("/repo/notes")? {{
            if file.extension().is_some_and(|e| e == "jsonl") {{
                sdk::validate_jsonl(&file)?;
            }}
            summary.add(sdk::copy_to_output(&file)?);
        }}
        Ok(summary)
    }}
}}

sdk::register_plugin!(MyPlugin);
"#
    )
}

fn readme(name: &str) -> String {
    let file = name.replace('-', "_");
    format!(
        "# {name}\n\nA thrum-backup plugin.\n\n```sh\nrustup target add wasm32-wasip2   # once\ncargo build --release\nthrum-backup plugin add --wasm target/wasm32-wasip2/release/{file}.wasm\n```\n"
    )
}
