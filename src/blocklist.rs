//! The domain blocklist (`--blocklist FILE`): one domain per line (`#`
//! starts a comment); a domain blocks itself and every subdomain. Targets on
//! it are refused at creation and edit, and links already pointing there
//! answer 410 at redirect time. The file is re-read when it changes (checked
//! every few seconds) and on SIGHUP.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::RwLock;

#[derive(Default)]
pub struct Blocklist {
    path: Option<PathBuf>,
    domains: DomainSet,
    modified: RwLock<Option<SystemTime>>,
}

fn parse(text: &str) -> HashSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim_start_matches("*.")
                .trim_end_matches('.')
                .to_ascii_lowercase()
        })
        .map(|l| {
            // Stored as punycode, as targets are.
            url::Url::parse(&format!("http://{l}/"))
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or(l)
        })
        .collect()
}

impl Blocklist {
    /// Loads `path` (an empty list without one). A missing or unreadable
    /// file is an error at start.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Blocklist> {
        let list = Blocklist {
            path: path.map(Path::to_path_buf),
            ..Blocklist::default()
        };
        if let Some(p) = path {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("blocklist {}: {e}", p.display()))?;
            list.domains.replace(parse(&text));
            *list.modified.write() = std::fs::metadata(p).and_then(|m| m.modified()).ok();
            tracing::info!(domains = list.len(), "blocklist loaded");
        }
        Ok(list)
    }

    pub fn len(&self) -> usize {
        self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file; keeps the old list if it cannot be read.
    pub fn reload(&self) {
        let Some(path) = &self.path else { return };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let domains = parse(&text);
                let n = domains.len();
                self.domains.replace(domains);
                *self.modified.write() = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                tracing::info!(domains = n, "blocklist reloaded");
            }
            Err(e) => tracing::error!(error = %e, "blocklist reload failed; keeping the old list"),
        }
    }

    /// Reloads if the file changed since the last load.
    pub fn reload_if_changed(&self) {
        let Some(path) = &self.path else { return };
        let now = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if now != *self.modified.read() {
            self.reload();
        }
    }

    /// Whether `host` or a domain it belongs to is listed.
    pub fn blocks(&self, host: &str) -> bool {
        self.domains.covers(host)
    }
}

/// Domains (lower case, punycode, no trailing dot) that cover their
/// subdomains, replaced whole when re-read: the blocklist's and the
/// takedowns' (see [`crate::takedown`]).
#[derive(Default)]
pub struct DomainSet(RwLock<HashSet<String>>);

impl DomainSet {
    pub fn replace(&self, domains: HashSet<String>) {
        *self.0.write() = domains;
    }

    pub fn len(&self) -> usize {
        self.0.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `host` or a domain it belongs to is in the set.
    pub fn covers(&self, host: &str) -> bool {
        covers(&self.0.read(), host)
    }
}

fn covers(domains: &HashSet<String>, host: &str) -> bool {
    if domains.is_empty() {
        return false;
    }
    // Targets' hosts are already lower case (normalised when parsed): no
    // copy on the redirect's path then.
    let host = host.trim_end_matches('.');
    let lower;
    let mut rest = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = host.to_ascii_lowercase();
        lower.as_str()
    } else {
        host
    };
    loop {
        if domains.contains(rest) {
            return true;
        }
        match rest.split_once('.') {
            Some((_, parent)) => rest = parent,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_block_their_subdomains_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocklist");
        std::fs::write(
            &path,
            "# phishing\nevil.example\n*.bad.test  # wildcard form\nBÜCHER.example\n\n",
        )
        .unwrap();
        let list = Blocklist::load(Some(&path)).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.blocks("evil.example"));
        assert!(list.blocks("login.EVIL.example."));
        assert!(list.blocks("x.bad.test"));
        assert!(list.blocks("xn--bcher-kva.example"));
        assert!(!list.blocks("notevil.example"));
        assert!(!list.blocks("example"));
        std::fs::write(&path, "other.example\n").unwrap();
        list.reload();
        assert!(!list.blocks("evil.example"));
        assert!(list.blocks("other.example"));
        assert!(!Blocklist::load(None).unwrap().blocks("evil.example"));
        assert!(Blocklist::load(Some(&dir.path().join("missing"))).is_err());
    }
}
