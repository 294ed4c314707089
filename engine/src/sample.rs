//! A realistic sample thrum workspace, generated deterministically: a git repository with the
//! sync worktree on an orphan `a-sync` branch, an append-only `events.jsonl`, per-agent
//! message logs, a WAL `messages.db` with thrum's tables, config, identities and context.
//!
//! Used by `demo`, by the end-to-end tests and by the benchmark. Text is built from a word
//! list so it compresses like real English-ish JSON, not like random bytes or repeated lines.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::{Connection, params};

use crate::error::{Error, IoContext, Result};
use crate::fsx;

/// The subset of thrum's schema the samples use (thrum's `internal/schema`, same columns).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
  message_id TEXT PRIMARY KEY, thread_id TEXT, agent_id TEXT NOT NULL, session_id TEXT NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT, body_format TEXT NOT NULL, body_content TEXT NOT NULL,
  body_structured TEXT, deleted INTEGER DEFAULT 0, deleted_at TEXT, delete_reason TEXT,
  authored_by TEXT, disclosed INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS agents (
  agent_id TEXT PRIMARY KEY, kind TEXT NOT NULL, role TEXT NOT NULL, module TEXT NOT NULL,
  display TEXT NOT NULL DEFAULT '', hostname TEXT NOT NULL DEFAULT '', agent_pid INTEGER NOT NULL DEFAULT 0,
  registered_at TEXT NOT NULL, last_seen_at TEXT NOT NULL DEFAULT '', origin_daemon TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT,
  end_reason TEXT, last_seen_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, scope_type TEXT, scope_value TEXT,
  mention_role TEXT, created_at TEXT NOT NULL, UNIQUE(session_id, scope_type, scope_value, mention_role));
