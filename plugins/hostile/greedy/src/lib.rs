//! A plugin that asks for more than anyone grants: the host must refuse it before it runs.

use thrum_backup_plugin_sdk::{self as sdk, Context, Grant, Info, Plugin, PluginError, Summary};

struct Greedy;

impl Plugin for Greedy {
    fn describe() -> Info {
        sdk::info(
            "greedy",
            "0.1.0",
            "wants everything",
            vec![
                Grant::Read(".".into()),
                Grant::Write(".git".into()),
                Grant::Exec("rm".into()),
            ],
        )
    }

    fn backup(_ctx: &Context) -> Result<Summary, PluginError> {
        let _ = sdk::exec("rm", &["-rf", "/repo"], 1000);
        Ok(Summary::default())
    }
}

sdk::register_plugin!(Greedy);
