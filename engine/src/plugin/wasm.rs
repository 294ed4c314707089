//! The WebAssembly plugin host: runs components that implement the contract
//! `wit/v0.1.0/backup.wit` in a sandbox.
//!
//! Deny by default: each call gets a fresh `Store` with an empty WASI context (no env, args,
//! network; stdout and stderr into a bounded buffer), read-only preopens for the `read` grants
//! (`/repo/<path>`) and, for restore and verify, the plugin's own backup folder (`/backup`).
//! Output goes only through `host.create-file`, capped while it is written. A deadline
//! (epoch interruption) and a memory cap (resource limiter) bound every call. A plugin that
//! fails answers with a `plugin-error`; one that traps is stopped; either way only that plugin
//! fails, with a message that names the reason.

mod cache;
mod component;
mod host;
mod limits;

pub use component::{component_bytes, component_path};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

use crate::config::{Grant, PluginLimits, WasmPlugin};
use crate::manifest::{PluginKind, PluginReport, PluginStatus};

pub use host::{Call, OutputHandle};
use host::{HostState, Phase};

/// The generated host bindings of the contract.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "plugin",
        imports: { default: trappable },
        with: { "thrum:backup/host.output-file": super::OutputHandle },
    });
}

use bindings::exports::thrum::backup::exporter;

/// Contract versions this host runs (`thrum:backup@MAJOR.MINOR.*`).
pub const SUPPORTED_CONTRACTS: [&str; 1] = ["0.1"];

/// Epoch tick: deadlines are counted in these.
const TICK: Duration = Duration::from_millis(10);

/// Bytes of guest stdout+stderr kept (beyond them the guest traps: output is bounded).
const STDIO_CAP: usize = 1 << 20;

/// How long past its deadline a plugin call may take before it is abandoned: a call blocked in
/// the host (a sleep, a read of a FIFO, a program that does not end) is not stopped by the
/// deadline, which only interrupts running WebAssembly. The call runs on a thread of its own;
/// at its deadline plus this grace the thread is left behind (every host call it makes from
/// then on is refused, and it ends with the process) and the plugin fails.
pub const GRACE: Duration = Duration::from_secs(2);

/// Most grants a plugin may ask for in `describe`.
const MAX_GRANTS: usize = 64;

/// Why a plugin did not run to a good end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginFailure {
    /// The component could not be loaded or does not implement the contract.
    #[error("{0}")]
    Invalid(String),
    /// The plugin asks for grants the user's config does not give.
    #[error("asks for grants the config does not give: {}", missing.join(", "))]
    Ungranted {
        /// The grants missing from the config.
        missing: Vec<String>,
    },
    /// The plugin answered with an error.
    #[error("failed ({code}): {message}")]
    Failed {
        /// The WIT error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The plugin trapped (panic, deadline, memory, output limit, sandbox violation).
    #[error("trapped: {0}")]
    Trapped(String),
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Description {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// One line.
    pub description: String,
    /// Grants it requires.
    pub grants: Vec<Grant>,
    /// What its config accepts.
    pub config_help: String,
    /// The contract version it was built for.
    pub contract: String,
}

/// What a plugin call produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Files written, relative to the output root, with sizes.
    pub files: Vec<(String, u64)>,
    /// Notes and warnings from the plugin.
    pub notes: Vec<String>,
    /// Warnings from the plugin.
    pub warnings: Vec<String>,
    /// Log lines.
    pub log: Vec<String>,
}

struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
}

fn runtime() -> Result<&'static Runtime, PluginFailure> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            let engine = Engine::new(&config).map_err(|e| format!("cannot start wasmtime: {e}"))?;
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
                .map_err(|e| format!("cannot link WASI: {e}"))?;
            bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
                .map_err(|e| format!("cannot link the host interface: {e}"))?;
            let ticker = engine.clone();
            std::thread::Builder::new()
                .name("thrum-backup-epoch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(TICK);
                        ticker.increment_epoch();
                    }
                })
                .map_err(|e| format!("cannot start the deadline thread: {e}"))?;
            Ok(Runtime { engine, linker })
        })
        .as_ref()
        .map_err(|e| PluginFailure::Invalid(e.clone()))
}

/// A loaded component, checked against the contract.
#[derive(Clone)]
pub struct Loaded {
    component: Component,
    contract: String,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("contract", &self.contract)
            .finish()
    }
}

/// Load component bytes (through the compiled-component cache) and check which contract
/// version it was built for.
pub fn load(bytes: &[u8]) -> Result<Loaded, PluginFailure> {
    load_with_cache(bytes, cache::dir())
}

