//! Running user commands (`sh -c`) with a deadline that kills the whole process group, and a
//! bounded tail of stderr for the error report.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How much of stderr is kept for a report.
pub const STDERR_TAIL: usize = 4096;

/// How a command ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Whether our deadline killed it.
    pub timed_out: bool,
    /// The last bytes of its stderr.
    pub stderr_tail: String,
    /// The first bytes of its stdout, when captured.
    pub stdout_head: Vec<u8>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Outcome {
    /// Whether it exited 0 in time.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// A one-line description of a failure.
    pub fn describe_failure(&self, timeout: Duration) -> String {
        let mut msg = if self.timed_out {
            format!(
                "timed out after {}s (process group killed)",
                timeout.as_secs()
            )
        } else {
            match self.code {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".into(),
            }
        };
        let tail = self.stderr_tail.trim();
        if !tail.is_empty() {
            msg.push_str(": ");
            msg.push_str(tail);
        }
        msg
    }
}

/// Run `sh -c command` in `cwd` with extra `env`, killing its process group at `timeout`.
pub fn run_shell(
    command: &str,
    cwd: &Path,
    env: &[(&str, &std::ffi::OsStr)],
    timeout: Duration,
) -> std::io::Result<Outcome> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, timeout, None)
}

/// Run `program` with `args` (no shell) in `cwd`, capturing up to `stdout_cap` bytes of stdout.
pub fn run_argv(
    program: &str,
    args: &[String],
    cwd: &Path,
    timeout: Duration,
    stdout_cap: usize,
) -> std::io::Result<Outcome> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd);
    run(cmd, timeout, Some(stdout_cap))
}

fn spawn_reader(
    stream: Option<impl Read + Send + 'static>,
    keep_head: Option<usize>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        if let Some(mut s) = stream {
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                match keep_head {
                    Some(cap) => {
                        let room = cap.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    None => {
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > 2 * STDERR_TAIL {
                            kept.drain(..kept.len() - STDERR_TAIL);
                        }
                    }
                }
            }
        }
        if keep_head.is_none() && kept.len() > STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
        kept
    })
}

fn run(mut cmd: Command, timeout: Duration, stdout_cap: Option<usize>) -> std::io::Result<Outcome> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(if stdout_cap.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let err_reader = spawn_reader(child.stderr.take(), None);
    let out_reader = spawn_reader(child.stdout.take(), Some(stdout_cap.unwrap_or(0)));
    let pgid = rustix::process::Pid::from_child(&child);
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Whatever the command left running in its group goes too: its output is over.
    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    let elapsed = start.elapsed();
    // A grandchild that escaped the group could hold a pipe open: after a timeout, do not
    // wait for the readers.
    let (stderr_tail, stdout_head) = if timed_out {
        (String::new(), Vec::new())
    } else {
        let err = err_reader.join().unwrap_or_default();
        (
            String::from_utf8_lossy(&err).into_owned(),
            out_reader.join().unwrap_or_default(),
        )
    };
    Ok(Outcome {
        code: status.code(),
        timed_out,
        stderr_tail,
        stdout_head,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_failure_tail() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_shell(
            "echo oops >&2; exit 3",
            dir.path(),
            &[],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert!(
            out.describe_failure(Duration::from_secs(1))
                .contains("oops")
        );
    }

    #[test]
    fn deadline_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survivor");
        let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let out = run_shell(&cmd, dir.path(), &[], Duration::from_millis(300)).unwrap();
        assert!(out.timed_out);
        assert!(out.elapsed < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(
            !marker.exists(),
            "a child of the shell survived the timeout"
        );
    }
}
