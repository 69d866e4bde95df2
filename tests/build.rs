//! Builds the example plugins in `plugins/` for wasm32-wasip2 so tests and benchmarks run real
//! components compiled from source, and exposes their paths as `PLUGIN_<NAME>` env constants.
//! The plugins get their own target directory beside this workspace's (a nested cargo must not
//! wait on the outer one's lock).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const PLUGINS: [&str; 11] = [
    "passthrough",
    "redact-phone",
    "spin-forever",
    "memory-hog",
    "crm-sink",
    "keep-missed-calls",
    "enrich-owner",
    "reshape-call-completed",
    "topic-call-received",
    "lookup-caller",
    "flaky-upstream",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("tests/ sits in the workspace root").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let target = out_dir.ancestors().nth(4).expect("OUT_DIR is inside the target directory").join("wasm-plugins");

    for dir in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("plugins/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo to build the plugins");
    assert!(
        status.success(),
        "building plugins/ for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );

    for name in PLUGINS {
        let file = target.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.exists(), "plugin {name} was not built at {}", file.display());
        println!("cargo:rustc-env=PLUGIN_{}={}", name.replace('-', "_").to_uppercase(), file.display());
    }
}
