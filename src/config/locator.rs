//! Positions of keys in block-style YAML, for error messages: serde gives
//! positions for parse errors only, so the semantic checks' key paths are
//! mapped back to `line:column` here.

/// A 1-based position in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// Finds the line of a key in block-style YAML.
///
/// `serde_yaml_ng::Value` carries no spans, so semantic errors (found after
/// deserializing) are mapped back to the source by indentation alone. This
/// understands only the shapes our two files use: top-level sections holding
/// `key: value` lines, and a top-level `peers:` sequence of mappings. For
/// anything fancier (flow style, anchors) it falls back to the enclosing
/// item or section, or gives up, which merely drops the line number.
pub(crate) struct Locator<'a> {
    /// (0-based line number, indentation, text after the indentation) for
    /// every line that carries YAML content.
    lines: Vec<(usize, usize, &'a str)>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let lines = text
            .lines()
            .enumerate()
            .filter_map(|(n, raw)| {
                let content = raw.trim_start_matches(' ');
                let indent = raw.len() - content.len();
                let trimmed = content.trim_end();
                let is_noise = trimmed.is_empty()
                    || trimmed.starts_with('#')
                    || trimmed == "---"
                    || trimmed == "...";
                (!is_noise).then_some((n, indent, content))
            })
            .collect();
        Locator { lines }
    }

    pub(crate) fn pos(&self, idx: usize, extra_column: usize) -> Pos {
        let (n, indent, _) = self.lines[idx];
        Pos {
            line: n + 1,
            column: indent + extra_column + 1,
        }
    }

    /// Index just past the block that starts after `idx` and is indented
    /// deeper than `indent`.
    fn block_end(&self, idx: usize, indent: usize) -> usize {
        self.lines[idx + 1..]
            .iter()
            .position(|&(_, i, _)| i <= indent)
            .map_or(self.lines.len(), |p| idx + 1 + p)
    }

    /// First line in `range` at exactly `indent` that is `key:`.
    fn find_key(&self, range: std::ops::Range<usize>, indent: usize, key: &str) -> Option<usize> {
        range
            .into_iter()
            .find(|&i| self.lines[i].1 == indent && is_key(self.lines[i].2, key))
    }

    pub(crate) fn top_level(&self, key: &str) -> Option<usize> {
        self.find_key(0..self.lines.len(), 0, key)
    }

    /// Position of `key` inside top-level `section`, else of `section`.
    #[cfg(test)]
    pub(crate) fn section_key(&self, section: &str, key: &str) -> Option<Pos> {
        self.path(&format!("{section}.{key}"))
    }

    /// Position of the dotted `path` (`pipeline.stages.dvh.workers`): of
    /// its deepest key found in block style, else of the enclosing
    /// section. Keys in flow style (`dvh: {workers: 1}`) are not looked
    /// into; the key holding them is the answer then.
    pub(crate) fn path(&self, path: &str) -> Option<Pos> {
        let mut keys = path.split('.');
        let mut at = self.top_level(keys.next()?)?;
        for key in keys {
            let end = self.block_end(at, self.lines[at].1);
            if at + 1 >= end {
                break;
            }
            match self.find_key(at + 1..end, self.lines[at + 1].1, key) {
                Some(i) => at = i,
                None => break,
            }
        }
        Some(self.pos(at, 0))
    }

    /// Position of `key` inside item `index` of the top-level `peers:`
    /// sequence, else of the item, else of `peers:`.
    pub(crate) fn peer_key(&self, index: usize, key: &str) -> Option<Pos> {
        let sec = self.top_level("peers")?;
        let fallback = Some(self.pos(sec, 0));
        // YAML lets the dashes sit at the same indentation as `peers:`, so
        // the sequence ends at the next top-level line that is not an item.
        let end = (sec + 1..self.lines.len())
            .find(|&i| self.lines[i].1 == 0 && dash_rest(self.lines[i].2).is_none())
            .unwrap_or(self.lines.len());
        let Some(&(_, dash_indent, _)) = self.lines.get(sec + 1).filter(|_| sec + 1 < end) else {
            return fallback;
        };
        let items: Vec<usize> = (sec + 1..end)
            .filter(|&i| self.lines[i].1 == dash_indent && dash_rest(self.lines[i].2).is_some())
            .collect();
        let Some(&item) = items.get(index) else {
            return fallback;
        };
        let item_end = items.get(index + 1).copied().unwrap_or(end);

        // `- key: value` puts the first key on the dash line itself.
        let (rest_offset, rest) = dash_rest(self.lines[item].2).unwrap_or((0, ""));
        if !rest.is_empty() && is_key(rest, key) {
            return Some(self.pos(item, rest_offset));
        }
        let key_indent = if rest.is_empty() {
            match self.lines.get(item + 1).filter(|_| item + 1 < item_end) {
                Some(&(_, i, _)) => i,
                None => return Some(self.pos(item, 0)),
            }
        } else {
            dash_indent + rest_offset
        };
        Some(match self.find_key(item + 1..item_end, key_indent, key) {
            Some(i) => self.pos(i, 0),
            None => self.pos(item, 0),
        })
    }
}

/// For a sequence item line (`-`, `- x`), the offset and text after the dash.
fn dash_rest(content: &str) -> Option<(usize, &str)> {
    let after = content.strip_prefix('-')?;
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    let rest = after.trim_start_matches(' ');
    let rest_trimmed = rest.trim_end();
    let rest = if rest_trimmed.starts_with('#') {
        ""
    } else {
        rest
    };
    Some((content.len() - rest.len(), rest))
}

/// Whether `content` starts with the mapping key `key` (plain or quoted).
pub(crate) fn is_key(content: &str, key: &str) -> bool {
    let after = content
        .strip_prefix(key)
        .or_else(|| {
            content
                .strip_prefix('"')?
                .strip_prefix(key)?
                .strip_prefix('"')
        })
        .or_else(|| {
            content
                .strip_prefix('\'')?
                .strip_prefix(key)?
                .strip_prefix('\'')
        });
    match after.and_then(|a| a.trim_start_matches(' ').strip_prefix(':')) {
        Some(value) => value.is_empty() || value.starts_with([' ', '\t']),
        None => false,
    }
}
