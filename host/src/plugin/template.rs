//! `hookhost plugin new NAME [--lang rust|python|js]`: a new plugin project — a Rust crate that
//! builds with `cargo build --release --target wasm32-wasip2` and tests with `cargo test`, a
//! Python app that tests with `python3 -m unittest` and builds with the Python SDK's wrapper over
//! componentize-py, or a JavaScript app (an npm project, files in `template_js/`) that tests with
//! `npm test` and builds with `npm run build` (the JS SDK's `hookhost-build`) — each with an
//! `event.json` fixture for `hookhost plugin run`. Writes files
//! only into the new directory, never over existing ones.

use std::path::{Path, PathBuf};

/// Why a template could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0:?} is not a crate name: use a-z, 0-9, '-' and '_', starting with a letter")]
    BadName(String),
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" => Ok(Lang::Python),
            "js" | "javascript" => Ok(Lang::Js),
            other => Err(format!("{other:?} is not a plugin language: rust, python or js")),
        }
    }
}

/// Where the SDK comes from in the new crate's `Cargo.toml`.
#[derive(Debug, Clone)]
pub enum SdkSource {
    /// A path to the `sdk/` directory (a checkout of hookhost).
    Path(PathBuf),
    /// A version requirement on a registry.
    Version(String),
}

impl SdkSource {
    /// The SDK in `lang` of the checkout this binary was built from.
    pub fn from_build(lang: Lang) -> SdkSource {
        let dir = match lang {
            Lang::Rust => "../sdk",
            Lang::Python => "../sdk-python",
            Lang::Js => "../sdk-js",
        };
        SdkSource::Path(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
    }

    fn canonical(&self) -> String {
        match self {
            SdkSource::Path(p) => p.canonicalize().unwrap_or_else(|_| p.clone()).display().to_string(),
            SdkSource::Version(v) => v.clone(),
        }
    }

    fn dependency(&self) -> String {
        match self {
            SdkSource::Path(_) => format!("hookhost-sdk = {{ path = {:?} }}", self.canonical()),
            SdkSource::Version(v) => format!("hookhost-sdk = {v:?}"),
        }
    }
}

/// Write the project `name` in `lang` under `parent`; returns its directory.
pub fn create(parent: &Path, name: &str, lang: Lang, sdk: &SdkSource) -> Result<PathBuf, TemplateError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(TemplateError::BadName(name.to_string()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(TemplateError::Exists(dir));
    }
    let type_name: String = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    let file = name.replace('-', "_");
    let mut files = match lang {
        Lang::Rust => vec![
            (PathBuf::from("Cargo.toml"), cargo_toml(name, sdk)),
            (PathBuf::from("src/lib.rs"), LIB_RS.replace("TypeName", &type_name)),
            (PathBuf::from(".gitignore"), "/target\n".to_string()),
            // The link settings the repository's own plugins build with.
            (PathBuf::from(".cargo/config.toml"), include_str!("../../../plugins/.cargo/config.toml").to_string()),
            (PathBuf::from("README.md"), README_MD.replace("NAME", name).replace("FILE", &file)),
        ],
        Lang::Python => {
            // Where `hookhost_sdk` comes from: this checkout's `sdk-python/`, or a registry.
            let setup = match sdk {
                SdkSource::Path(_) => format!("    export PYTHONPATH={}", sdk.canonical()),
                SdkSource::Version(v) => {
                    format!(
                        "    .venv/bin/pip install hookhost-sdk=={v} && export PYTHONPATH=$(.venv/bin/python -c 'import hookhost_sdk, os; print(os.path.dirname(os.path.dirname(hookhost_sdk.__file__)))')"
                    )
                }
            };
            let readme = README_PY.replace("NAME", name).replace("FILE", &file).replace("SETUP", &setup);
            vec![
                (PathBuf::from("app.py"), APP_PY.replace("NAME", name)),
                (PathBuf::from("test_app.py"), TEST_APP_PY.replace("NAME", name)),
                (PathBuf::from(".gitignore"), "__pycache__/\n*.wasm\n".to_string()),
                (PathBuf::from("README.md"), readme),
            ]
        }
        Lang::Js => js_files(name, &file, sdk),
    };
    files.push((PathBuf::from("event.json"), EVENT_JSON.to_string()));
    for (rel, text) in files {
        let path = dir.join(rel);
        let io = |source| TemplateError::Io { path: path.clone(), source };
        std::fs::create_dir_all(path.parent().expect("files are inside the crate")).map_err(io)?;
        std::fs::write(&path, text).map_err(io)?;
    }
    Ok(dir)
}

/// The JavaScript project: with this checkout's SDK, a `file:` dependency installed as a copy
/// (`install-links`, so its own dependencies are installed too) and this checkout's WIT.
fn js_files(name: &str, file: &str, sdk: &SdkSource) -> Vec<(PathBuf, String)> {
    let (dependency, wit) = match sdk {
        SdkSource::Path(_) => {
            let sdk_dir = PathBuf::from(sdk.canonical());
            let wit = sdk_dir.parent().map(|root| format!(" --wit {}", root.join("wit").display()));
            (format!("file:{}", sdk_dir.display()), wit.unwrap_or_default())
        }
        SdkSource::Version(v) => (v.clone(), String::new()),
    };
    let values = [("NAME", name), ("FILE", file), ("WIT", wit.as_str()), ("SDK", dependency.as_str())];
    let fill = |text: &str| fill_tokens(text, &values);
    let mut files = vec![
        (PathBuf::from("app.js"), fill(include_str!("template_js/app.js"))),
        (PathBuf::from("app.test.js"), fill(include_str!("template_js/app.test.js"))),
        (PathBuf::from("package.json"), fill(include_str!("template_js/package.json"))),
        (PathBuf::from("README.md"), fill(include_str!("template_js/README.md"))),
        (PathBuf::from(".gitignore"), "node_modules/\n*.wasm\n".to_string()),
    ];
    if matches!(sdk, SdkSource::Path(_)) {
        files.push((PathBuf::from(".npmrc"), "install-links=true\n".to_string()));
    }
    files
}

/// `text` with each `{{KEY}}` replaced by its value, in one pass: a value (a checkout's path, say)
/// is never searched for tokens itself.
fn fill_tokens(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = start + rest[start..].find("}}").expect("a template's tokens are closed");
        let key = &rest[start + 2..end];
        let value = values.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("no value for the token {key}"));
        out.push_str(&rest[..start]);
        out.push_str(value.1);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

const EVENT_JSON: &str = r#"{
  "event_type": "call.missed",
  "payload": { "call_id": "CA1", "from": "+14158675309", "to": "+18005551212", "direction": "inbound" }
}
"#;

