//! The architecture rules of issue #15, checked on `src/` as it is:
//!
//! - no dependency cycle among the crate's top-level modules, over `use` and
//!   path edges (`crate::x`, `use crate::{x, y}`, `super::` chains that reach
//!   the crate root), test code left out;
//! - no file under `src/` over 700 lines, its test code left out;
//! - the engines (`dvh`, `radiomics`, `segmentation`, `report`, `rt`) exist
//!   as top-level modules and never import `stages`; nothing but `demo`
//!   imports the test-data module `synth` (and the binary, whose
//!   `rtnode synth` command writes test data).
//!
//! How sources are read (comments and literals blanked, `#[cfg(test)]` items
//! skipped) is in `checker.rs`, whose own tests run on small in-memory
//! sources. `cargo test --test architecture -- --nocapture` prints where the
//! code stands.

mod checker;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use checker::{cycles, describe_cycles, scan, FileFacts, Graph};

/// The most lines a file under `src/` may hold outside its test code.
const MAX_LINES: usize = 700;

/// Pure engines: no stage code in them.
const ENGINES: [&str; 5] = ["dvh", "radiomics", "segmentation", "report", "rt"];

/// Top-level modules that may use `synth` besides `synth` itself: the demo,
/// which synthesises its course.
const SYNTH_USERS: [&str; 1] = ["demo"];

/// One scanned file of `src/`.
struct SourceFile {
    /// Relative to the repository, e.g. `src/stages/dvh/mod.rs`.
    name: String,
    /// The module path inside its crate; empty for `lib.rs` and `main.rs`.
    module_path: Vec<String>,
    /// Part of the binary (`main.rs` and the modules it declares), not of
    /// the library.
    binary: bool,
    facts: FileFacts,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file from its place under `src/`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    parts
}

/// Every file of `src/`, scanned, without the files that are test code.
fn sources() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("reading src/lib.rs");
    let top = top_modules(&lib);
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    // The binary's own modules: those `main.rs` declares (`mod cli;`).
    let main_text = std::fs::read_to_string(src.join("main.rs")).unwrap_or_default();
    let binary_modules: Vec<String> = main_text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect();
    let mut files: Vec<SourceFile> = paths
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src/");
            let text = std::fs::read_to_string(p)
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            let module_path = module_path(rel);
            let binary = rel == Path::new("main.rs")
                || rel.starts_with("bin")
                || binary_modules
                    .iter()
                    .any(|m| rel.starts_with(m) || rel == Path::new(&format!("{m}.rs")));
            SourceFile {
                name: format!("src/{}", rel.display()),
                facts: scan(&text, &module_path, "rtnode", &top),
                module_path,
                binary,
            }
        })
        .collect();
    // `#[cfg(test)] mod x;` makes x's file, and every file under it, test code.
    let test_modules: Vec<(bool, Vec<String>)> = files
        .iter()
        .flat_map(|f| {
            f.facts.test_children.iter().map(|c| {
                let mut p = f.module_path.clone();
                p.push(c.clone());
                (f.binary, p)
            })
        })
        .collect();
    files.retain(|f| {
        !f.facts.all_test
            && !test_modules
                .iter()
                .any(|(binary, p)| *binary == f.binary && f.module_path.starts_with(p))
    });
    files
}

/// The modules `lib.rs` declares (`mod x;`, `pub mod x;`), test ones aside.
fn top_modules(lib: &str) -> BTreeSet<String> {
    scan(lib, &[], "rtnode", &BTreeSet::new())
        .children
        .into_iter()
        .collect()
}

/// The top-level module graph of the library: an edge for each module
/// another one refers to, with the first place it does.
fn graph(files: &[SourceFile]) -> Graph {
    let mut g = Graph::new();
    for f in files.iter().filter(|f| !f.binary) {
        let Some(from) = f.module_path.first() else {
            continue;
        };
        let edges = g.entry(from.clone()).or_default();
        for r in &f.facts.refs {
            if &r.module != from {
                edges
                    .entry(r.module.clone())
                    .or_insert_with(|| format!("{}:{}", f.name, r.line));
            }
        }
    }
    g
}

#[test]
fn no_cycle_among_top_level_modules() {
    let files = sources();
    let g = graph(&files);
    let found = cycles(&g);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            let each = describe_cycles(&g, c).join("\n    ");
            format!("  {{{}}}:\n    {each}", c.join(", "))
        })
        .collect();
    println!(
        "{} cycle(s) among src/'s top-level modules:\n{}",
        found.len(),
        text.join("\n")
    );
    assert!(
        found.is_empty(),
        "cycles among src/'s top-level modules:\n{}",
        text.join("\n")
    );
}

#[test]
fn no_file_over_700_lines() {
    let files = sources();
    let mut over: Vec<(usize, &str)> = files
        .iter()
        .filter(|f| f.facts.code_lines > MAX_LINES)
        .map(|f| (f.facts.code_lines, f.name.as_str()))
        .collect();
    over.sort_by(|a, b| b.cmp(a));
    let text: Vec<String> = over
        .iter()
        .map(|(n, name)| format!("  {name}: {n} lines"))
        .collect();
    println!(
        "{} file(s) over {MAX_LINES} lines outside tests:\n{}",
        over.len(),
        text.join("\n")
    );
    assert!(
        over.is_empty(),
        "files over {MAX_LINES} lines outside tests:\n{}",
        text.join("\n")
    );
}

#[test]
fn engines_apart_from_stages_and_synth_for_tests_only() {
    let files = sources();
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("reading src/lib.rs");
    let top = top_modules(&lib);
    let mut wrong = Vec::new();
    for engine in ENGINES {
        if !top.contains(engine) {
            wrong.push(format!("  engine `{engine}` is not a top-level module"));
        }
    }
    for f in files.iter().filter(|f| !f.binary) {
        let from = f.module_path.first().map(String::as_str).unwrap_or("");
        for r in &f.facts.refs {
            if r.module == "stages" && ENGINES.contains(&from) {
                wrong.push(format!(
                    "  {}:{}: engine `{from}` imports `stages`",
                    f.name, r.line
                ));
            }
            if r.module == "synth" && from != "synth" && !SYNTH_USERS.contains(&from) {
                wrong.push(format!(
                    "  {}:{}: `{from}` imports the test-data module `synth`",
                    f.name, r.line
                ));
            }
        }
    }
    println!(
        "{} place(s) against the engine/synth rules:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "against the engine/synth rules:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn module_paths_follow_the_file_layout() {
    let p = |s: &str| module_path(Path::new(s));
    assert_eq!(p("lib.rs"), Vec::<String>::new());
    assert_eq!(p("main.rs"), Vec::<String>::new());
    assert_eq!(p("config.rs"), ["config"]);
    assert_eq!(p("stages/mod.rs"), ["stages"]);
    assert_eq!(p("stages/dvh/select.rs"), ["stages", "dvh", "select"]);
}
