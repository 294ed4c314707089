//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Backups for thrum workspaces: snapshots, zip archives, GFS retention, safe restores.
///
/// thrum-backup copies a thrum workspace's message log (the JSONL files on the a-sync
/// branch), a consistent copy of .thrum/var/messages.db, and .thrum's config, identities and
/// context into <backup dir>/<repo>/current/, archives the previous snapshot as a zip in
/// archives/, and applies the Grandfather-Father-Son retention of .thrum/config.json.
/// Snapshots are readable by thrum (manifest version 1).
///
/// Exit codes: 0 success, 1 failure, 2 usage error, 3 verification found problems,
/// 4 the backup directory is locked by another command, 5 the workspace shrank since the
/// previous backup (create kept the last good archive), 6 a replica failed (create: the local
/// backup succeeded; replica commands: the repository could not be reached or used).
#[derive(Debug, Parser)]
#[command(
    name = "thrum-backup",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Start with `thrum-backup demo` to see the whole cycle on a sample workspace."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The thrum repository (any directory inside it).
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// Backup directory (overrides backup.dir in config.json; default .thrum/backup).
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Seconds to wait for another command holding the backup directory.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30)]
    pub lock_timeout: u64,
    /// Seconds to wait for a messages.db locked by another process.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 30,
        env = "THRUM_BACKUP_DB_WAIT"
    )]
    pub db_wait: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up the workspace now.
    ///
    /// Builds a complete new snapshot beside current/, runs the plugins into it, writes its
    /// manifest, archives the previous snapshot as archives/<time>.zip, swaps the new one in,
    /// applies retention, then runs the post-backup hook. Files unchanged since current/ are
    /// hard-linked from it, logs that only grew are grown from it (hard link, then only the
    /// new lines written) once it is archived, and its database copy is brought up to date
    /// page by page (only the pages that differ from the live database at one instant are
    /// written, with an undo file; the next archive reads only the chunks around them). Hashes
    /// are kept per 64 KiB block (.index/current-blocks.json, checked against current/'s
    /// manifest before use): what did not change is not hashed again. Interrupted at any instant, it leaves the previous snapshot intact; the next command
    /// cleans up (cuts grown logs back, rolls the database copy back).
    Create(CreateArgs),
    /// Show the last backup and archive statistics.
    Status,
    /// Show the effective backup configuration, defaults marked.
    Config,
    /// Restore the workspace from current/ or from an archive.
    ///
    /// Checks the whole source first (zip structure, sizes, checksums, JSONL), saves the live
    /// data it is about to replace as archives/pre-restore-<time>.zip, then puts back the
    /// message log, config, identities, context and messages.db as one transaction: on any
    /// failure, or if killed, the workspace is put back as it was. Files the workspace already
    /// holds exactly (same bytes and mode) are left as they are, and logs that only grew since
    /// the snapshot are cut back to it (the cut bytes kept until the restore ends). Stop the
    /// thrum daemon first.
    Restore(RestoreArgs),
    /// Apply the retention policy to archives/ now.
    ///
    /// Only sound archives count: a file with an archive's name that does not open, has no
    /// manifest or is marked damaged is kept and listed, and never displaces a sound one.
    /// The last good archive from before a shrink is kept until --accept-shrink. Archives
    /// thrum made are also kept where thrum's own rotation keeps them.
    Prune(PruneArgs),
    /// Check a snapshot against its manifest (size and checksum of every file).
    ///
    /// Every file is read and hashed with the function its manifest entry names: BLAKE3 for
    /// snapshots this version writes, SHA-256 for those of the first versions. thrum's own
    /// archives have no checksums: their structure and event count are checked. Exit code 3
    /// when anything does not match; --json lists every problem.
    Verify(VerifyArgs),
    /// List the archives (name, time, size).
    Archives,
    /// Show, set or clear the schedule `thrum-backup daemon` follows.
    ///
    /// Saved as backup.thrum_backup_schedule in config.json. thrum's own backup.schedule is
    /// left alone: thrum's daemon starts thrum's backup scheduler whenever that key is set.
    /// `schedule off --thrum` removes it (thrum's backup takes no lock and rewrites current/).
    Schedule(ScheduleArgs),
    /// Run scheduled backups in the foreground until SIGINT or SIGTERM.
    ///
    /// The first backup runs after one interval. On a signal the daemon stops at the next
    /// safe point; a backup in progress is abandoned, leaving the previous one in place.
    Daemon(DaemonArgs),
    /// Manage plugins (extra data backed up into plugins/<name>/).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List the files of a snapshot: path and size (--long: time, checksum, secret).
    ///
    /// ARCHIVE is `current` (the default) or an archive (a file name in archives/, thrum's and
    /// pre-restore ones included, or a path). An archive is listed from its zip's central
    /// directory and manifest, without extracting anything. PATHs narrow the list: a file, a
    /// folder (everything below it) or a glob (`messages/*.jsonl`), as paths appear here.
    Ls(LsArgs),
    /// Write one file of a snapshot to stdout, checked as it streams.
    ///
    /// The bytes are hashed as they are written and compared with the manifest's checksum at
    /// the end: a mismatch exits with code 3 and says so on stderr after the bytes. Example:
    /// `thrum-backup dump current config/identities/alice.json`.
    Dump(DumpArgs),
    /// Compare two snapshots: files added, removed, changed, and what that means to thrum.
    ///
    /// Files are compared by the manifests' checksums (no file is read for that); then the
    /// changed logs and tables are read: new events, messages added, changed or gone per
    /// agent's log (by message id), rows added and removed per local table (message_reads,
    /// subscriptions, sync_checkpoints), identities and context files added or removed, and
    /// plugins whose data changed. `thrum-backup diff 2026-11-29T090000.zip current`.
    Diff(DiffArgs),
    /// Which snapshots hold a file, a message or an agent: "when did it disappear?".
    ///
    /// Searches current/ and every archive (thrum's and pre-restore ones too), oldest first,
    /// and reports each snapshot that holds it, the first and last that do, and the first after
    /// those that does not. PATTERNs are paths as `ls` shows them (files, folders, globs).
    /// `thrum-backup find --message msg-0000042`, `thrum-backup find --agent alice`,
    /// `thrum-backup find 'config/context/*'`.
    Find(FindArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `thrum-backup completions bash > ~/.local/share/bash-completion/completions/thrum-backup`;
    /// zsh: `thrum-backup completions zsh > ~/.zfunc/_thrum-backup` (with `fpath+=~/.zfunc`);
    /// fish: `thrum-backup completions fish > ~/.config/fish/completions/thrum-backup.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one per command into a folder.
    ///
    /// `thrum-backup man | man -l -` reads it; `thrum-backup man --out ~/.local/share/man/man1`
    /// installs thrum-backup.1 and thrum-backup-<command>.1 for `man thrum-backup`.
    Man {
        /// Write the pages into this folder instead of printing the main one.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Off-site replicas: every snapshot, deduplicated and encrypted, in a restic repository.
    ///
    /// A replica is a restic-format repository (restic and rustic read it) on a local path,
    /// SFTP (sftp:user@host:/path), a REST server (rest:http://host:8000/path), S3
    /// (s3:https://host/bucket/path) or whatever rustic can open (rclone:REMOTE:PATH,
    /// opendal:SERVICE with --option). `create` pushes each new snapshot to every replica
    /// after publishing it locally; a replica that fails never fails the local backup (exit
    /// code 6). The password comes from the entry's --password-file or --password-command, or
    /// from THRUM_BACKUP_PASSWORD(_FILE) / RESTIC_PASSWORD(_FILE); it is never written into
    /// config.json. S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[command(subcommand)]
    Replica(ReplicaCommand),
    /// Build a sample workspace in a temp dir and run the whole backup cycle on it.
    ///
    /// Creates a git repository with a sync worktree, a WAL messages.db with thrum's tables
    /// and a few agents; runs create twice, prune, verify; restores into a wiped copy and
    /// proves the copy equals the original; restores the older archive too.
    Demo(DemoArgs),
    /// Measure speed against cp, Info-ZIP zip/unzip, sqlite3 (and restic/borg when installed).
    ///
    /// Generates a realistic workspace (scale 1 is ~500 MB: an append-only events.jsonl, 200
    /// per-agent logs, a WAL messages.db, a .beads folder), then runs each tool and each engine
    /// operation several times on the same data and reports medians, CPU time, peak RSS,
    /// output sizes and ratios. The steady archive's size is compared with Info-ZIP's zip of
    /// the same data (the workspace in the state the archive holds, and that snapshot); the
    /// beads preset with a plain copy of .beads and with one whose files are fsynced. It only
    /// reports; it asserts nothing.
    Bench(BenchArgs),
    /// Run a command and print its wall time, CPU time and peak RSS as JSON (used by bench).
    #[command(name = "__measure", hide = true)]
    Measure {
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Size factor: 1.0 is ~500 MB; 0.05 is a quick run.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Runs per measurement (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Work directory (default: a temp dir, deleted afterwards).
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Do not run the configured plugins.
    #[arg(long)]
    pub no_plugins: bool,
    /// Do not run the post-backup hook.
    #[arg(long)]
    pub no_hook: bool,
    /// Do not apply retention afterwards (locally, nor on the replicas).
    #[arg(long)]
    pub no_prune: bool,
    /// Do not push the snapshot to the replicas of backup.replicas (`replica sync` pushes it
    /// later).
    #[arg(long)]
    pub no_replicas: bool,
    /// Deflate level (0-9) for the archive of the previous snapshot.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i64).range(0..=9))]
    pub level: i64,
    /// Leave thrum's secrets out of this snapshot (config.json, .env, var/peers.json,
    /// var/tsnet/): a restore of it leaves the live ones as they are. Default: captured and
    /// kept private (0600), as `backup.secrets: "include"` says; "exclude" there makes this
    /// the default.
    #[arg(long)]
    pub exclude_secrets: bool,
    /// Archive current/ even when it is a snapshot of another workspace (create refuses by
    /// default, naming both).
    #[arg(long)]
    pub force: bool,
    /// Run SQLite's full integrity check (PRAGMA quick_check, which reads every page) on the
    /// database now. Without it, a database copy brought up to date page by page from the
    /// previous snapshot's is checked when the last check is older than
    /// backup.db_check_every (default 24h; "0": every backup) or a quarter of its pages
    /// changed; in between, its pages are compared with the live database's and hashed, and a
    /// restore checks it before putting it back. A first or whole copy is always checked.
    #[arg(long)]
    pub check_db: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An archive: a file name in archives/ or a path. Default: current/. With
    /// --from-replica: a snapshot of the replica (its id or a prefix, as `replica snapshots`
    /// shows it); default: its newest.
    pub archive: Option<PathBuf>,
    /// Restore from a replica: a replica's name, or a repository address (on a machine with
    /// no backups and no config: the password then comes from THRUM_BACKUP_PASSWORD(_FILE) or
    /// RESTIC_PASSWORD(_FILE)). The snapshot is fetched into private space and checked
    /// against its own manifest before anything in the workspace changes.
    #[arg(long, value_name = "NAME|REPOSITORY")]
    pub from_replica: Option<String>,
    /// Check the source and plan the restore, then list every file that would be created,
    /// replaced or moved out (with sizes) and the database action; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Put back only the snapshot's files matching PATTERN (a path as `ls` shows it, a
    /// folder, or a glob: `config/identities/alice.json`, `messages/alice.jsonl`,
    /// `config/context/*`); repeatable. Everything else in the workspace is left as it is, and
    /// nothing is moved out. messages.db is put back only with `db/` (or `db/messages.db`, or
    /// a `local/` table); plugins only with `plugins/<name>`. Same guarantees as a whole
    /// restore: checked first, the replaced live files saved first, one transaction.
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    pub include: Vec<String>,
    /// Leave the snapshot's files matching PATTERN out (with or without --include).
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    pub exclude: Vec<String>,
    /// Write the snapshot's files (all, or those --include selects) into DIR, a new or empty
    /// folder, laid out as the workspace would be and checked as they are written, instead of
    /// into the workspace, which is not touched: a place to look before deciding.
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Refuse archives whose uncompressed size exceeds this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
    pub max_size: u64,
    /// Refuse archives with more entries than this (a guard against hostile archives; raise
    /// it for a snapshot with that many files).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub max_entries: usize,
    /// Number new events above SEQ (default: above what the live database had reached), so
    /// that peers which already pulled this daemon's events up to there take new ones. Needed
    /// when a restore goes back to an older database; restore warns when it does.
    #[arg(long, value_name = "SEQ", num_args = 0..=1)]
    pub raise_sequence: Option<Option<i64>>,
    /// Restore even a snapshot of another workspace (another repository, or another clone
    /// of this one), or a database whose schema is newer than the installed thrum opens.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// List every archive as keep or remove, with the rule that decided, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accept what `create` reported as a shrink (a log that got shorter, a sync worktree or
    /// an identity gone, a database that lost most of its rows): the last good archive from
    /// before it, kept until now, is then pruned like any other.
    #[arg(long)]
    pub accept_shrink: bool,
    /// Leave the replicas alone (by default their retention is applied too: rustic's forget
    /// and prune with the same policy, or the replica's own).
    #[arg(long)]
    pub no_replicas: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An archive to verify (file name in archives/ or a path). Default: current/.
    pub archive: Option<PathBuf>,
    /// Verify current/ and every archive.
    #[arg(long, conflicts_with = "archive")]
    pub all: bool,
    /// Refuse archives with more entries than this (raise it for a snapshot with that many
    /// files).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub max_entries: usize,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// A Go duration ("24h", "6h30m") or "off". Without it, show the schedule.
    pub interval: Option<String>,
    /// With "off": turn thrum's own backup scheduler off (remove backup.schedule).
    #[arg(long)]
    pub thrum: bool,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Override the configured interval (a Go duration).
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// `current` or an archive (a file name in archives/ or a path). Default: current.
    pub archive: Option<String>,
    /// Only these paths: a file, a folder, or a glob, as the list shows them.
    pub paths: Vec<String>,
    /// Also show each file's time, checksum and whether it is one of thrum's secrets.
    #[arg(long, short = 'l')]
    pub long: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier snapshot: `current` or an archive.
    pub a: String,
    /// The later snapshot (default: current).
    pub b: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["patterns", "message", "agent"])))]