const APP_PY: &str = r#""""NAME: a hookhost plugin, called once per canonical event; returns what to do with it."""

import hookhost_sdk as hh


def handle(event):
    if event.is_test:
        return [hh.drop("test event")]
    payload = hh.payload(event)
    payload["handled_by"] = "NAME"
    hh.log(hh.Level.INFO, f"handled {event.event_type}")
    return [hh.deliver(event.event_type, payload)]


WitWorld = hh.export(handle)
"#;

const TEST_APP_PY: &str = r#"import unittest

import app
from hookhost_sdk import testing


class App(unittest.TestCase):
    def test_marks_the_payload(self):
        testing.reset()
        out = testing.run(app.handle, testing.event("call.missed", {"call_id": "CA1"}))
        self.assertEqual(testing.delivered(out)[0][1]["handled_by"], "NAME")
        self.assertEqual(len(testing.logs), 1)


if __name__ == "__main__":
    unittest.main()
"#;

const README_PY: &str = r#"# NAME — a hookhost plugin in Python

    python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1
SETUP
    python3 -m unittest                                             # unit tests, natively
    .venv/bin/python -m hookhost_sdk.build app.py -o FILE.wasm      # the component
    hookhost plugin run --component FILE.wasm --event event.json
    curl -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/wasm' \
         --data-binary @FILE.wasm $HOOKHOST/v1/tenants/$TENANT/plugins/NAME

The upload answers 202 while it compiles; then dry-run the version on recent events and
activate it:

    curl -X POST ... $HOOKHOST/v1/tenants/$TENANT/plugins/NAME/versions/1/dry-run -d '{"last": 20}'
    curl -X POST ... $HOOKHOST/v1/tenants/$TENANT/plugins/NAME/versions/1/activate
"#;

fn cargo_toml(name: &str, sdk: &SdkSource) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A plugin is its own workspace, so it builds wherever it sits.
[workspace]

[lib]
crate-type = ["cdylib"]

[dependencies]
{dep}

[profile.release]
opt-level = 3
debug = false
strip = true
codegen-units = 4
"#,
        dep = sdk.dependency()
    )
}

const LIB_RS: &str = r#"//! A hookhost plugin: called once per canonical event, returns what to do with it.
use hookhost_sdk::{Action, Event, Level, Plugin, PluginError};

struct TypeName;

impl Plugin for TypeName {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        if event.is_test {
            return Ok(vec![hookhost_sdk::drop_event("test event")]);
        }
        let mut payload = event.payload_json()?;
        payload["handled_by"] = "TypeName".into();
        hookhost_sdk::log(Level::Info, &format!("handled {}", event.event_type));
        Ok(vec![hookhost_sdk::deliver(&event.event_type, &payload)])
    }
}

hookhost_sdk::export!(TypeName);

#[cfg(test)]
mod tests {
    use hookhost_sdk::serde_json::json;
    use hookhost_sdk::testing::{self, delivered, event};

    use super::*;

    #[test]
    fn marks_the_payload() {
        testing::reset();
        let out = TypeName::handle(event("call.missed", json!({ "call_id": "CA1" }))).unwrap();
        assert_eq!(delivered(&out)[0].1["handled_by"], "TypeName");
        assert_eq!(testing::logs().len(), 1);
    }
}
"#;

