//! Patterns naming the paths of a snapshot, as `ls` shows them: a path, a folder (everything
//! below it) or a glob (`messages/*.jsonl`, where `*` stays inside one folder). Shared by `ls`
//! and partial restores.

use crate::error::{Error, Result};

/// One pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    glob: Option<glob::Pattern>,
}

impl Pattern {
    /// Parse `text`; a pattern that would leave the snapshot (`/…`, `..`) is refused.
    pub fn new(text: &str) -> Result<Self> {
        let text = text
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        if text.is_empty() || text.starts_with('/') || text.split('/').any(|c| c == "..") {
            return Err(Error::Invalid(format!(
                "{text:?}: patterns name paths inside the snapshot, as `ls` shows them (not empty, no leading '/', no '..')"
            )));
        }
        let glob = if text.contains(['*', '?', '[']) {
            Some(
                glob::Pattern::new(&text)
                    .map_err(|e| Error::Invalid(format!("{text:?}: not a valid pattern: {e}")))?,
            )
        } else {
            None
        };
        Ok(Self { text, glob })
    }

    /// Parse every one of `texts`.
    pub fn all(texts: &[String]) -> Result<Vec<Self>> {
        texts.iter().map(|t| Self::new(t)).collect()
    }

    /// The pattern as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `path` (a snapshot path) matches.
    pub fn matches(&self, path: &str) -> bool {
        match &self.glob {
            Some(g) => {
                let opts = glob::MatchOptions {
                    require_literal_separator: true,
                    ..glob::MatchOptions::new()
                };
                // A glob naming folders (`plugins/*`) takes what is below them too.
                g.matches_with(path, opts)
                    || path
                        .match_indices('/')
                        .any(|(i, _)| g.matches_with(&path[..i], opts))
            }
            None => {
                path == self.text
                    || path
                        .strip_prefix(&self.text)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_folders_and_globs() {
        let p = |t: &str| Pattern::new(t).unwrap();
        assert!(p("config/config.json").matches("config/config.json"));
        assert!(!p("config/config.json").matches("config/config.json.bak"));
        assert!(p("config/identities/").matches("config/identities/a.json"));
        assert!(!p("config/identities").matches("config/identities-old/a.json"));
        assert!(p("messages/*.jsonl").matches("messages/a.jsonl"));
        assert!(!p("messages/*.jsonl").matches("messages/sub/a.jsonl"));
        assert!(p("plugins/*").matches("plugins/beads/issues.jsonl"));
        assert!(p("./db/").matches("db/messages.db"));
        for bad in ["/etc/passwd", "../x", "a/../../b", "", "["] {
            assert!(Pattern::new(bad).is_err(), "{bad}");
        }
    }
}
