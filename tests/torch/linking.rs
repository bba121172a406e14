//! The built binary itself (feature `torch`): it must start without
//! LD_LIBRARY_PATH (a RUNPATH or RPATH into libtorch's lib directory) and,
//! where the libtorch it was built against can run CUDA, it must keep
//! libtorch_cuda.so as NEEDED — rustc links with `--as-needed`, which
//! otherwise drops it and leaves a "CUDA build" that never sees a GPU.
#![cfg(feature = "torch")]

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rtnode");

fn dynamic_section(bin: &str) -> String {
    let out = Command::new("readelf")
        .args(["-d", bin])
        .output()
        .expect("readelf (binutils) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Values of the dynamic entries of `kind` ("NEEDED", "RUNPATH", "RPATH").
fn entries(dynamic: &str, kind: &str) -> Vec<String> {
    dynamic
        .lines()
        .filter(|l| l.contains(&format!("({kind})")))
        .filter_map(|l| {
            let v = l.split_once('[')?.1;
            Some(v.trim_end().trim_end_matches(']').to_string())
        })
        .collect()
}

/// libtorch's lib directory, found on our own: the directory of the
/// libtorch_cpu.so the binary resolves to (through its runpath alone).
fn resolved_libtorch_dir() -> PathBuf {
    let out = Command::new("ldd")
        .arg(BIN)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("ldd runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("libtorch_cpu.so"))
        .unwrap_or_else(|| panic!("ldd does not list libtorch_cpu.so:\n{text}"));
    let path = line
        .split("=>")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("not found");
    assert_ne!(
        path, "not found",
        "the binary does not find libtorch without LD_LIBRARY_PATH:\n{text}"
    );
    Path::new(path)
        .parent()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()))
        .unwrap()
}

/// Whether every library libtorch_cuda.so needs is installed (a slim
/// wheel install has libtorch_cuda.so without the CUDA libraries).
fn cuda_loadable(lib: &Path) -> Option<bool> {
    let cuda = lib.join("libtorch_cuda.so");
    if !cuda.exists() {
        return None;
    }
    let out = Command::new("ldd").arg(&cuda).output().expect("ldd runs");
    Some(!String::from_utf8_lossy(&out.stdout).contains("not found"))
}

#[test]
fn the_binary_finds_libtorch_and_keeps_libtorch_cuda() {
    let dynamic = dynamic_section(BIN);
    let needed = entries(&dynamic, "NEEDED");
    let paths: Vec<String> = entries(&dynamic, "RUNPATH")
        .into_iter()
        .chain(entries(&dynamic, "RPATH"))
        .flat_map(|p| p.split(':').map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(
        needed.iter().any(|n| n == "libtorch_cpu.so"),
        "NEEDED: {needed:?}"
    );
    let lib = resolved_libtorch_dir();
    assert!(
        paths
            .iter()
            .any(|p| Path::new(p).canonicalize().ok().as_deref() == Some(lib.as_path())),
        "no RUNPATH/RPATH into {} in {paths:?}",
        lib.display()
    );
    match cuda_loadable(&lib) {
        Some(true) => assert!(
            needed.iter().any(|n| n == "libtorch_cuda.so"),
            "{} has a loadable libtorch_cuda.so but the binary does not need it: NEEDED {needed:?}",
            lib.display()
        ),
        Some(false) => {
            // Linking it would make a binary that cannot start; the build
            // script says so in a warning and in `rtnode doctor`.
            assert!(!needed.iter().any(|n| n == "libtorch_cuda.so"));
            eprintln!("libtorch_cuda.so's CUDA libraries are not installed: a CPU-only build");
        }
        None => eprintln!("{} has no libtorch_cuda.so: a CPU libtorch", lib.display()),
    }
    // And it starts, with no help from the environment.
    let out = Command::new(BIN)
        .arg("--version")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
