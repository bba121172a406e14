//! A small reader of Rust sources, enough for the architecture rules: which
//! top-level modules a file refers to (`crate::x`, `use crate::{x, y}`,
//! `super::` chains that climb to the crate root, `$crate::x` in macros,
//! `rtnode::x` in the binary), and how many lines a file holds outside its
//! test code.
//!
//! Not a parser: comments and string/char literals are blanked first (so doc
//! comments, intra-doc links and log messages are not references), then the
//! tokens are scanned. Test code is left out by attribute: an item under
//! `#[cfg(test)]` or `#[cfg(all(test, ..))]` (usually `mod tests { .. }`) is
//! skipped from its attribute to the end of the item, a `#[cfg(test)] mod x;`
//! names a file that is test code as a whole, and a file starting with
//! `#![cfg(test)]` is test code as a whole.

use std::collections::{BTreeMap, BTreeSet};

/// One reference from a file to a top-level module of the crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The top-level module referred to.
    pub module: String,
    /// 1-based line of the reference in its file.
    pub line: usize,
}

/// What the scan of one file found.
#[derive(Debug, Default)]
pub struct FileFacts {
    /// References to top-level modules, test code left out.
    pub refs: Vec<Reference>,
    /// Lines outside test code.
    pub code_lines: usize,
    /// Child modules declared `mod name;` outside test code.
    pub children: Vec<String>,
    /// Child modules declared `#[cfg(test)] mod name;` (their files are test code).
    pub test_children: Vec<String>,
    /// The whole file is test code (`#![cfg(test)]`).
    pub all_test: bool,
}

