//! Builds the example plugins in `plugins/` for wasm32-wasip2 so tests and benchmarks run real
//! components compiled from source, and exposes their paths as `PLUGIN_<NAME>` env constants.
//! The plugins get their own target directory beside this workspace's (a nested cargo must not
//! wait on the outer one's lock). The list of plugins is the plugins workspace's `members`:
//! kept once, there; this script writes `plugins.rs` (a constant per plugin, and `ALL`) for the
//! tests' `plugins` module. The Python and JavaScript examples (`plugins/python`, `plugins/js`)
//! are built with their SDKs' build commands, the toolchains installed from PyPI and npm at
//! pinned versions the first time (`PY_*`, `JS_*`, `PYTHON`, `JS`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("tests/ sits in the workspace root").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let target = out_dir.ancestors().nth(4).expect("OUT_DIR is inside the target directory").join("wasm-plugins");

    for dir in ["plugins", "sdk", "sdk-python", "sdk-js", "wit", "package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("plugins/Cargo.toml"))
        // So cargo reads `plugins/.cargo/config.toml` (the plugins' link settings).
        .current_dir(root.join("plugins"))
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
    consts.push_str(&python_plugins(&root, &target));
    consts.push_str(&js_plugins(&root, &target));
    std::fs::write(out_dir.join("plugins.rs"), consts).expect("writing plugins.rs");
}

/// The componentize-py the Python examples are built with (pinned: the SDK's `build` extra).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Build each `plugins/python/NAME/app.py` with the Python SDK's build wrapper, in a virtual
/// environment of its own under the target directory (made, and componentize-py installed from
/// PyPI, the first time). Returns a constant per plugin (`PY_NAME`) and `PYTHON`. Fails loudly
/// when the toolchain cannot be installed: the conformance tests need these components.
fn python_plugins(root: &std::path::Path, target: &std::path::Path) -> String {
    let venv = target.join("python-toolchain");
    let python = venv.join("bin/python");
    let pinned = venv.join(format!("{COMPONENTIZE_PY}.installed"));
    if !pinned.exists() {
        let python3 = env::var("PYTHON3").unwrap_or_else(|_| "python3".into());
        let made = Command::new(&python3).args(["-m", "venv"]).arg(&venv).env("PYTHONDONTWRITEBYTECODE", "1").status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "making a virtual environment with {python3} -m venv failed (Python 3.11+ with venv is needed)"
        );
        let installed = Command::new(&python).args(["-m", "pip", "install", "--quiet", COMPONENTIZE_PY]).status();
        assert!(installed.is_ok_and(|s| s.success()), "installing {COMPONENTIZE_PY} from PyPI failed");
        std::fs::write(&pinned, b"").expect("marking the toolchain installed");
    }
    let sdk = root.join("sdk-python");
    apps(
        root,
        target,
        Lang { dir: "python", app: "app.py", prefix: "PY", all: "PYTHON", tool: "componentize-py" },
        |app, out| {
            Command::new(&python)
                .args(["-m", "hookhost_sdk.build"])
                .arg(app)
                .arg("-o")
                .arg(out)
                .env("PYTHONPATH", &sdk)
                // No __pycache__ beside the sources: it would make cargo run this script again.
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .status()
        },
    )
}

/// Build each `plugins/js/NAME/app.js` with the JavaScript SDK's `hookhost-build` (esbuild +
/// componentize-js), after `npm ci` in the repository root whenever `package-lock.json` is not
/// the one installed (the npm workspace holds `sdk-js`). Returns a constant per plugin
/// (`JS_NAME`) and `JS`. Fails loudly when npm or the toolchain is missing.
fn js_plugins(root: &std::path::Path, target: &std::path::Path) -> String {
    let lock = std::fs::read(root.join("package-lock.json")).expect("package-lock.json");
    let stamp = target.join("npm-installed.lock");
    let installed = root.join("node_modules/.package-lock.json").exists();
    if !installed || std::fs::read(&stamp).ok().as_deref() != Some(&lock[..]) {
        let npm = env::var("NPM").unwrap_or_else(|_| "npm".into());
        let ran = Command::new(&npm).args(["ci", "--no-audit", "--no-fund"]).current_dir(root).status();
        assert!(
            ran.is_ok_and(|s| s.success()),
            "`{npm} ci` in {} failed (Node.js 20+ with npm is needed)",
            root.display()
        );
        std::fs::create_dir_all(target).expect("the plugins' target directory");
        std::fs::write(&stamp, &lock).expect("stamping the npm install");
    }
    let build = root.join("sdk-js/bin/build.js");
    apps(
        root,
        target,
        Lang { dir: "js", app: "app.js", prefix: "JS", all: "JS", tool: "componentize-js" },
        |app, out| {
            Command::new(env::var("NODE").unwrap_or_else(|_| "node".into()))
                .arg(&build)
                .arg(app)
                .arg("-o")
                .arg(out)
                .status()
        },
    )
}

/// Where one language's example plugins are and what their constants are called.
struct Lang {
    /// `plugins/<dir>/NAME/<app>`
    dir: &'static str,
    app: &'static str,
    /// `<prefix>_NAME` per plugin, and `<all>` listing them.
    prefix: &'static str,
    all: &'static str,
    tool: &'static str,
}

/// Build every `plugins/<dir>/NAME/<app>` into `<target>/<dir>-plugins/NAME.wasm` with `build(app,
/// out)`, in name order; returns their constants. A failed build fails the test build.
fn apps(
    root: &std::path::Path,
    target: &std::path::Path,
    lang: Lang,
    build: impl Fn(&std::path::Path, &std::path::Path) -> std::io::Result<std::process::ExitStatus>,
) -> String {
    let Lang { dir: lang_dir, app, prefix, all: all_name, tool } = lang;
    let out = target.join(format!("{lang_dir}-plugins"));
    let mut consts = String::new();
    let mut all = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("plugins").join(lang_dir))
        .unwrap_or_else(|e| panic!("plugins/{lang_dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join(app).exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let file = out.join(format!("{}.wasm", name.replace('-', "_")));
        let built = build(&dir.join(app), &file);
        assert!(built.is_ok_and(|s| s.success()), "building plugins/{lang_dir}/{name} with {tool} failed");
        let ident = format!("{prefix}_{}", name.replace('-', "_").to_uppercase());
        consts.push_str(&format!(
            "/// `plugins/{lang_dir}/{name}`, built with {tool}.\npub const {ident}: &str = {:?};\n",
            file.display().to_string()
        ));
        all.push(format!("({name:?}, {ident})"));
    }
    consts.push_str(&format!(
        "/// Every example plugin in plugins/{lang_dir}: (name, path).\npub const {all_name}: &[(&str, &str)] = &[{}];\n",
        all.join(", ")
    ));
    consts
}
