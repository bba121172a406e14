//! The `node:` section: who this node is (AE title), where it listens,
//! where its data and its peers file are. It belongs to the node as a
//! whole, above every module that serves it, so it stays with the config.

use std::net::{AddrParseError, IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

fn default_ae_title() -> String {
    "RTNODE".to_owned()
}
fn default_bind() -> String {
    "0.0.0.0".to_owned()
}
fn default_port() -> u16 {
    11112
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/rtnode")
}
pub(crate) fn default_peers_file() -> PathBuf {
    // Relative to the config file's directory: from the shipped
    // conf/rtnode.yaml this is the repository root's ae-titles.yaml.
    PathBuf::from("../ae-titles.yaml")
}

/// The `node:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The node's AE title (default `RTNODE`).
    #[serde(default = "default_ae_title")]
    pub ae_title: String,
    /// Kept as text so that a bad address is reported together with every
    /// other semantic error instead of aborting the parse; see
    /// [`NodeSection::bind_ip`].
    #[serde(default = "default_bind")]
    pub bind: String,
    /// TCP port of the plaintext DICOM listener (default 11112; 0: any free port).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Data directory: store, index, state database, course results (default `/var/lib/rtnode`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// As written in the file; use [`super::Config::resolved_peers_file`].
    #[serde(default = "default_peers_file")]
    pub peers_file: PathBuf,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            ae_title: default_ae_title(),
            bind: default_bind(),
            port: default_port(),
            data_dir: default_data_dir(),
            peers_file: default_peers_file(),
        }
    }
}

impl NodeSection {
    /// `bind` as an address.
    pub fn bind_ip(&self) -> Result<IpAddr, AddrParseError> {
        self.bind.trim().parse()
    }

    /// The address the SCP listens on.
    pub fn listen_addr(&self) -> Result<SocketAddr, AddrParseError> {
        Ok(SocketAddr::new(self.bind_ip()?, self.port))
    }

    /// Unix socket used by `rtnode status` (only when
    /// `network.admin_socket` is on).
    pub fn admin_socket_path(&self) -> PathBuf {
        self.data_dir.join("admin.sock")
    }

    /// Every problem of the section, as (key under `node`, message).
    pub fn check(&self, err: &mut impl FnMut(&str, String)) {
        if let Err(m) = crate::peers::check_ae_title(&self.ae_title) {
            err("ae_title", m);
        }
        if self.bind_ip().is_err() {
            err(
                "bind",
                format!(
                    "{:?} is not an IP address (0.0.0.0 listens on all IPv4 interfaces, :: on all IPv6)",
                    self.bind
                ),
            );
        }
        // Port 0 is allowed: the kernel picks a free port, which the node
        // writes to <data_dir>/node.json (tests and `rtnode demo` rely on it).
        if self.data_dir.as_os_str().is_empty() {
            err("data_dir", "must not be empty".to_owned());
        }
        if self.peers_file.as_os_str().is_empty() {
            err("peers_file", "must not be empty".to_owned());
        }
    }
}