/// [`load`] with an explicit cache directory (`None`: compile without caching).
pub fn load_with_cache(bytes: &[u8], cache_dir: Option<PathBuf>) -> Result<Loaded, PluginFailure> {
    let rt = runtime()?;
    let component = cache::load(&rt.engine, bytes, cache_dir)
        .map_err(|e| PluginFailure::Invalid(format!("not a valid WebAssembly component: {e:#}")))?;
    let ty = component.component_type();
    let mut versions = Vec::new();
    for (name, _) in ty.imports(&rt.engine).chain(ty.exports(&rt.engine)) {
        if let Some(rest) = name.strip_prefix("thrum:backup/")
            && let Some((_, v)) = rest.split_once('@')
        {
            versions.push(v.to_owned());
        }
    }
    let exported = ty
        .exports(&rt.engine)
        .find_map(|(n, _)| n.strip_prefix("thrum:backup/exporter@").map(str::to_owned));
    let Some(contract) = exported else {
        return Err(PluginFailure::Invalid(format!(
            "the component does not implement the thrum:backup plugin world (no thrum:backup/exporter export{}); this host supports contract {}",
            if versions.is_empty() {
                String::new()
            } else {
                format!("; it uses thrum:backup@{}", versions.join(", "))
            },
            supported()
        )));
    };
    for v in versions.iter().chain(std::iter::once(&contract)) {
        if !SUPPORTED_CONTRACTS
            .iter()
            .any(|s| v.strip_prefix(s).is_some_and(|r| r.starts_with('.')))
        {
            return Err(PluginFailure::Invalid(format!(
                "built for contract thrum:backup@{v}, which this host does not know; it supports {}",
                supported()
            )));
        }
    }
    Ok(Loaded {
        component,
        contract,
    })
}

fn supported() -> String {
    SUPPORTED_CONTRACTS
        .iter()
        .map(|v| format!("thrum:backup@{v}.x"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything a call needs to know about where it runs.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The repository root.
    pub repo_root: PathBuf,
    /// Repository name (for the context).
    pub repo_name: String,
    /// The snapshot time, RFC 3339 (empty for a call about no new snapshot: verify).
    pub timestamp: String,
}

impl Setting {
    /// A call in the repository at `repo_root`, about the snapshot taken `at`.
    pub fn new(
        repo_root: &Path,
        repo_name: &str,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Self {
        Self {
            repo_root: repo_root.to_path_buf(),
            repo_name: repo_name.to_owned(),
            timestamp: at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
        }
    }
}

fn new_store(
    phase: Phase,
    plugin: Option<&WasmPlugin>,
    setting: &Setting,
    limits: PluginLimits,
    abandoned: &Arc<AtomicBool>,
) -> Result<Store<HostState>, PluginFailure> {
    let rt = runtime()?;
    let mut state =
        HostState::new(phase, plugin, setting, limits).map_err(PluginFailure::Invalid)?;
    state.abandoned = Arc::clone(abandoned);
    state.deadline = Instant::now() + Duration::from_secs(limits.timeout_secs);
    let mut store = Store::new(&rt.engine, state);
    store.limiter(|s| &mut s.limiter);
    let ticks = (limits.timeout_secs * 1000 / TICK.as_millis() as u64).max(1);
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    Ok(store)
}

fn instantiate(
    store: &mut Store<HostState>,
    loaded: &Loaded,
) -> Result<bindings::Plugin, PluginFailure> {
    let rt = runtime()?;
    let pre = rt.linker.instantiate_pre(&loaded.component).map_err(|e| {
        PluginFailure::Invalid(format!("the component does not fit the contract: {e:#}"))
    })?;
    let pre = bindings::PluginPre::new(pre).map_err(|e| {
        PluginFailure::Invalid(format!("the component does not fit the contract: {e:#}"))
    })?;
    pre.instantiate(&mut *store)
        .map_err(|e| trap_reason(store, &e))
}

/// Run `f` on a thread of its own and wait for it until `limit` plus [`GRACE`]; past that,
/// raise `abandoned` (the host refuses every later call of the plugin) and give up on it.
fn bounded<T: Send + 'static>(
    limit: Duration,
    abandoned: Arc<AtomicBool>,
    f: impl FnOnce() -> Result<T, PluginFailure> + Send + 'static,
) -> Result<T, PluginFailure> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("thrum-backup-plugin".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| PluginFailure::Invalid(format!("cannot start the plugin's thread: {e}")))?;
    match rx.recv_timeout(limit + GRACE) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            abandoned.store(true, Ordering::SeqCst);
            Err(PluginFailure::Trapped(format!(
                "deadline of {}s exceeded (limits.timeout_secs) while it waited in a host call (a sleep, a blocking read, a program that would not end); abandoned after {}s more",
                limit.as_secs(),
                GRACE.as_secs()
            )))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(PluginFailure::Trapped(
            "the plugin's thread ended without an answer".into(),
        )),
    }
}