CREATE TABLE IF NOT EXISTS message_reads (
  message_id TEXT NOT NULL, session_id TEXT NOT NULL, agent_id TEXT NOT NULL, read_at TEXT NOT NULL,
  PRIMARY KEY (message_id, session_id),
  FOREIGN KEY (message_id) REFERENCES messages(message_id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY, sequence INTEGER UNIQUE NOT NULL, type TEXT NOT NULL, timestamp TEXT NOT NULL,
  origin_daemon TEXT NOT NULL, event_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sync_checkpoints (
  peer_daemon_id TEXT PRIMARY KEY, last_synced_sequence INTEGER NOT NULL DEFAULT 0,
  last_sync_timestamp INTEGER NOT NULL, sync_status TEXT NOT NULL DEFAULT 'idle');
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
";

/// How big a sample to make.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Agents (each with an identity, a context file and a message log).
    pub agents: usize,
    /// Messages in total.
    pub messages: usize,
}

impl Scale {
    /// A small workspace for the demo and the tests (well under a megabyte).
    pub const SMALL: Scale = Scale {
        agents: 4,
        messages: 240,
    };
}

/// Paths of a generated workspace.
#[derive(Debug, Clone)]
pub struct SampleWorkspace {
    /// The repository root.
    pub root: PathBuf,
    /// The sync worktree.
    pub sync_dir: PathBuf,
    /// `messages.db`.
    pub db_path: PathBuf,
    /// Agent names.
    pub agents: Vec<String>,
    next_message: usize,
    rng: u64,
}

const WORDS: &[&str] = &[
    "the",
    "build",
    "agent",
    "review",
    "merge",
    "branch",
    "test",
    "passes",
    "fails",
    "on",
    "main",
    "please",
    "check",
    "schema",
    "migration",
    "daemon",
    "restart",
    "sync",
    "worktree",
    "message",
    "thread",
    "reply",
    "context",
    "deploy",
    "staging",
    "we",
    "should",
    "refactor",
    "parser",
    "for",
    "edge",
    "cases",
    "and",
    "then",
    "retry",
    "with",
    "backoff",
    "latency",
    "looks",
    "fine",
    "now",
    "I",
    "pushed",
    "a",
    "fix",
    "to",
    "issue",
    "queue",
    "is",
    "empty",
    "blocked",
    "waiting",
    "approval",
    "done",
    "cache",
    "invalidated",
    "after",
    "config",
    "change",
    "lint",
    "warnings",
];

impl SampleWorkspace {
    /// Create a workspace named `name` under `parent` (a git repository; git must be installed).
    pub fn generate(parent: &Path, name: &str, scale: Scale) -> Result<Self> {
        let root = parent.join(name);
        fsx::create_dir_all(&root)?;
        git(&root, &["init", "-q", "-b", "main"])?;
        git(&root, &["config", "user.email", "demo@example.com"])?;
        git(&root, &["config", "user.name", "thrum-backup demo"])?;
        std::fs::write(root.join("README.md"), format!("# {name}\n")).at("write", &root)?;
        git(&root, &["add", "README.md"])?;
        git(&root, &["commit", "-q", "-m", "initial"])?;
        // The orphan a-sync branch, checked out as thrum's sync worktree.
        let empty_tree = git(&root, &["hash-object", "-t", "tree", "-w", "--stdin"])?;
        let commit = git(&root, &["commit-tree", &empty_tree, "-m", "a-sync"])?;
        git(&root, &["branch", "a-sync", &commit])?;
        let sync_dir = root.join(".git/thrum-sync/a-sync");
        fsx::create_dir_all(sync_dir.parent().unwrap_or(&root))?;
        git(
            &root,
            &[
                "worktree",
                "add",
                "-q",
                &sync_dir.to_string_lossy(),
                "a-sync",
            ],
        )?;

        let thrum = root.join(".thrum");
        let agents: Vec<String> = (0..scale.agents)
            .map(|i| {
                format!(
                    "{}-{}",
                    ["coder", "reviewer", "planner", "tester"][i % 4],
                    i + 1
                )
            })
            .collect();
        fsx::write_atomic(
            &thrum.join("config.json"),
            br#"{
  "daemon": {
    "port": 7137,
    "log_level": "info"
  },
  "identity": {
    "daemon_id": "d-7f3a",
    "repo_name": "demo"
  },
  "backup": {
    "retention": {
      "daily": 5,
      "weekly": 4,
      "monthly": -1
    }
  }
}
"#,
        )?;
        for (i, a) in agents.iter().enumerate() {
            fsx::write_atomic(
                &thrum.join("identities").join(format!("{a}.json")),
                format!(
                    "{{\"agent_id\": \"{a}\", \"role\": \"{}\", \"module\": \"core\", \"display\": \"Agent {}\"}}\n",
                    a.split('-').next().unwrap_or("agent"),
                    i + 1
                )
                .as_bytes(),
            )?;
            fsx::write_atomic(
                &thrum.join("context").join(format!("{a}.md")),
                format!("# Context for {a}\n\nWorking on the parser refactor; see thread t-{i}.\n")
                    .as_bytes(),
            )?;
        }
        let db_path = thrum.join("var/messages.db");
        fsx::create_dir_all(db_path.parent().unwrap_or(&thrum))?;
        let conn = Connection::open(&db_path).map_err(db_err(&db_path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err(&db_path))?;
        conn.execute_batch(SCHEMA).map_err(db_err(&db_path))?;
        conn.execute("INSERT INTO schema_version (version) VALUES (25)", [])
            .map_err(db_err(&db_path))?;
        for (i, a) in agents.iter().enumerate() {
            conn.execute(
                "INSERT INTO agents (agent_id, kind, role, module, registered_at) VALUES (?1, 'agent', ?2, 'core', '2026-11-01T09:00:00Z')",
                params![a, a.split('-').next()],
            )
            .map_err(db_err(&db_path))?;
            conn.execute(
                "INSERT INTO sessions (session_id, agent_id, started_at, last_seen_at) VALUES (?1, ?2, '2026-11-01T09:00:00Z', '2026-11-01T10:00:00Z')",
                params![format!("s-{i}"), a],
            )
            .map_err(db_err(&db_path))?;
            conn.execute(
                "INSERT INTO subscriptions (session_id, scope_type, scope_value, created_at) VALUES (?1, 'thread', ?2, '2026-11-01T09:00:00Z')",
                params![format!("s-{i}"), format!("t-{i}")],
            )
            .map_err(db_err(&db_path))?;
        }
        conn.execute(
            "INSERT INTO sync_checkpoints (peer_daemon_id, last_synced_sequence, last_sync_timestamp) VALUES ('d-peer', 0, 1764000000)",
            [],
        )
        .map_err(db_err(&db_path))?;
        drop(conn);
        let mut ws = Self {
            root,
            sync_dir,
            db_path,
            agents,
            next_message: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        };
        ws.add_messages(scale.messages)?;
        Ok(ws)
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: deterministic and good enough for text.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn sentence(&mut self) -> String {
        let n = 6 + (self.rand() % 18) as usize;
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[(self.rand() % WORDS.len() as u64) as usize]);
        }
        s.push('.');
        s
    }

    /// Append `n` messages: to `events.jsonl`, the sender's message log, and the database
    /// (messages, events, and a read receipt for each).
    pub fn add_messages(&mut self, n: usize) -> Result<()> {
        let conn = Connection::open(&self.db_path).map_err(db_err(&self.db_path))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db_err(&self.db_path))?;
        let mut events = String::new();
        let mut per_agent: Vec<String> = vec![String::new(); self.agents.len()];
        conn.execute_batch("BEGIN").map_err(db_err(&self.db_path))?;
        for _ in 0..n {
            let k = self.next_message;
            self.next_message += 1;
            let a = (self.rand() % self.agents.len() as u64) as usize;
            let agent = self.agents[a].clone();
            let body = self.sentence();
            let ts = format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}Z",
                1 + (k / 3600) % 28,
                (k / 60) % 24,
                k % 60,
                (k * 7) % 60
            );
            let id = format!("msg-{k:07}");
            let thread = format!("t-{}", k % 7);
            let event = serde_json::json!({
                "type": "message.create", "event_id": format!("ev-{k:07}"), "timestamp": ts,
                "origin_daemon": "d-7f3a", "message_id": id, "thread_id": thread,
                "agent_id": agent, "session_id": format!("s-{a}"),
                "body": {"format": "markdown", "content": body},
                "scopes": [{"type": "thread", "value": thread}],
            });
            let line = event.to_string();
            let _ = writeln!(events, "{line}");
            let _ = writeln!(per_agent[a], "{line}");
            conn.execute(
                "INSERT INTO messages (message_id, thread_id, agent_id, session_id, created_at, body_format, body_content) VALUES (?1, ?2, ?3, ?4, ?5, 'markdown', ?6)",
                params![id, thread, agent, format!("s-{a}"), ts, body],
            )
            .map_err(db_err(&self.db_path))?;
            conn.execute(
                "INSERT INTO events (event_id, sequence, type, timestamp, origin_daemon, event_json) VALUES (?1, ?2, 'message.create', ?3, 'd-7f3a', ?4)",
                params![format!("ev-{k:07}"), k as i64, ts, line],
            )
            .map_err(db_err(&self.db_path))?;
            let reader = (a + 1) % self.agents.len();
            conn.execute(
                "INSERT INTO message_reads (message_id, session_id, agent_id, read_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, format!("s-{reader}"), self.agents[reader], ts],
            )
            .map_err(db_err(&self.db_path))?;
        }
        conn.execute(
            "UPDATE sync_checkpoints SET last_synced_sequence = ?1",
            params![self.next_message as i64],
        )
        .map_err(db_err(&self.db_path))?;
        conn.execute_batch("COMMIT")
            .map_err(db_err(&self.db_path))?;
        append(&self.sync_dir.join("events.jsonl"), events.as_bytes())?;
        for (a, text) in per_agent.iter().enumerate() {
            if !text.is_empty() {
                let path = self
                    .sync_dir
                    .join("messages")
                    .join(format!("{}.jsonl", self.agents[a]));
                append(&path, text.as_bytes())?;
            }
        }
        Ok(())
    }
}

fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(p) = path.parent() {
        fsx::create_dir_all(p)?;
    }
    let mut f = std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .at("open", path)?;
    f.write_all(bytes).at("write", path)
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| {
        crate::database::DbError::Sqlite {
            path: path.to_path_buf(),
            action: "write sample data",
            source,
        }
        .into()
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run git (is it installed?): {e}")))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Every table's rows as sorted text lines: equal dumps mean equal data.
pub fn dump_database(path: &Path) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(db_err(path))?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(db_err(path))?;
    let mut out = Vec::new();
    for t in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .map_err(db_err(path))?;
        let n = stmt.column_count();
        let mut rows = stmt.query([]).map_err(db_err(path))?;
        let mut lines = Vec::new();
        while let Some(r) = rows.next().map_err(db_err(path))? {
            let mut line = format!("{t}:");
            for i in 0..n {
                let _ = write!(line, " {:?}", r.get_ref(i).map_err(db_err(path))?);
            }
            lines.push(line);
        }
        lines.sort();
        out.extend(lines);
    }
    Ok(out)
}