pub struct FindArgs {
    /// Paths, folders or globs, as `ls` shows them.
    pub patterns: Vec<String>,
    /// A message (or event) id, searched in the message and event logs.
    #[arg(long, value_name = "ID")]
    pub message: Option<String>,
    /// An agent's name: its message logs, identity and context.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// `current` or an archive (a file name in archives/ or a path).
    pub archive: String,
    /// The file, as `ls` shows it (e.g. `config/identities/alice.json`).
    pub path: String,
}

#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// Add a replica: checks that the repository opens (or, with --init, creates it) before
    /// saving the entry in backup.replicas.
    Add(ReplicaAddArgs),
    /// List the replicas: last push, last error, snapshot count, repository size.
    List,
    /// Remove a replica's entry from config.json. Never deletes anything in the repository.
    Remove {
        /// The replica's name.
        name: String,
    },
    /// List the snapshots this tool pushed to a replica (as `restic snapshots` shows them).
    Snapshots {
        /// The replica's name.
        name: String,
    },
    /// Check a replica's repository (rustic's check); exit code 3 when it finds damage.
    Check {
        /// The replica's name.
        name: String,
        /// Also read every pack and verify its data (downloads the whole repository).
        #[arg(long)]
        read_data: bool,
    },
    /// Push every local snapshot a replica lacks (archives oldest first, then current/), each
    /// with its own time. Run twice, the second pushes nothing; interrupted, the next run
    /// completes it.
    Sync {
        /// The replica's name (default: every replica).
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ReplicaAddArgs {
    /// A name for the replica (letters, digits, '.', '-', '_').
    pub name: String,
    /// The repository: a path, sftp:[user@]host:/path, sftp://[user@]host:port//path,
    /// rest:http://host:port/path, s3:http(s)://host[:port]/bucket/path, rclone:REMOTE:PATH,
    /// opendal:SERVICE.
    pub repository: String,
    /// Create the repository if there is none yet (restic format version 2, compressed).
    #[arg(long)]
    pub init: bool,
    /// A file whose first line is the password (its path is saved, never the password).
    #[arg(long, value_name = "FILE", conflicts_with = "password_command")]
    pub password_file: Option<PathBuf>,
    /// A command printing the password (saved as given; run each time it is needed).
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,
    /// A backend option, KEY=VALUE (e.g. region=eu-west-1 for S3, key=~/.ssh/id for SFTP,
    /// connections=4); repeatable.
    #[arg(long = "option", short = 'o', value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Seconds the repository has to answer before a command gives up on it (default 60).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Add a plugin: a built-in preset, a WebAssembly component, or a shell command.
    ///
    /// A component (--preset or --wasm) is loaded and asked what it is and which grants it
    /// needs; those are shown, and saved only when you confirm (or pass --yes). A component
    /// file outside the repository is copied to .thrum/plugins/<name>/plugin.wasm so the team
    /// shares it; its sha256 is pinned in config.json and checked on every run.
    Add(PluginAddArgs),
    /// List the configured plugins with their kind, version and grants.
    List,
    /// Remove a plugin from the config (and its component under .thrum/plugins/<name>/).
    Remove {
        /// The plugin's name.
        name: String,
    },
    /// Scaffold a new plugin (Rust, Python or JavaScript) that builds with one command.
    ///
    /// The project carries the WIT contract (and, for Rust, the SDK); its README has the
    /// commands from build to installed bundle.
    New(PluginNewArgs),
    /// Pack a component into a bundle (.tbp) a team can share, optionally signed.
    ///
    /// The bundle is a zip of manifest.json (name, version, contract, description, grants,
    /// default config, sha256 of every file), the component, an optional README and, with
    /// --sign, an ed25519 signature over the manifest. Name, version and grants come from the
    /// component's describe; a --manifest that disagrees with it is refused.
    Pack(PluginPackArgs),
    /// Install a bundle: check it, show the grants it asks for, and add it to this repository.
    ///
    /// Every checksum is checked, and the signature against the trusted keys (an unsigned
    /// bundle, or one signed by a key not trusted here, needs --allow-unsigned). The component
    /// goes to .thrum/plugins/<name>/ (commit it: the team runs the same bytes) and config.json
    /// gets its sha256 pin and the grants you confirmed. Installing a newer version shows what
    /// changed in its grants and asks again.
    Install(PluginInstallArgs),
    /// Check every installed plugin against its pin, and bundles against their signature.
    ///
    /// Exit code 3 when a plugin would be refused (create and restore refuse it too, and back
    /// up everything else).
    Verify,
    /// Make a signing key for bundles; prints its public key.
    ///
    /// The key file is written with mode 0600 and never replaced. Keep it secret; share the
    /// public key (teammates run `thrum-backup plugin trust <key> --name <you>`).
    Keygen {
        /// Where to write the key file.
        #[arg(short, long, value_name = "KEYFILE")]
        out: PathBuf,
    },
    /// Trust bundles signed by a public key (stored in config.json's backup.trusted_keys).
    Trust {
        /// The public key, ed25519:<64 hex digits>, as `plugin keygen` printed it.
        key: String,
        /// Who holds the key (shown when installing their bundles).
        #[arg(long, value_name = "WHO", default_value = "")]
        name: String,
    },
    /// Stop trusting a key (by key or by name). Installed plugins stay; `plugin verify` warns.
    Untrust {
        /// The public key or the name it was trusted under.
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct PluginPackArgs {
    /// The component (.wasm) to pack.
    pub component: PathBuf,
    /// A JSON file overriding the manifest: name, version, description, grants, config.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// A README (Markdown) to include.
    #[arg(long, value_name = "FILE")]
    pub readme: Option<PathBuf>,
    /// Sign the bundle with this key file (from `plugin keygen`).
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Option<PathBuf>,
    /// The bundle to write (conventionally NAME-VERSION.tbp).
    #[arg(short, long, value_name = "FILE.tbp")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct PluginInstallArgs {
    /// The bundle (.tbp).
    pub bundle: PathBuf,
    /// Confirm the grants without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Accept a bundle that is unsigned or signed by a key this repository does not trust.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Accept grants that amount to running code (write:.git, write:.thrum, read:., read:.git,
    /// exec: of a shell, interpreter or launcher): shown with a warning, refused without this.
    #[arg(long)]
    pub allow_dangerous: bool,
}

#[derive(Debug, Args)]
pub struct PluginAddArgs {
    /// A built-in preset (embedded component): beads or beads-rust.
    #[arg(long, value_parser = ["beads", "beads-rust"], conflicts_with_all = ["wasm", "command", "include"])]
    pub preset: Option<String>,
    /// A WebAssembly component file implementing the thrum:backup plugin world.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["command", "include"])]
    pub wasm: Option<PathBuf>,
    /// The plugin's name (default: what the component says).
    #[arg(long, required_unless_present_any = ["preset", "wasm"])]
    pub name: Option<String>,
    /// Shell command run with `sh -c` in the repo root before collecting files.
    #[arg(long, default_value = "")]
    pub command: String,
    /// Glob of files to collect, relative to the repo root (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// An extra grant beyond what the component requires (read:PATH, write:PATH, exec:PROGRAM).
    #[arg(long, value_name = "GRANT")]
    pub grant: Vec<String>,
    /// The plugin's config, a JSON object.
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// Confirm the grants without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Replace an existing plugin of the same name.
    #[arg(long)]
    pub replace: bool,
    /// Accept grants that amount to running code (write:.git, write:.thrum, read:., read:.git,
    /// exec: of a shell, interpreter or launcher): shown with a warning, refused without this.
    #[arg(long)]
    pub allow_dangerous: bool,
}

#[derive(Debug, Args)]
pub struct PluginNewArgs {
    /// The plugin's name (also the crate's or package's).
    pub name: String,
    /// Where to create the project (default: ./<name>).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The language: rust (a crate using the SDK), python (componentize-py) or js
    /// (componentize-js).
    #[arg(long, value_parser = ["rust", "python", "js"], default_value = "rust")]
    pub lang: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's temp directory instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}
