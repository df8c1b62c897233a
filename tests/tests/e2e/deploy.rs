//! The shipped deployment files. Every Envoy config in `envoy/` validates (`envoy --mode
//! validate`, which loads the filter and checks its plugin configuration too) with only the
//! files it names replaced by local ones, names no file outside the documented set, and has
//! Envoy reload a crashed VM (`FAIL_RELOAD`).
//!
//! In the submodules, the deployment files that cannot run on this machine: `istio` (the
//! `WasmPlugin`) and `compose` (the Docker Compose demo). Related: the node configs running in
//! `chain`, `geo_redirect` and `rewrite_bodies::streaming_matrix`.

mod compose;
mod istio;

use std::collections::BTreeSet;

use ferry_tests::envoy::node::{self, LocalFiles};
use ferry_tests::{paths, Envoy};

#[test]
fn every_shipped_envoy_config_validates_with_only_its_files_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = LocalFiles::generate(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let every_file: BTreeSet<&str> = node::FILES.iter().map(|(path, _)| *path).collect();
    let expected = |name: &str| -> BTreeSet<&str> {
        match name {
            "ferry.yaml" => BTreeSet::new(),
            "us-east.yaml" => every_file.clone(),
            "redirect.yaml" => [
                node::ORIGIN_CERT,
                node::ORIGIN_KEY,
                node::GEOIP_DB,
                node::WASM,
                node::SYSTEM_CA,
            ]
            .into(),
            other => panic!("envoy/{other} is new: say here which files it names"),
        }
    };
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(paths::envoy_dir()).expect("read envoy/") {
        let path = entry.expect("read envoy/").path();
        if !path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            continue;
        }
        let name = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read the config");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
        let named = node::file_paths(&doc);
        let named: BTreeSet<&str> = named.iter().map(String::as_str).collect();
        assert_eq!(named, expected(&name), "{name}: the files it names");
        // A crashed VM is reloaded for the next request, not left answering 503 (checked by
        // hand with a module that traps: FAIL_CLOSED kept every later request at 503).
        let plugin = find_mapping(&doc, "root_id", "ferry").expect("the Ferry wasm filter");
        assert_eq!(
            plugin.get("failure_policy").and_then(|v| v.as_str()),
            Some("FAIL_RELOAD"),
            "{name}: the Ferry filter's failure_policy"
        );

        let rendered = node::with_local_files(&path, &files).unwrap_or_else(|err| panic!("{err}"));
        let local = dir.path().join(&name);
        std::fs::write(&local, rendered).expect("write the config");
        if let Err(output) = Envoy::validate(&local) {
            panic!("{name} does not validate with local files:\n{output}");
        }
        checked.push(name);
    }
    checked.sort();
    assert_eq!(checked, ["ferry.yaml", "redirect.yaml", "us-east.yaml"]);

    // Validation loads the filter, which checks its plugin configuration: an unknown field fails.
    let shipped = std::fs::read_to_string(node::us_east()).expect("read us-east.yaml");
    let bad = shipped.replacen("\"redirect\":", "\"no_such_field\": 1, \"redirect\":", 1);
    assert_ne!(
        bad, shipped,
        "the plugin configuration has a redirect section"
    );
    let bad_path = dir.path().join("bad-source.yaml");
    std::fs::write(&bad_path, bad).expect("write the config");
    let rendered = node::with_local_files(&bad_path, &files).unwrap_or_else(|err| panic!("{err}"));
    let bad_path = dir.path().join("bad.yaml");
    std::fs::write(&bad_path, rendered).expect("write the config");
    let refused =
        Envoy::validate(&bad_path).expect_err("an unknown plugin field must not validate");
    assert!(refused.contains("no_such_field"), "{refused}");
}

/// The first mapping in `doc` (depth first) whose `key` is the string `value`.
fn find_mapping<'a>(
    doc: &'a serde_yaml::Value,
    key: &str,
    value: &str,
) -> Option<&'a serde_yaml::Mapping> {
    match doc {
        serde_yaml::Value::Mapping(map) => {
            if map.get(key).and_then(|v| v.as_str()) == Some(value) {
                return Some(map);
            }
            map.values().find_map(|v| find_mapping(v, key, value))
        }
        serde_yaml::Value::Sequence(items) => {
            items.iter().find_map(|v| find_mapping(v, key, value))
        }
        _ => None,
    }
}