/// Call `describe` (with tight limits: it must not do any work).
pub fn describe(loaded: &Loaded, setting: &Setting) -> Result<Description, PluginFailure> {
    let limits = PluginLimits {
        timeout_secs: 5,
        memory_mib: 256,
        output_mib: 1,
        max_files: 1,
    };
    let abandoned = Arc::new(AtomicBool::new(false));
    let (loaded, setting, flag) = (loaded.clone(), setting.clone(), abandoned.clone());
    bounded(
        Duration::from_secs(limits.timeout_secs),
        abandoned,
        move || {
            let mut store = new_store(Phase::Describe, None, &setting, limits, &flag)?;
            let plugin = instantiate(&mut store, &loaded)?;
            describe_instance(&mut store, &plugin, &loaded)
        },
    )
}

/// Call `describe` on an instance and check what it says.
fn describe_instance(
    store: &mut Store<HostState>,
    plugin: &bindings::Plugin,
    loaded: &Loaded,
) -> Result<Description, PluginFailure> {
    let info = plugin
        .thrum_backup_exporter()
        .call_describe(&mut *store)
        .map_err(|e| trap_reason(store, &e))?;
    if info.grants.len() > MAX_GRANTS {
        return Err(PluginFailure::Invalid(format!(
            "describe asks for {} grants; at most {MAX_GRANTS} are accepted",
            info.grants.len()
        )));
    }
    let mut grants = Vec::new();
    for g in info.grants {
        use bindings::thrum::backup::types::Grant as W;
        let text = match g {
            W::Read(p) => format!("read:{p}"),
            W::Write(p) => format!("write:{p}"),
            W::Exec(p) => format!("exec:{p}"),
        };
        grants.push(Grant::parse(&text).map_err(|m| {
            PluginFailure::Invalid(format!("describe returned an invalid grant: {m}"))
        })?);
    }
    crate::config::check_plugin_name(&info.name)
        .map_err(|m| PluginFailure::Invalid(format!("describe returned an {m}")))?;
    Ok(Description {
        name: info.name,
        version: info.version.chars().take(64).collect(),
        description: info.description.chars().take(500).collect(),
        grants,
        config_help: info.config_help.chars().take(2000).collect(),
        contract: loaded.contract.clone(),
    })
}

/// Call `describe` outside any repository (to pack or inspect a component).
pub fn describe_standalone(loaded: &Loaded) -> Result<Description, PluginFailure> {
    let setting = Setting::new(Path::new("/"), "", Some(chrono::Utc::now()));
    describe(loaded, &setting)
}

/// Grants `wanted` asks for that `given` lacks.
pub fn missing_grants(wanted: &[Grant], given: &[Grant]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| !given.contains(w))
        .map(ToString::to_string)
        .collect()
}

/// Run `call` of `plugin`.
pub fn run(
    loaded: &Loaded,
    plugin: &WasmPlugin,
    call: Call,
    setting: &Setting,
) -> Result<Outcome, PluginFailure> {
    let dangers: Vec<String> = plugin.grants.iter().filter_map(Grant::danger).collect();
    if !dangers.is_empty() && !plugin.allow_dangerous {
        return Err(PluginFailure::Invalid(format!(
            "{}: refused, as the entry does not say \"allow_dangerous\": true (`plugin add` / `plugin install` with --allow-dangerous write it)",
            dangers.join("; ")
        )));
    }
    let abandoned = Arc::new(AtomicBool::new(false));
    let flag = abandoned.clone();
    let (loaded, plugin, setting) = (loaded.clone(), plugin.clone(), setting.clone());
    let limit = Duration::from_secs(plugin.limits.timeout_secs);
    bounded(limit, abandoned, move || {
        run_here(&loaded, &plugin, call, &setting, &flag)
    })
}

