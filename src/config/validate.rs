//! The semantic checks of a whole config: each section's own `check()`
//! (in the module that owns it) reports key paths and messages, and this
//! maps them to `file:line:column`; [`validate`] adds the peers file.

use std::path::{Path, PathBuf};

use super::locator::Locator;
use super::{
    check_peers_against_config, load_peers, parse_config_str, read_file, Config, ConfigError,
    ConfigErrors, NodeSection,
};
use crate::peers::PeersFile;

/// Loads and checks the config and its peers file, reporting every error
/// found in either. `peers_override` (e.g. `--peers`) replaces
/// `node.peers_file` and is used as given, i.e. relative to the working
/// directory.
pub fn validate(
    config_path: &Path,
    peers_override: Option<&Path>,
) -> Result<(Config, PeersFile), ConfigErrors> {
    let config_text = read_file(config_path);
    let config = match &config_text {
        Ok(text) => parse_config_str(text, config_path),
        Err(e) => Err(e.clone()),
    };

    let peers_path = match (peers_override, &config) {
        (Some(p), _) => p.to_path_buf(),
        (None, Ok(c)) => c.resolved_peers_file(),
        // The config is broken but may still name its peers file; checking
        // that file now saves the operator another round.
        (None, Err(_)) => {
            let named = config_text
                .as_ref()
                .ok()
                .and_then(|t| peers_file_from_broken_config(t));
            Config {
                node: NodeSection {
                    peers_file: named.unwrap_or_else(super::node::default_peers_file),
                    ..NodeSection::default()
                },
                source: Some(config_path.to_path_buf()),
                ..Config::default()
            }
            .resolved_peers_file()
        }
    };
    let peers = load_peers(&peers_path);

    match (config, peers) {
        (Ok(c), Ok(p)) => {
            let errors = check_peers_against_config(&c, &p, &peers_path);
            if errors.is_empty() {
                Ok((c, p))
            } else {
                Err(ConfigErrors(errors))
            }
        }
        (c, p) => {
            let mut errors = Vec::new();
            if let Err(e) = c {
                errors.extend(e.0);
            }
            if let Err(e) = p {
                errors.extend(e.0);
            }
            Err(ConfigErrors(errors))
        }
    }
}

fn peers_file_from_broken_config(text: &str) -> Option<PathBuf> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let name = value.get("node")?.get("peers_file")?.as_str()?;
    Some(PathBuf::from(name))
}

/// Every semantic problem of `c`, read from `text` in `file`.
pub(super) fn check_config(c: &Config, text: &str, file: &Path) -> Vec<ConfigError> {
    let loc = Locator::new(text);
    let mut errors = Vec::new();
    // `section` is a dotted path (`network.tls`), `key` one below it or
    // empty for the section itself; the message names both.
    let mut report = |section: &str, key: &str, msg: String| {
        let (path, named) = if key.is_empty() {
            (section.to_owned(), section.to_owned())
        } else {
            (format!("{section}.{key}"), format!("{section}.{key}"))
        };
        errors.push(ConfigError::new(
            file,
            loc.path(&path),
            format!("{named}: {msg}"),
        ));
    };

    c.node.check(&mut |k, m| report("node", k, m));
    c.network.check(&mut |k, m| report("network", k, m));
    if let Some(tls) = &c.network.tls {
        tls.check(c.node.port, &mut |m| report("network.tls", "", m));
    }
    c.http.check(&mut |k, m| report("http", k, m));
    c.pipeline.check(&mut |k, m| report("pipeline", k, m));
    if let Err(m) = c.dvh.validate() {
        // The settings name the key in their message: point at its line
        // instead.
        match m.strip_prefix("dvh.interpolate_between_planes: ") {
            Some(why) => report("dvh", "interpolate_between_planes", why.to_owned()),
            None => report("dvh", "constraints", m),
        }
    }
    // Model files are relative to the config file's directory.
    let base = c.base_dir();
    for (key, m) in c.segmentation.check(&base) {
        report("segmentation", key, m);
    }
    for (key, m) in c.radiomics.check(&base) {
        report("radiomics", key, m);
    }
    for (key, m) in c.report.check() {
        report("report", key, m);
    }
    c.export.check(&mut |k, m| report("export", k, m));
    crate::export::settings::check_routing(&c.routing, &mut |k, m| report("routing", k, m));
    c.storage.check(&mut |k, m| report("storage", k, m));
    c.logging.check(&mut |k, m| report("logging", k, m));
    errors
}
