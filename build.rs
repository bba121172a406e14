//! Linking for the `torch` feature; nothing happens without it.
//!
//! torch-sys links libtorch but leaves two gaps that make a "CUDA build"
//! fail quietly:
//! - no rpath: the binary finds libtorch only through LD_LIBRARY_PATH, so
//!   a service started by systemd does not start at all;
//! - rustc links with `--as-needed`, and nothing calls into
//!   libtorch_cuda.so directly (its kernels register themselves when it is
//!   loaded), so the linker drops it and the binary never sees a GPU.
//!
//! torch-sys (`links = "tch"`) publishes its libtorch lib directory as
//! DEP_TCH_LIBTORCH_LIB to the build scripts of crates that depend on it
//! directly, which is why rtnode names torch-sys as a dependency.

use std::env;
use std::path::Path;
use std::process::Command;

/// The libtorch tch 0.26 is written against.
const EXPECTED_LIBTORCH: &str = "2.13.";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        // torch-sys always sets it on Linux; a build without it has no
        // libtorch to point at, and the compile-time constants say so.
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: no rpath into libtorch");
        println!("cargo:rustc-env=RTNODE_LIBTORCH_LIB=unknown");
        println!("cargo:rustc-env=RTNODE_LIBTORCH_VERSION=unknown");
        println!("cargo:rustc-env=RTNODE_TORCH_CUDA_LINKED=not linked (libtorch location unknown)");
        return;
    };
    let lib = Path::new(&lib);
    let version = libtorch_version(lib);
    println!("cargo:rerun-if-env-changed=LIBTORCH_BYPASS_VERSION_CHECK");
    // torch-sys checks the version only with LIBTORCH_USE_PYTORCH; built
    // from a wheel's directory with LIBTORCH= it does not, and another
    // libtorch fails at run time with missing symbols or worse.
    if !version.starts_with(EXPECTED_LIBTORCH)
        && version != "unknown"
        && env::var_os("LIBTORCH_BYPASS_VERSION_CHECK").is_none()
    {
        eprintln!(
            "libtorch in {} is {version}; tch 0.26 needs {EXPECTED_LIBTORCH}.x (bash tests/setup-torch.sh installs it; LIBTORCH_BYPASS_VERSION_CHECK=1 overrides)",
            lib.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-env=RTNODE_LIBTORCH_LIB={}", lib.display());
    println!("cargo:rustc-env=RTNODE_LIBTORCH_VERSION={version}");

    let cuda = lib.join("libtorch_cuda.so");
    let linked = if !cuda.exists() {
        "not linked (this libtorch has no libtorch_cuda.so: a CPU build)".to_string()
    } else {
        match missing_dependencies(&cuda) {
            // One argument, so that the three options reach the linker in
            // this order around the library.
            None => {
                println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
                "linked".to_string()
            }
            Some(missing) => {
                // The slim wheel install carries libtorch_cuda.so without
                // the CUDA libraries it needs; linking it would make a
                // binary that cannot start anywhere.
                println!(
                    "cargo:warning=libtorch_cuda.so is not linked: its CUDA libraries are not installed ({missing}); this build runs models on the CPU only"
                );
                format!("not linked (CUDA libraries missing: {missing})")
            }
        }
    };
    println!("cargo:rustc-env=RTNODE_TORCH_CUDA_LINKED={linked}");
}

/// The libraries `ldd` cannot find for `lib`, or None when all resolve
/// (or ldd is not there to ask, in which case we trust the wheel).
fn missing_dependencies(lib: &Path) -> Option<String> {
    let out = Command::new("ldd").arg(lib).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("not found"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// The version of the libtorch in `lib`: the wheel's `torch/version.py`,
/// or a standalone libtorch's `build-version`.
fn libtorch_version(lib: &Path) -> String {
    let Some(root) = lib.parent() else {
        return "unknown".into();
    };
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("__version__ = ") {
                return v.trim().trim_matches(['\'', '"']).to_string();
            }
        }
    }
    std::fs::read_to_string(root.join("build-version"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