/// [`run`] on the calling thread.
fn run_here(
    loaded: &Loaded,
    plugin: &WasmPlugin,
    call: Call,
    setting: &Setting,
    abandoned: &Arc<AtomicBool>,
) -> Result<Outcome, PluginFailure> {
    let phase = Phase::Call(call.clone());
    // One instance serves describe and the call. Its sandbox mounts only what the config
    // grants, so describe sees nothing the call would not; a plugin that asks for more than
    // it was given is refused before the call.
    let mut store = new_store(phase, Some(plugin), setting, plugin.limits, abandoned)?;
    let instance = instantiate(&mut store, loaded)?;
    let described = describe_instance(&mut store, &instance, loaded)?;
    let missing = missing_grants(&described.grants, &plugin.grants);
    if !missing.is_empty() {
        return Err(PluginFailure::Ungranted { missing });
    }
    let ctx = exporter::Context {
        repo_name: setting.repo_name.to_owned(),
        config: plugin.config.to_string(),
        timestamp: setting.timestamp.clone(),
    };
    let api = instance.thrum_backup_exporter();
    let result = match call {
        Call::Backup { .. } => api.call_backup(&mut store, &ctx),
        Call::Restore { .. } => api.call_restore(&mut store, &ctx),
        Call::Verify { .. } => api.call_verify(&mut store, &ctx),
    };
    let answer = result.map_err(|e| trap_reason(&store, &e))?;
    let state = store.data_mut();
    state.discard_unfinished();
    if answer.is_ok() {
        state.sync_finished().map_err(|e| PluginFailure::Failed {
            code: code_name(bindings::thrum::backup::types::ErrorCode::HostCall).to_owned(),
            message: format!("cannot make its output durable: {e}"),
        })?;
    }
    match answer {
        Ok(summary) => Ok(Outcome {
            files: std::mem::take(&mut state.files),
            notes: summary
                .notes
                .into_iter()
                .take(50)
                .map(|n| n.chars().take(500).collect())
                .collect(),
            warnings: std::mem::take(&mut state.host_warnings)
                .into_iter()
                .chain(
                    summary
                        .warnings
                        .into_iter()
                        .take(50)
                        .map(|n| n.chars().take(500).collect()),
                )
                .collect(),
            log: std::mem::take(&mut state.log),
        }),
        Err(e) => Err(PluginFailure::Failed {
            code: code_name(e.code).to_owned(),
            message: e.message.chars().take(2000).collect(),
        }),
    }
}

fn code_name(code: bindings::thrum::backup::types::ErrorCode) -> &'static str {
    use bindings::thrum::backup::types::ErrorCode as C;
    match code {
        C::InvalidConfig => "invalid-config",
        C::MissingInput => "missing-input",
        C::InvalidData => "invalid-data",
        C::HostCall => "host-call",
        C::Other => "other",
    }
}

/// Turn a trap into a message that names the limit or the cause.
fn trap_reason(store: &Store<HostState>, e: &wasmtime::Error) -> PluginFailure {
    let state = store.data();
    let limits = state.limits;
    if let Some(reason) = &state.violation {
        return PluginFailure::Trapped(reason.clone());
    }
    if matches!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        return PluginFailure::Trapped(format!(
            "deadline of {}s exceeded (limits.timeout_secs)",
            limits.timeout_secs
        ));
    }
    if state.limiter.denied {
        return PluginFailure::Trapped(format!(
            "memory limit of {} MiB reached for all its memories and tables together (limits.memory_mib)",
            limits.memory_mib
        ));
    }
    // A trap names its reason ("call stack exhausted"); the error's first line is only where.
    let mut msg = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{e:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let tail = state.stdio_tail();
    if !tail.is_empty() {
        msg.push_str(": ");
        msg.push_str(&tail);
    }
    PluginFailure::Trapped(msg)
}

/// Fetch (and check the pin of) an entry's component, load it, and run `call`.
pub fn run_entry(
    plugin: &WasmPlugin,
    call: Call,
    setting: &Setting,
) -> Result<Outcome, PluginFailure> {
    let bytes = component_bytes(plugin, &setting.repo_root)?;
    let loaded = load(&bytes)?;
    run(&loaded, plugin, call, setting)
}

/// Run a WASM plugin's backup into `out` and report, never failing the backup.
pub fn backup_report(
    plugin: &WasmPlugin,
    setting: &Setting,
    out: &Path,
) -> (PluginReport, Result<Outcome, PluginFailure>) {
    let start = Instant::now();
    let result = run_entry(
        plugin,
        Call::Backup {
            out: out.to_path_buf(),
        },
        setting,
    );
    let (files, bytes, error) = match &result {
        Ok(o) => (
            o.files.len() as u64,
            o.files.iter().map(|f| f.1).sum(),
            None,
        ),
        Err(e) => (0, 0, Some(e.to_string())),
    };
    let report = PluginReport {
        name: plugin.name.clone(),
        kind: PluginKind::Wasm,
        status: if error.is_none() {
            PluginStatus::Ok
        } else {
            PluginStatus::Failed
        },
        files,
        bytes,
        duration_ms: start.elapsed().as_millis() as u64,
        error,
        notes: result.as_ref().map(|o| o.notes.clone()).unwrap_or_default(),
        warnings: result
            .as_ref()
            .map(|o| o.warnings.clone())
            .unwrap_or_default(),
    };
    (report, result)
}
