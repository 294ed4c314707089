//! Plugins: extra data sources backed up into `plugins/<name>/` of a snapshot.
//!
//! Two kinds: sandboxed WebAssembly components ([`wasm`], with built-in [`presets`]) and
//! thrum's shell form ([`shell`]). A failing plugin never fails the backup: its partial output
//! is dropped and its error reported.

pub mod bundle;
pub mod manage;
pub mod presets;
pub(crate) mod runner;
pub mod scaffold;
pub mod shell;
pub mod wasm;

// The SDK (a guest crate, outside this workspace) checks JSON Lines with the parser the engine
// uses too (`crate::jsonl`). It is plain Rust, so the host's tests hold it against serde_json.
#[cfg(test)]
use crate::jsonl::rules as sdk_jsonl;
#[cfg(test)]
mod sdk_jsonl_tests;

#[cfg(test)]
mod contract_tests {
    /// The contract as released: `wit/v0.1.0/` is read by the host, the SDK, the templates and
    /// the examples, and components built against it exist.
    const V0_1_0: &[u8] = include_bytes!("../../wit/v0.1.0/backup.wit");

    #[test]
    fn a_released_contract_never_changes() {
        assert_eq!(
            blake3::hash(V0_1_0).to_hex().as_str(),
            "758b1f7097c8574bc34a8548b8a2618e77ce4516da4277d53c589e7c8d18ddc4",
            "wit/v0.1.0/backup.wit is released and frozen: a change of the contract is a new folder (wit/v0.2.0/) that the host learns to run beside it"
        );
    }

    #[test]
    fn the_examples_vendor_the_released_contract() {
        let js =
            include_bytes!("../../plugins/examples/js-beads-csv/wit/deps/thrum-backup/backup.wit");
        assert_eq!(js.as_slice(), V0_1_0);
    }
}
