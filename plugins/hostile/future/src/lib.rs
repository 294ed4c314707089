//! A plugin built against contract 9.0.0, which no host knows: it must be refused with a
//! message that names the versions the host supports.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use exports::thrum::backup::exporter::{Context, Guest, Info, PluginError, Summary};

struct Future;

impl Guest for Future {
    fn describe() -> Info {
        Info {
            name: "future".into(),
            version: "9.0.0".into(),
            description: "from the future".into(),
            grants: vec![],
            config_help: String::new(),
        }
    }
    fn backup(_: Context) -> Result<Summary, PluginError> {
        Ok(Summary {
            files: 0,
            bytes: 0,
            notes: vec![],
            warnings: vec![],
        })
    }
    fn restore(_: Context) -> Result<Summary, PluginError> {
        Self::backup(Context {
            repo_name: String::new(),
            config: String::new(),
            timestamp: String::new(),
        })
    }
    fn verify(c: Context) -> Result<Summary, PluginError> {
        Self::restore(c)
    }
}

export!(Future);
