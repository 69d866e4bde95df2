//! `hookhost plugin new NAME`: a new plugin crate that builds with `cargo build --release
//! --target wasm32-wasip2` and tests natively with `cargo test`. Writes files only into the
//! new directory, never over existing ones.

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

/// Where the SDK comes from in the new crate's `Cargo.toml`.
#[derive(Debug, Clone)]
pub enum SdkSource {
    /// A path to the `sdk/` directory (a checkout of hookhost).
    Path(PathBuf),
    /// A version requirement on a registry.
    Version(String),
}

impl SdkSource {
    /// The SDK of the checkout this binary was built from.
    pub fn from_build() -> SdkSource {
        SdkSource::Path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"))
    }

    fn dependency(&self) -> String {
        match self {
            SdkSource::Path(p) => {
                let p = p.canonicalize().unwrap_or_else(|_| p.clone());
                format!("hookhost-sdk = {{ path = {:?} }}", p.display().to_string())
            }
            SdkSource::Version(v) => format!("hookhost-sdk = {v:?}"),
        }
    }
}

/// Write the crate `name` under `parent`; returns its directory.
pub fn create(parent: &Path, name: &str, sdk: &SdkSource) -> Result<PathBuf, TemplateError> {
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
    let files = [
        (PathBuf::from("Cargo.toml"), cargo_toml(name, sdk)),
        (PathBuf::from("src/lib.rs"), LIB_RS.replace("TypeName", &type_name)),
        (PathBuf::from(".gitignore"), "/target\n".to_string()),
        (PathBuf::from("README.md"), README_MD.replace("NAME", name).replace("FILE", &name.replace('-', "_"))),
    ];
    for (rel, text) in files {
        let path = dir.join(rel);
        let io = |source| TemplateError::Io { path: path.clone(), source };
        std::fs::create_dir_all(path.parent().expect("files are inside the crate")).map_err(io)?;
        std::fs::write(&path, text).map_err(io)?;
    }
    Ok(dir)
}

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

    #[test]
    fn writes_a_crate_and_refuses_to_overwrite() {
        let parent = std::env::temp_dir().join(format!("hookhost-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        std::fs::create_dir_all(&parent).unwrap();
        let dir = create(&parent, "tag-calls", &SdkSource::Version("0.1".into())).unwrap();
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("struct TagCalls;") && lib.contains("export!(TagCalls)"));
        assert!(std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().contains("hookhost-sdk = \"0.1\""));
        assert!(matches!(
            create(&parent, "tag-calls", &SdkSource::Version("0.1".into())),
            Err(TemplateError::Exists(_))
        ));
        assert!(matches!(create(&parent, "Bad", &SdkSource::Version("0.1".into())), Err(TemplateError::BadName(_))));
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
