//! Bearer tokens of the HTTP API: a YAML file of SHA-256 hashes, each with
//! a name (the audit trail's `user`), a role and optionally the AE title
//! that stands for the client. Tokens themselves are never stored.
//!
//! ```yaml
//! tokens:
//!   - name: physics-dashboard
//!     sha256: 3f0c…            # of the whole token text, lowercase hex
//!     role: read               # read | operator
//!     ae_title: PHYSICS        # optional
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do: `read` sees everything, `operator` also acts
/// (retries dead letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only access to the API.
    Read,
    /// Read access and actions such as retrying dead letters.
    Operator,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Operator => "operator",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "read" => Ok(Role::Read),
            "operator" => Ok(Role::Operator),
            _ => Err(format!("{s:?} is not a role (read or operator)")),
        }
    }
}

/// One API token as stored in the tokens file: a name, the token's hash (never the token), a role.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds the token; recorded as the user in the audit trail. Unique in the file.
    pub name: String,
    /// SHA-256 of the token, 64 lowercase hex digits.
    pub sha256: String,
    /// What the token may do.
    pub role: Role,
    /// AE title the token stands for, recorded as the calling AE of its audit events; None if not tied to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ae_title: Option<String>,
}

/// The tokens file (`http.tokens_file`, YAML): who may call the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// Every accepted token; empty: no request authenticates.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// Why the tokens file was refused; the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file could not be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        /// The file's path.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid YAML or breaks a rule (duplicate name, bad hash, bad AE title).
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file's path.
        path: String,
        /// The line of the problem, 1-based (1 when it cannot be placed).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Lowercase hex SHA-256 of a token's text.
pub fn hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A new random token (256 bits, hex, `rtn_` prefixed so it is recognisable
/// in a leaked log or paste).
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut s = String::from("rtn_");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl TokensFile {
    /// Reads and checks the tokens file at `path`.
    pub fn load(path: &Path) -> Result<TokensFile, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks: hashes are 64 hex digits, names are non-empty and
    /// unique, AE titles valid. Errors name the file and line.
    pub fn parse(text: &str, path: &Path) -> Result<TokensFile, TokensError> {
        let invalid = |line: usize, message: String| TokensError::Invalid {
            path: path.display().to_string(),
            line,
            message,
        };
        let f: TokensFile = serde_yaml_ng::from_str(text)
            .map_err(|e| invalid(e.location().map(|l| l.line()).unwrap_or(1), e.to_string()))?;
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .unwrap_or(1)
        };
        let mut seen = std::collections::HashSet::new();
        for t in &f.tokens {
            if t.name.trim().is_empty() {
                return Err(invalid(line_of(&t.sha256), "a token without a name".into()));
            }
            if !seen.insert(t.name.as_str()) {
                return Err(invalid(
                    line_of(&t.name),
                    format!("the name {:?} is given twice", t.name),
                ));
            }
            let h = t.sha256.trim();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    line_of(&t.name),
                    format!(
                        "token {:?}: sha256 must be 64 hex digits (the hash, not the token)",
                        t.name
                    ),
                ));
            }
            if let Some(ae) = &t.ae_title {
                crate::peers::check_ae_title(ae)
                    .map_err(|m| invalid(line_of(&t.name), format!("token {:?}: {m}", t.name)))?;
            }
        }
        Ok(f)
    }

    /// The entry whose hash matches `token`, compared in constant time.
    pub fn find(&self, token: &str) -> Option<&TokenEntry> {
        let h = hash(token);
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(
                t.sha256.trim().to_ascii_lowercase().as_bytes(),
                h.as_bytes(),
            ) {
                found = Some(t);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The line `rtnode http-token` prints for the tokens file.
pub fn entry_line(name: &str, role: Role, ae_title: Option<&str>, token: &str) -> String {
    let mut line = format!(
        "  - {{name: {}, sha256: {}, role: {role}",
        serde_json::to_string(name).unwrap_or_default(),
        hash(token)
    );
    if let Some(ae) = ae_title {
        line.push_str(&format!(
            ", ae_title: {}",
            serde_json::to_string(ae).unwrap_or_default()
        ));
    }
    line.push('}');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_matches_its_printed_line_and_nothing_else() {
        let t = generate();
        assert!(t.starts_with("rtn_") && t.len() == 68, "{t}");
        let text = format!(
            "tokens:\n{}\n",
            entry_line("ops", Role::Operator, Some("OPS"), &t)
        );
        let f = TokensFile::parse(&text, Path::new("t.yaml")).unwrap();
        let e = f.find(&t).expect("the token is found");
        assert_eq!((e.name.as_str(), e.role), ("ops", Role::Operator));
        assert_eq!(e.ae_title.as_deref(), Some("OPS"));
        assert!(f.find(&generate()).is_none());
        assert!(
            f.find(&e.sha256.clone()).is_none(),
            "the hash is not a token"
        );
    }

    #[test]
    fn bad_entries_are_refused_with_their_line() {
        let p = Path::new("t.yaml");
        let e = TokensFile::parse("tokens:\n  - {name: a, sha256: abc, role: read}\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.yaml:2:") && e.contains("64 hex"), "{e}");
        let h = hash("x");
        let e = TokensFile::parse(
            &format!("tokens:\n  - {{name: a, sha256: {h}, role: admin}}\n"),
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.yaml:2"), "{e}");
        let e = TokensFile::parse(
            &format!(
                "tokens:\n  - {{name: a, sha256: {h}, role: read}}\n  - {{name: a, sha256: {h}, role: read}}\n"
            ),
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("twice"), "{e}");
        let e = TokensFile::parse("tokns: []\n", p).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
