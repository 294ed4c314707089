//! Real servers for the replica tests, each started by the test on 127.0.0.1 on a free port in
//! a directory of its own, and stopped when dropped: `rclone serve restic` (a restic REST
//! server), OpenSSH's `sshd` (SFTP) with a host key and a user key made for the run, and a
//! one-node Garage (an S3 object store). No emulators.
//!
//! A tool that is missing makes its tests say so and return, unless
//! `THRUM_BACKUP_REQUIRE_SERVERS` names it (a comma-separated list, or `1` for all; CI sets
//! it after installing them): then it fails.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The path of `tool`, or `None` (a note printed) when it is not installed and servers are
/// not required.
pub fn tool(name: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    let found = candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        let required = std::env::var("THRUM_BACKUP_REQUIRE_SERVERS").unwrap_or_default();
        assert!(
            !(required == "1" || required.split(',').any(|t| t.trim() == name)),
            "{name} is required (THRUM_BACKUP_REQUIRE_SERVERS={required}) but not installed"
        );
        eprintln!("note: {name} is not installed; this replica test is skipped");
    }
    found
}

/// A server process, killed and reaped when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    fn start(mut cmd: Command, port: u16, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("server log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut s = Self { child, port, log };
        s.wait_listening();
        s
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited ({status}): {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "server not listening on {} after 30 s: {}",
                self.port,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kill the server now (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `rclone serve restic` over `dir`: a restic REST server.
pub fn rest(dir: &Path, port: Option<u16>) -> Option<Server> {
    let rclone = tool("rclone", &[])?;
    std::fs::create_dir_all(dir).expect("rest dir");
    let port = port.unwrap_or_else(free_port);
    let mut cmd = Command::new(rclone);
    cmd.args(["serve", "restic", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(dir)
        .env("RCLONE_CONFIG", dir.join("no-rclone.conf"));
    Some(Server::start(cmd, port, dir.with_extension("log")))
}

/// OpenSSH's sshd with a configuration, host key and user key of its own; `bin` holds an
/// `ssh` that uses them (put it first in PATH: it is how a user's `~/.ssh/config` would say
/// which key and known hosts to use).
pub struct Sshd {
    pub server: Server,
    pub bin: PathBuf,
}

impl Sshd {
    /// PATH with our `ssh` first.
    pub fn path_env(&self) -> std::ffi::OsString {
        let mut paths = vec![self.bin.clone()];
        if let Some(p) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&p));
        }
        std::env::join_paths(paths).expect("PATH")
    }
}

pub fn sshd(dir: &Path) -> Option<Sshd> {
    let sshd = tool("sshd", &[PathBuf::from("/usr/sbin/sshd")])?;
    let ssh = tool("ssh", &[PathBuf::from("/usr/bin/ssh")])?;
    let keygen = tool("ssh-keygen", &[PathBuf::from("/usr/bin/ssh-keygen")])?;
    std::fs::create_dir_all(dir).expect("ssh dir");
    for key in ["hostkey", "userkey"] {
        let st = Command::new(&keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key))
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
    }
    std::fs::copy(dir.join("userkey.pub"), dir.join("authorized_keys")).expect("keys");
    // sshd's privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let d = dir.display();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
        ),
    )
    .expect("sshd_config");
    let host_pub = std::fs::read_to_string(dir.join("hostkey.pub")).expect("host key");
    std::fs::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_pub}"),
    )
    .expect("known_hosts");
    std::fs::write(
        dir.join("ssh_config"),
        format!(
            "Host *\n  IdentityFile {d}/userkey\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  \
             StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n"
        ),
    )
    .expect("ssh_config");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} -F {d}/ssh_config \"$@\"\n",
            ssh.display()
        ),
    )
    .expect("ssh wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cmd = Command::new(sshd);
    cmd.arg("-f")
        .arg(dir.join("sshd_config"))
        .args(["-D", "-e"]);
    let server = Server::start(cmd, port, dir.join("sshd.log"));
    Some(Sshd { server, bin })
}

/// A one-node Garage with a bucket and a key allowed on it.
pub struct Garage {
    pub server: Server,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
}

impl Garage {
    /// The restic address of `path` in the bucket.
    pub fn address(&self, path: &str) -> String {
        format!(
            "s3:http://127.0.0.1:{}/{}/{path}",
            self.server.port, self.bucket
        )
    }
}

pub fn garage(dir: &Path) -> Option<Garage> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_default();
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("THRUM_BACKUP_GARAGE") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(cache.join("thrum-backup-ci/garage/bin/garage"));
    let bin = tool("garage", &candidates)?;
    std::fs::create_dir_all(dir).expect("garage dir");
    let (s3, rpc, admin) = (free_port(), free_port(), free_port());
    let secret: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) % 251))
        .collect();
    let d = dir.display();
    let config = dir.join("garage.toml");
    std::fs::write(
        &config,
        format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n\n[admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n"
        ),
    )
    .expect("garage.toml");
    let mut cmd = Command::new(&bin);
    cmd.arg("-c").arg(&config).arg("server");
    let server = Server::start(cmd, s3, dir.join("garage.log"));
    let garage = |args: &[&str]| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(&bin)
                .arg("-c")
                .arg(&config)
                .args(args)
                .output()
                .expect("garage");
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "garage {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let node = garage(&["node", "id", "-q"]);
    let node = node.trim().split('@').next().unwrap_or_default().to_owned();
    garage(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
    garage(&["layout", "apply", "--version", "1"]);
    let key = garage(&["key", "create", "thrum-test"]);
    let field = |name: &str| {
        key.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} in `garage key create`: {key}"))
    };
    let (key_id, secret_key) = (field("Key ID"), field("Secret key"));
    let bucket = "thrum-replica".to_owned();
    garage(&["bucket", "create", &bucket]);
    garage(&[
        "bucket",
        "allow",
        "--read",
        "--write",
        "--owner",
        &bucket,
        "--key",
        "thrum-test",
    ]);
    Some(Garage {
        server,
        key_id,
        secret: secret_key,
        bucket,
    })
}

/// A tmpfs of `size` (e.g. `"96k"`) mounted on `dir`, unmounted when dropped; `None` (a note
/// printed) where mounting is not allowed, unless `tmpfs` is required.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self(dir.to_path_buf())),
            other => {
                let required = std::env::var("THRUM_BACKUP_REQUIRE_SERVERS").unwrap_or_default();
                assert!(
                    !(required == "1" || required.split(',').any(|t| t.trim() == "tmpfs")),
                    "cannot mount a tmpfs (required): {other:?}"
                );
                eprintln!("note: cannot mount a tmpfs here; the full-disk test is skipped");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
