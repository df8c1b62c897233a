//! The Istio `WasmPlugin` (`deploy/istio/`) cannot run on this machine (no Kubernetes), so it is
//! checked as data: valid YAML, the fields its schema allows, a filter configuration the filter
//! accepts, and the same settings as the shipped US East node.
//!
//! Part of `deploy`.

use std::path::Path;

use ferry_filter::config::Config;
use ferry_tests::paths;
use serde_yaml::Value;

fn load(relative: &str) -> Value {
    let path = paths::workspace_root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"))
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, key| {
        v.get(*key)
            .unwrap_or_else(|| panic!("{} not found", path.join(".")))
    })
}

/// The plugin configuration (JSON in a StringValue) of the Ferry filter in an Envoy config.
fn envoy_plugin_config(relative: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(paths::workspace_root().join(relative)).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let mut found = Vec::new();
    collect_wasm_configs(&doc, &mut found);
    assert_eq!(
        found.len(),
        1,
        "{relative}: expected one Ferry wasm filter, found {found:?}"
    );
    serde_json::from_str(&found[0]).unwrap_or_else(|e| panic!("{relative}: plugin config: {e}"))
}

fn collect_wasm_configs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            let is_wasm = m.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm");
            if is_wasm {
                let value = get(v, &["config", "configuration", "value"]);
                out.push(value.as_str().expect("a string").to_string());
            }
            m.values().for_each(|v| collect_wasm_configs(v, out));
        }
        Value::Sequence(s) => s.iter().for_each(|v| collect_wasm_configs(v, out)),
        _ => {}
    }
}

#[test]
fn istio_wasmplugin_is_valid_and_matches_the_envoy_node() {
    let doc = load("deploy/istio/wasmplugin.yaml");
    assert_eq!(
        get(&doc, &["apiVersion"]).as_str(),
        Some("extensions.istio.io/v1alpha1")
    );
    assert_eq!(get(&doc, &["kind"]).as_str(), Some("WasmPlugin"));
    let spec = get(&doc, &["spec"])
        .as_mapping()
        .expect("spec is a mapping");
    // The WasmPlugin spec's fields (istio/api extensions/v1alpha1), and the enums used.
    const FIELDS: &[&str] = &[
        "selector",
        "targetRef",
        "targetRefs",
        "url",
        "sha256",
        "imagePullPolicy",
        "imagePullSecret",
        "pluginConfig",
        "pluginName",
        "phase",
        "priority",
        "failStrategy",
        "vmConfig",
        "match",
        "type",
    ];
    for key in spec.keys() {
        let key = key.as_str().expect("string keys");
        assert!(
            FIELDS.contains(&key),
            "spec.{key} is not a WasmPlugin field"
        );
    }
    let enums: &[(&str, &[&str])] = &[
        (
            "imagePullPolicy",
            &["UNSPECIFIED_POLICY", "IfNotPresent", "Always"],
        ),
        ("phase", &["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"]),
        ("failStrategy", &["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"]),
        ("type", &["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"]),
    ];
    for (field, allowed) in enums {
        let value = spec[*field]
            .as_str()
            .unwrap_or_else(|| panic!("spec.{field}"));
        assert!(allowed.contains(&value), "spec.{field}: {value}");
    }
    let url = spec["url"].as_str().expect("spec.url");
    assert!(url.starts_with("oci://"), "{url}");
    assert_eq!(spec["pluginName"].as_str(), Some("ferry"));

    // The Dockerfile that packages the .wasm copies the file the build produces.
    let dockerfile =
        std::fs::read_to_string(paths::workspace_root().join("deploy/istio/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("COPY target/wasm32-wasip1/release/ferry_filter.wasm ./plugin.wasm")
    );

    // pluginConfig is a configuration the filter accepts...
    let plugin: serde_json::Value =
        serde_json::to_value(&spec["pluginConfig"]).expect("pluginConfig as JSON");
    let config = Config::from_json(plugin.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("pluginConfig is refused by the filter: {e}"));
    let redirect = config.redirect.as_ref().expect("a redirect section");
    // ...whose country comes from the address (Istio has no geoip filter), never a header...
    assert!(redirect.networks.is_some() && redirect.country_header.is_none());
    // ...and otherwise the US East node's settings.
    let node = envoy_plugin_config("envoy/us-east.yaml");
    assert_eq!(plugin["domains"], node["domains"]);
    for key in [
        "countries",
        "status",
        "max_age",
        "exempt_paths",
        "opt_out_cookie",
    ] {
        assert_eq!(
            plugin["redirect"][key], node["redirect"][key],
            "redirect.{key}"
        );
    }
    assert!(Path::new(&paths::workspace_root().join("deploy/istio/README.md")).exists());
}
