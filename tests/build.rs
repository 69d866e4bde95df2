//! Builds the example plugins in `plugins/` for wasm32-wasip2 so tests and benchmarks run real
//! components compiled from source, and exposes their paths as `PLUGIN_<NAME>` env constants.
//! The plugins get their own target directory beside this workspace's (a nested cargo must not
//! wait on the outer one's lock). The list of plugins is the plugins workspace's `members`:
//! kept once, there; this script writes `plugins.rs` (a constant per plugin, and `ALL`) for the
//! tests' `plugins` module.

use std::env;
use std::path::PathBuf;
use std::process::Command;

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

    let manifest = std::fs::read_to_string(root.join("plugins/Cargo.toml")).expect("plugins/Cargo.toml");
    let manifest: toml::Table = manifest.parse().expect("plugins/Cargo.toml is TOML");
    let members = manifest["workspace"]["members"].as_array().expect("the plugins workspace lists its members");
    let mut consts = String::from("// Written by tests/build.rs from plugins/Cargo.toml's members.\n");
    let mut all = Vec::new();
    for name in members.iter().filter_map(|m| m.as_str()) {
        let file = target.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.exists(), "plugin {name} was not built at {}", file.display());
        let ident = name.replace('-', "_").to_uppercase();
        consts.push_str(&format!(
            "/// `plugins/{name}`, built.\npub const {ident}: &str = {:?};\n",
            file.display().to_string()
        ));
        all.push(format!("({name:?}, {ident})"));
    }
    consts.push_str(&format!(
        "/// Every example plugin: (name, path).\npub const ALL: &[(&str, &str)] = &[{}];\n",
        all.join(", ")
    ));
    std::fs::write(out_dir.join("plugins.rs"), consts).expect("writing plugins.rs");
}
