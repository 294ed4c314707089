//! Repository addresses as restic users write them, turned into what rustic_backend opens.
//!
//! rustic_backend opens a local path, `rest:`, `rclone:` and `opendal:SERVICE` with options.
//! restic's `sftp:` and `s3:` addresses are not among them, so they are rewritten here into
//! OpenDAL's `sftp` and `s3` services — the same servers, reached the same way (SFTP through
//! the system's `ssh`, which reads `~/.ssh/config`; S3 with the `AWS_*` environment variables).
//! Options given in the entry win over what is derived from the address.

use std::collections::BTreeMap;

/// What rustic_backend is given: a repository string and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The repository string rustic_backend parses.
    pub repository: String,
    /// The backend's options.
    pub options: BTreeMap<String, String>,
}

/// Rewrite `address` (plus the entry's `options`) for rustic_backend.
pub fn backend(address: &str, options: &BTreeMap<String, String>) -> Result<Backend, String> {
    let (repository, mut derived) = if let Some(rest) = address.strip_prefix("sftp:") {
        ("opendal:sftp".to_owned(), sftp(rest)?)
    } else if let Some(rest) = address.strip_prefix("s3:") {
        ("opendal:s3".to_owned(), s3(rest)?)
    } else {
        (address.to_owned(), BTreeMap::new())
    };
    derived.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(Backend {
        repository,
        options: derived,
    })
}

/// `sftp:[user@]host:/path` or `sftp://[user@]host[:port]/path` (restic's two forms).
fn sftp(rest: &str) -> Result<BTreeMap<String, String>, String> {
    let bad = || {
        format!("sftp:{rest}: expected sftp:[user@]host:/path or sftp://[user@]host[:port]/path")
    };
    let (user_host, port, path) = if let Some(url) = rest.strip_prefix("//") {
        let (authority, path) = url.split_once('/').ok_or_else(bad)?;
        let (user_host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, Some(p)),
            _ => (authority, None),
        };
        // `sftp://host//abs` is absolute, `sftp://host/rel` relative to the login directory.
        (user_host, port, path.to_owned())
    } else {
        let (user_host, path) = rest.split_once(':').ok_or_else(bad)?;
        (user_host, None, path.to_owned())
    };
    let (user, host) = match user_host.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, user_host),
    };
    if host.is_empty() || path.is_empty() {
        return Err(bad());
    }
    let mut o = BTreeMap::new();
    let endpoint = match port {
        Some(p) => format!("ssh://{host}:{p}"),
        None => format!("ssh://{host}"),
    };
    o.insert("endpoint".into(), endpoint);
    o.insert("root".into(), path);
    if let Some(u) = user {
        o.insert("user".into(), u.to_owned());
    }
    Ok(o)
}

/// `s3:http(s)://host[:port]/bucket[/path]` or `s3:host/bucket[/path]` (https).
fn s3(rest: &str) -> Result<BTreeMap<String, String>, String> {
    let bad =
        || format!("s3:{rest}: expected s3:https://host[:port]/bucket/path or s3:host/bucket/path");
    let (scheme, hostpath) = if let Some(r) = rest.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = rest.strip_prefix("https://") {
        ("https", r)
    } else {
        ("https", rest)
    };
    let (host, path) = hostpath.split_once('/').ok_or_else(bad)?;
    let (bucket, root) = path.split_once('/').unwrap_or((path, ""));
    if host.is_empty() || bucket.is_empty() {
        return Err(bad());
    }
    let mut o = BTreeMap::new();
    o.insert("endpoint".into(), format!("{scheme}://{host}"));
    o.insert("bucket".into(), bucket.to_owned());
    o.insert("root".into(), format!("/{}", root.trim_matches('/')));
    let region = std::env::var("AWS_DEFAULT_REGION")
        .or_else(|_| std::env::var("AWS_REGION"))
        .unwrap_or_else(|_| "us-east-1".into());
    o.insert("region".into(), region);
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn restic_sftp_forms_become_opendal_sftp() {
        let b = backend("sftp:backup@host.example:/srv/repo", &BTreeMap::new()).unwrap();
        assert_eq!(b.repository, "opendal:sftp");
        assert_eq!(
            b.options,
            opts(&[
                ("endpoint", "ssh://host.example"),
                ("root", "/srv/repo"),
                ("user", "backup")
            ])
        );
        let b = backend("sftp://u@127.0.0.1:2222//tmp/r", &BTreeMap::new()).unwrap();
        assert_eq!(b.options["endpoint"], "ssh://127.0.0.1:2222");
        assert_eq!(b.options["root"], "/tmp/r");
        assert_eq!(b.options["user"], "u");
        assert!(backend("sftp:nohostpath", &BTreeMap::new()).is_err());
    }

    #[test]
    fn restic_s3_form_becomes_opendal_s3_and_entry_options_win() {
        let b = backend(
            "s3:http://127.0.0.1:3900/bucket/some/path",
            &opts(&[("region", "garage")]),
        )
        .unwrap();
        assert_eq!(b.repository, "opendal:s3");
        assert_eq!(b.options["endpoint"], "http://127.0.0.1:3900");
        assert_eq!(b.options["bucket"], "bucket");
        assert_eq!(b.options["root"], "/some/path");
        assert_eq!(b.options["region"], "garage");
        assert!(backend("s3:http://host", &BTreeMap::new()).is_err());
    }

    #[test]
    fn other_addresses_pass_through() {
        for a in [
            "/srv/repo",
            "rest:http://127.0.0.1:8000/r",
            "rclone:remote:path",
        ] {
            assert_eq!(backend(a, &BTreeMap::new()).unwrap().repository, a);
        }
    }
}
