//! A plugin whose `describe` asks for a thousand grants: the host must refuse it without
//! writing them all into a manifest or a config.

use thrum_backup_plugin_sdk::{self as sdk, Context, Grant, Info, Plugin, PluginError, Summary};

struct Grants;

impl Plugin for Grants {
    fn describe() -> Info {
        sdk::info(
            "grants",
            "0.1.0",
            "asks for a thousand grants",
            (0..1000).map(|i| Grant::Read(format!("dir{i}"))).collect(),
        )
    }

    fn backup(_ctx: &Context) -> Result<Summary, PluginError> {
        Ok(Summary::default())
    }
}

sdk::register_plugin!(Grants);
