//! The admin socket: how `rtnode status`, `retry`, `purge`, `backup`,
//! `export` and `restore` reach a running node.
//!
//! redb lets only one process open a database, so while `serve` runs the
//! commands ask it, over a Unix socket in the data directory that only the
//! service's user can open; when none answers they open the databases
//! themselves. [`protocol`] holds the typed, length-framed messages,
//! [`server`] answers them in the node (dispatching to `status`,
//! `retention`, `backup`, `cohort` and the outbound queue), and [`client`]
//! is the one "ask the server, else open the databases" the commands use.
//! The modules it dispatches to know nothing of the socket.

pub mod client;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

/// The admin socket of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

#[cfg(test)]
mod tests;
