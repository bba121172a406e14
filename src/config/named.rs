//! Which config a command runs on: the file named with `--config`, else
//! [`DEFAULT_CONFIG_PATH`] when it exists, else the embedded defaults. A
//! file that was named and is missing is an error for every command, never
//! a silent fall-back to defaults (which would run with settings nobody
//! chose).

use std::path::Path;

use super::{load_config, Config, ConfigError, ConfigErrors, DEFAULT_CONFIG_PATH};

/// The config the user named, or the default file if present, else the
/// embedded defaults (`Config::default()`).
pub fn load_named_or_default(named: Option<&Path>) -> Result<Config, ConfigErrors> {
    match named {
        Some(path) => load_named(path),
        None => {
            let default = Path::new(DEFAULT_CONFIG_PATH);
            if default.exists() {
                load_config(default)
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// A config file the user named: a missing file is an error that says so.
pub fn load_named(path: &Path) -> Result<Config, ConfigErrors> {
    if !path.exists() {
        return Err(ConfigError::new(
            path,
            None,
            "config file not found (named with --config; without --config, \
             conf/rtnode.yaml or else the embedded defaults are used)",
        )
        .into());
    }
    load_config(path)
}
