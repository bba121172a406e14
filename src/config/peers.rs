//! Loading and checking the peers file (`ae-titles.yaml`): each entry's
//! own checks are [`crate::peers::Peer::problems`]; what needs the whole
//! file (duplicate titles) or the node's config (a CA for TLS peers) and
//! the positions of the problems are here.

use std::collections::HashMap;
use std::path::Path;

use super::locator::Locator;
use super::{parse_yaml, read_file, resolve_relative, Config, ConfigError, ConfigErrors};
use crate::peers::PeersFile;

impl PeersFile {
    /// Same as [`load_peers`].
    pub fn load(path: &Path) -> Result<PeersFile, ConfigErrors> {
        load_peers(path)
    }
}

/// Reads and checks a peers file.
pub fn load_peers(path: &Path) -> Result<PeersFile, ConfigErrors> {
    let text = read_file(path)?;
    parse_peers_str(&text, path)
}

/// Parses and checks a peers file held in memory.
pub fn parse_peers_str(text: &str, file: &Path) -> Result<PeersFile, ConfigErrors> {
    let mut peers: PeersFile = parse_yaml(text, file)?;
    for p in &mut peers.peers {
        if let Some(ca) = &mut p.tls_ca {
            *ca = resolve_relative(file, ca);
        }
    }
    let errors = check_peers(&peers, text, file);
    if errors.is_empty() {
        Ok(peers)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn check_peers(p: &PeersFile, text: &str, file: &Path) -> Vec<ConfigError> {
    let loc = Locator::new(text);
    let mut errors = Vec::new();
    // Trimmed title -> (index, line) of its first definition.
    let mut seen: HashMap<&str, (usize, Option<usize>)> = HashMap::new();

    for (i, peer) in p.peers.iter().enumerate() {
        let mut err = |key: &str, msg: String| {
            errors.push(ConfigError::new(
                file,
                loc.peer_key(i, key),
                format!("peers[{i}].{key}: {msg}"),
            ));
        };
        let problems = peer.problems();
        let (title, other): (Vec<_>, Vec<_>) = problems
            .into_iter()
            .partition(|(key, _)| *key == "ae_title");
        let title_ok = title.is_empty();
        for (key, m) in title {
            err(key, m);
        }
        if title_ok {
            let line = loc.peer_key(i, "ae_title").map(|p| p.line);
            if let Some((first, first_line)) = seen.get(peer.ae_title.trim()) {
                let at = match first_line {
                    Some(l) => format!("line {l}"),
                    None => format!("peers[{first}]"),
                };
                err(
                    "ae_title",
                    format!(
                        "duplicate AE title {:?} (first defined at {at})",
                        peer.ae_title.trim()
                    ),
                );
            } else {
                seen.insert(peer.ae_title.trim(), (i, line));
            }
        }
        for (key, m) in other {
            err(key, m);
        }
    }
    errors
}

/// What neither file shows alone: a `tls: true` peer needs a CA to verify
/// it, its own or the node's.
pub fn check_peers_against_config(
    c: &Config,
    p: &PeersFile,
    peers_path: &Path,
) -> Vec<ConfigError> {
    let text = std::fs::read_to_string(peers_path).unwrap_or_default();
    let loc = Locator::new(&text);
    let node_ca = c.network.tls.as_ref().and_then(|t| t.ca.as_ref());
    p.peers
        .iter()
        .enumerate()
        .filter(|(_, peer)| peer.tls && peer.tls_ca.is_none() && node_ca.is_none())
        .map(|(i, _)| {
            ConfigError::new(
                peers_path,
                loc.peer_key(i, "tls"),
                format!(
                    "peers[{i}].tls: no CA to verify this peer with: give it tls_ca, or set network.tls.ca"
                ),
            )
        })
        .collect()
}