const README_MD: &str = r#"# NAME — a hookhost plugin

    cargo test                                          # unit tests, natively
    cargo build --release --target wasm32-wasip2        # the component
    hookhost plugin run --component target/wasm32-wasip2/release/FILE.wasm --event event.json
    curl -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/wasm' \
         --data-binary @target/wasm32-wasip2/release/FILE.wasm $HOOKHOST/v1/tenants/$TENANT/plugins/NAME

Then dry-run the new version on recent events and activate it:

    curl -X POST ... $HOOKHOST/v1/tenants/$TENANT/plugins/NAME/versions/1/dry-run -d '{"last": 20}'
    curl -X POST ... $HOOKHOST/v1/tenants/$TENANT/plugins/NAME/versions/1/activate
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty directory of this test process's own to create projects in.
    fn scratch(tag: &str) -> std::path::PathBuf {
        let parent = std::env::temp_dir().join(format!("hookhost-template-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        std::fs::create_dir_all(&parent).unwrap();
        parent
    }

    #[test]
    fn writes_a_crate_and_refuses_to_overwrite() {
        let parent = scratch("rust");
        let dir = create(&parent, "tag-calls", Lang::Rust, &SdkSource::Version("0.1".into())).unwrap();
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("struct TagCalls;") && lib.contains("export!(TagCalls)"));
        assert!(std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().contains("hookhost-sdk = \"0.1\""));
        let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
        assert!(config.contains("--initial-memory="), "{config}");
        assert!(matches!(
            create(&parent, "tag-calls", Lang::Python, &SdkSource::Version("0.1".into())),
            Err(TemplateError::Exists(_))
        ));
        let bad = create(&parent, "Bad", Lang::Rust, &SdkSource::Version("0.1".into()));
        assert!(matches!(bad, Err(TemplateError::BadName(_))));
        std::fs::remove_dir_all(&parent).unwrap();
    }

    /// The Python template's own test passes against this checkout's Python SDK.
    #[test]
    fn a_python_project_tests_green_against_the_sdk() {
        let parent = scratch("py");
        let sdk = SdkSource::from_build(Lang::Python);
        let dir = create(&parent, "tag-calls", Lang::Python, &sdk).unwrap();
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            readme.contains(&format!("export PYTHONPATH={}", sdk.canonical())) && readme.contains("tag_calls.wasm")
        );
        let SdkSource::Path(sdk_dir) = &sdk else { unreachable!() };
        let ran = std::process::Command::new("python3")
            .args(["-m", "unittest", "-q"])
            .current_dir(&dir)
            .env("PYTHONPATH", sdk_dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 runs");
        assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
        assert!(
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join("event.json")).unwrap())
                .is_ok()
        );
        std::fs::remove_dir_all(&parent).unwrap();
    }

    /// The JavaScript project names this checkout's SDK (installed as a copy) and WIT.
    #[test]
    fn a_javascript_project_depends_on_this_checkouts_sdk() {
        let parent = scratch("js");
        let sdk = SdkSource::from_build(Lang::Js);
        let dir = create(&parent, "tag-calls", Lang::Js, &sdk).unwrap();
        let package: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
        assert_eq!(package["dependencies"]["@hookhost/sdk"], format!("file:{}", sdk.canonical()));
        let build = package["scripts"]["build"].as_str().unwrap();
        assert!(build.starts_with("hookhost-build app.js -o tag_calls.wasm --wit /"), "{build}");
        assert!(std::path::Path::new(build.rsplit(' ').next().unwrap()).join("plugin.wit").exists());
        assert_eq!(std::fs::read_to_string(dir.join(".npmrc")).unwrap(), "install-links=true\n");
        assert!(std::fs::read_to_string(dir.join("app.js")).unwrap().contains(r#"handled_by = "tag-calls""#));
        // A checkout whose path holds the template's words (and tokens) is written verbatim.
        let odd = parent.join("SDK-NAME-{{WIT}}/sdk-js");
        let odd_dir = create(&parent, "odd-path", Lang::Js, &SdkSource::Path(odd.clone())).unwrap();
        let package: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(odd_dir.join("package.json")).unwrap()).unwrap();
        assert_eq!(package["dependencies"]["@hookhost/sdk"], format!("file:{}", odd.display()));
        let wit = parent.join("SDK-NAME-{{WIT}}/wit");
        assert_eq!(
            package["scripts"]["build"],
            format!("hookhost-build app.js -o odd_path.wasm --wit {}", wit.display())
        );
        let registry = create(&parent, "from-npm", Lang::Js, &SdkSource::Version("^0.2.0".into())).unwrap();
        let package = std::fs::read_to_string(registry.join("package.json")).unwrap();
        assert!(package.contains(r#""@hookhost/sdk": "^0.2.0""#) && !package.contains("--wit"));
        assert!(!registry.join(".npmrc").exists());
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