/// The source with comments, string literals and char literals replaced by
/// spaces; newlines are kept so that line numbers stay right.
pub fn blank(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let push_blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && is_ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0usize;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    push_blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&c, i, prev_ident) {
            // r"..", r#".."#, br".." (the prefix letters included).
            let mut j = i;
            while c[j] != '"' {
                j += 1;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &c[i..j.min(c.len())] {
                push_blank(&mut out, ch);
            }
            i = j;
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    push_blank(&mut out, c[i]);
                    i += 1;
                }
                push_blank(&mut out, c[i]);
                i += 1;
            }
            if i < c.len() {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '\'' && c.get(i + 1) == Some(&'\\') {
            // '\n', '\'', '\u{1F600}': the escaped character, then up to the quote.
            out.push_str("   ");
            i += 3;
            while i < c.len() && c[i] != '\'' {
                i += 1;
                out.push(' ');
            }
            if i < c.len() {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            // 'a' (a lifetime 'a has no closing quote)
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The number of `#` of a raw string starting at `i`, if one does.
fn raw_string_start(c: &[char], i: usize, prev_ident: bool) -> Option<usize> {
    if prev_ident {
        return None;
    }
    let mut j = i;
    if c.get(j) == Some(&'b') || c.get(j) == Some(&'c') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some(hashes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    line: usize,
}

fn tokens(blanked: &str) -> Vec<Token> {
    let c: Vec<char> = blanked.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: c[start..i].iter().collect(),
                line,
            });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Whether the attribute whose `[` is at `open` is `cfg(test)` or
/// `cfg(all(test, ..))`; returns the index of its closing `]`.
fn attribute(t: &[Token], open: usize) -> (bool, usize) {
    let mut depth = 0usize;
    let mut j = open;
    while j < t.len() {
        match t[j].text.as_str() {
            "[" | "(" | "{" => depth += 1,
            "]" | ")" | "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        j += 1;
    }
    let inner: Vec<&str> = t[open + 1..j.min(t.len())]
        .iter()
        .map(|x| x.text.as_str())
        .collect();
    let test = matches!(inner.as_slice(), ["cfg", "(", "test", ")"])
        || matches!(inner.as_slice(), ["cfg", "(", "all", "(", "test", ",", ..]);
    (test, j)
}

/// The index of the last token of the item starting at `i`: the `;` that
/// ends it, or the `}` that closes its first top-level block.
fn item_end(t: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < t.len() {
        match t[i].text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" => depth = depth.saturating_sub(1),
            "}" => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            ";" if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    t.len().saturating_sub(1)
}

/// The top-level modules named by a `{a, b::c, self}` group whose `{` is at
/// `open`; returns them and the index of the closing `}`.
fn group(t: &[Token], open: usize) -> (Vec<(String, usize)>, usize) {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut j = open;
    let mut expect = false;
    while j < t.len() {
        match t[j].text.as_str() {
            "{" => {
                depth += 1;
                expect = depth == 1;
            }
            "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            "," if depth == 1 => expect = true,
            x if expect => {
                if is_ident(x) && x != "self" {
                    names.push((x.to_string(), t[j].line));
                }
                expect = false;
            }
            _ => {}
        }
        j += 1;
    }
    (names, j)
}

/// Scans one file. `module_path` is the file's module path inside its crate
/// (`[]` for `lib.rs`/`main.rs`, `["stages", "dvh"]` for
/// `src/stages/dvh/mod.rs`); `crate_name` is how the binary names the library
/// (`rtnode::x` counts as a reference to `x`). Only names in `top` count.
pub fn scan(
    src: &str,
    module_path: &[String],
    crate_name: &str,
    top: &BTreeSet<String>,
) -> FileFacts {
    let blanked = blank(src);
    let t = tokens(&blanked);
    let mut facts = FileFacts::default();
    let total_lines = src.lines().count();
    let mut test_lines: BTreeSet<usize> = BTreeSet::new();
    // Inline `mod x { .. }` blocks open at each brace depth.
    let mut braces: Vec<Option<String>> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let push_ref = |facts: &mut FileFacts, name: &str, line: usize| {
        if top.contains(name) {
            facts.refs.push(Reference {
                module: name.to_string(),
                line,
            });
        }
    };
    let mut i = 0;
    while i < t.len() {
        let tx = t[i].text.as_str();
        let next = |k: usize| t.get(i + k).map(|x| x.text.as_str());
        if tx == "#" && next(1) == Some("!") && next(2) == Some("[") {
            let (test, end) = attribute(&t, i + 2);
            if test && braces.is_empty() {
                facts.all_test = true;
                facts.code_lines = 0;
                facts.refs.clear();
                return facts;
            }
            i = end + 1;
            continue;
        }
        if tx == "#" && next(1) == Some("[") {
            let (test, mut end) = attribute(&t, i + 1);
            if test {
                // Further attributes, then the item.
                while t.get(end + 1).map(|x| x.text.as_str()) == Some("#") {
                    end = attribute(&t, end + 2).1;
                }
                let start = end + 1;
                let last = item_end(&t, start);
                let item: Vec<&str> = t[start..=last.min(t.len() - 1)]
                    .iter()
                    .map(|x| x.text.as_str())
                    .collect();
                let mod_at = item.iter().position(|x| *x == "mod");
                if let Some(m) = mod_at {
                    if item.last() == Some(&";") && m + 2 == item.len() - 1 {
                        facts.test_children.push(item[m + 1].to_string());
                    }
                }
                test_lines.extend(t[i].line..=t[last.min(t.len() - 1)].line);
                i = last + 1;
                continue;
            }
            i = end + 1;
            continue;
        }
        match tx {
            "mod" => {
                if let Some(name) = next(1).filter(|n| is_ident(n)) {
                    if next(2) == Some("{") {
                        pending_mod = Some(name.to_string());
                    } else if next(2) == Some(";") && braces.is_empty() {
                        facts.children.push(name.to_string());
                    }
                }
            }
            "{" => braces.push(pending_mod.take()),
            "}" => {
                braces.pop();
            }
            "crate" if next(1) == Some("::") => match next(2) {
                Some("{") => {
                    let (names, end) = group(&t, i + 2);
                    for (n, line) in names {
                        push_ref(&mut facts, &n, line);
                    }
                    i = end + 1;
                    continue;
                }
                Some(n) => push_ref(&mut facts, n, t[i].line),
                None => {}
            },
            x if x == crate_name && next(1) == Some("::") => {
                if let Some(n) = next(2) {
                    push_ref(&mut facts, n, t[i].line);
                }
            }
            "super" if i == 0 || t[i - 1].text != "::" => {
                let mut n = 0;
                let mut j = i;
                while t.get(j).map(|x| x.text.as_str()) == Some("super")
                    && t.get(j + 1).map(|x| x.text.as_str()) == Some("::")
                {
                    n += 1;
                    j += 2;
                }
                let depth = module_path.len() + braces.iter().filter(|b| b.is_some()).count();
                if n > 0 && n == depth {
                    match t.get(j).map(|x| x.text.as_str()) {
                        Some("{") => {
                            let (names, end) = group(&t, j);
                            for (m, line) in names {
                                push_ref(&mut facts, &m, line);
                            }
                            i = end + 1;
                            continue;
                        }
                        Some(m) => push_ref(&mut facts, m, t[i].line),
                        None => {}
                    }
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    facts.code_lines = total_lines - test_lines.iter().filter(|l| **l <= total_lines).count();
    facts
}

/// Edges between modules, each with where it comes from (for the message).
pub type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The strongly connected components with more than one module (each a
/// dependency cycle), found by Tarjan's algorithm; members sorted.
pub fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(next) = s.g.get(v) {
            for w in next.keys() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// The modules of a shortest cycle from `start` back to it, inside the
/// component; `[start, .., start]`.
fn shortest_cycle<'a>(g: &'a Graph, inside: &BTreeSet<&str>, start: &'a str) -> Vec<&'a str> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut closing = None;
    'search: while let Some(v) = queue.pop_front() {
        for w in g.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if w == start {
                closing = Some(v);
                break 'search;
            }
            if inside.contains(w) && !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut back = Vec::new();
    let mut v = closing.unwrap_or(start);
    while v != start {
        back.push(v);
        v = prev[v];
    }
    back.push(start);
    back.reverse();
    back.push(start);
    back
}

/// A shortest cycle through each module of a component (the same cycle
/// once), written `a -> b (where) -> a (where)`: each edge followed by the
/// first place that makes it.
pub fn describe_cycles(g: &Graph, component: &[String]) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for start in component {
        let path = shortest_cycle(g, &inside, start);
        // The same cycle from another start: rotate to its smallest module.
        let ring = &path[..path.len() - 1];
        let min = (0..ring.len()).min_by_key(|&i| ring[i]).unwrap_or(0);
        let canonical: Vec<&str> = ring[min..].iter().chain(&ring[..min]).copied().collect();
        if !seen.insert(canonical) {
            continue;
        }
        let mut s = start.clone();
        for pair in path.windows(2) {
            s.push_str(&format!(" -> {} ({})", pair[1], g[pair[0]][pair[1]]));
        }
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn modules(f: &FileFacts) -> Vec<&str> {
        f.refs.iter().map(|r| r.module.as_str()).collect()
    }

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), format!("{a}.rs"));
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn finds_paths_groups_and_super_chains() {
        let src = "use crate::config::Config;\n\
                   use crate::{store, tls::{self, Pki}, self};\n\
                   fn f() { crate::metrics::inc(); $crate::audit::log(); }\n\
                   mod inner { use super::super::status; }\n\
                   use super::sibling;\n";
        let f = scan(
            src,
            &path(&["stages"]),
            "rtnode",
            &top(&["config", "store", "tls", "metrics", "audit", "status"]),
        );
        assert_eq!(
            modules(&f),
            ["config", "store", "tls", "metrics", "audit", "status"]
        );
        assert_eq!(f.refs[1].line, 2);
        assert_eq!(f.refs[5].line, 4);
        // `super::sibling` from a top-level module is the crate root's `sibling`.
        let f = scan(
            "use super::{store, x};",
            &path(&["a"]),
            "rtnode",
            &top(&["store"]),
        );
        assert_eq!(modules(&f), ["store"]);
        // One level down, `super::x` stays inside the same top-level module.
        let f = scan(
            "use super::store;",
            &path(&["a", "b"]),
            "rtnode",
            &top(&["store"]),
        );
        assert!(f.refs.is_empty());
        // `pub(super)` is no path.
        let src = "pub(super) fn f() {}\nuse super::store;";
        let f = scan(src, &path(&["a"]), "rtnode", &top(&["store"]));
        assert_eq!(modules(&f), ["store"]);
    }

    #[test]
    fn ignores_comments_strings_and_unknown_names() {
        let src = "// use crate::config;\n\
                   /* crate::tls /* nested */ crate::tls */\n\
                   /// [`crate::store`]\n\
                   let s = \"crate::store\"; let r = r#\"crate::\"store\"#;\n\
                   let c = '\"'; let l: &'static str = \"x\"; let e = '\\'';\n\
                   pub(crate) fn f() -> crate::Result<()> { crate::real::go() }\n";
        let f = scan(
            src,
            &path(&["a"]),
            "rtnode",
            &top(&["config", "tls", "store", "real"]),
        );
        assert_eq!(modules(&f), ["real"]);
        assert_eq!(f.refs[0].line, 6);
    }

    #[test]
    fn leaves_test_code_out() {
        let src = "use crate::config;\n\
                   \n\
                   #[cfg(test)]\n\
                   mod tests {\n\
                       use crate::synth;\n\
                       #[test]\n\
                       fn t() { let v = vec![1, 2]; }\n\
                   }\n\
                   #[cfg(test)]\n\
                   #[allow(dead_code)]\n\
                   mod more;\n\
                   #[cfg(all(test, unix))]\n\
                   use crate::synth::Phantom;\n\
                   #[cfg(feature = \"torch\")]\n\
                   use crate::torch;\n";
        let f = scan(
            src,
            &path(&["a"]),
            "rtnode",
            &top(&["config", "synth", "torch"]),
        );
        assert_eq!(modules(&f), ["config", "torch"]);
        assert_eq!(f.test_children, ["more"]);
        assert!(f.children.is_empty());
        let lib = "//! mod fake;\npub mod audit;\nmod node;\n#[cfg(test)]\nmod testing;\npub mod z { mod inner; }";
        assert_eq!(
            scan(lib, &[], "rtnode", &top(&[])).children,
            ["audit", "node"]
        );
        assert_eq!(f.code_lines, 4, "lines 1, 2, 14, 15");
        let f = scan(
            "#![cfg(test)]\nuse crate::synth;\n",
            &path(&["a"]),
            "rtnode",
            &top(&["synth"]),
        );
        assert!(f.all_test && f.refs.is_empty() && f.code_lines == 0);
    }

    #[test]
    fn counts_lines_of_the_binary_and_its_library_paths() {
        let f = scan(
            "fn main() {\n    rtnode::synth::go();\n}\n",
            &[],
            "rtnode",
            &top(&["synth"]),
        );
        assert_eq!(modules(&f), ["synth"]);
        assert_eq!(f.code_lines, 3);
        assert_eq!(scan("", &[], "rtnode", &top(&[])).code_lines, 0);
    }

    #[test]
    fn finds_cycles_and_names_their_edges() {
        let g = graph(&[
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("c", "d"),
            ("d", "e"),
            ("e", "d"),
            ("f", "a"),
        ]);
        assert_eq!(cycles(&g), [path(&["a", "b", "c"]), path(&["d", "e"])]);
        assert_eq!(
            describe_cycles(&g, &path(&["a", "b", "c"])),
            ["a -> b (a.rs) -> c (b.rs) -> a (c.rs)"]
        );
        assert_eq!(
            describe_cycles(&g, &path(&["d", "e"])),
            ["d -> e (d.rs) -> d (e.rs)"]
        );
        // Two cycles through `a` in one component: each shown once.
        let g = graph(&[("a", "b"), ("b", "a"), ("a", "c"), ("c", "d"), ("d", "a")]);
        assert_eq!(cycles(&g), [path(&["a", "b", "c", "d"])]);
        assert_eq!(
            describe_cycles(&g, &path(&["a", "b", "c", "d"])),
            [
                "a -> b (a.rs) -> a (b.rs)",
                "c -> d (c.rs) -> a (d.rs) -> c (a.rs)"
            ]
        );
    }

    #[test]
    fn finds_no_cycle_in_a_dag() {
        let g = graph(&[("a", "b"), ("b", "c"), ("a", "c"), ("d", "a")]);
        assert!(cycles(&g).is_empty());
        assert!(cycles(&Graph::new()).is_empty());
    }
}
