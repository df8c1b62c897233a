//! The files of the compose demo as data: `docker-compose.yml` (services, their bind mounts and
//! static addresses, checked against the Compose specification's keys), the listeners of
//! `envoy/us-east.yaml`, the subset of TOML `relay.toml` uses, and the relay's Dockerfile; and
//! certificates checked with `openssl`. Every accessor panics with the path of what is missing
//! or malformed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_tests::paths;
use serde_yaml::{Mapping, Value};

/// The compose directory, relative to the workspace root.
pub const DIR: &str = "deploy/compose";

/// Top-level keys of the Compose specification (compose-spec `schema/compose-spec.json`).
pub const TOP_KEYS: &str = "version name include services models networks volumes secrets configs";
/// Keys of a service.
pub const SERVICE_KEYS: &str =
    "develop deploy annotations attach build blkio_config cap_add cap_drop cgroup \
    cgroup_parent command configs container_name cpu_count cpu_percent cpu_shares cpu_quota \
    cpu_period cpu_rt_period cpu_rt_runtime cpus cpuset credential_spec depends_on \
    device_cgroup_rules devices dns dns_opt dns_search domainname entrypoint env_file \
    label_file environment expose extends provider external_links extra_hosts gpus group_add \
    healthcheck hostname image init ipc isolation labels links logging mac_address mem_limit \
    mem_reservation mem_swappiness memswap_limit network_mode models networks \
    oom_kill_disable oom_score_adj pid pids_limit platform ports post_start pre_stop \
    privileged profiles pull_policy pull_refresh_after read_only restart runtime scale \
    security_opt shm_size secrets sysctls stdin_open stop_grace_period stop_signal \
    storage_opt tmpfs tty ulimits use_api_socket user uts userns_mode volumes volumes_from \
    working_dir";
pub const BUILD_KEYS: &str =
    "context dockerfile dockerfile_inline entitlements args ssh labels cache_from cache_to \
    no_cache additional_contexts network pull target shm_size extra_hosts isolation \
    privileged secrets tags ulimits platforms";
const MOUNT_KEYS: &str = "type source target read_only consistency bind volume tmpfs image";
const BIND_KEYS: &str = "propagation create_host_path recursive selinux";
pub const ATTACHMENT_KEYS: &str =
    "aliases interface_name ipv4_address ipv6_address link_local_ips mac_address driver_opts \
    priority gw_priority";
const DEPENDS_ON_KEYS: &str = "restart required condition";
const NETWORK_KEYS: &str =
    "name driver driver_opts ipam external internal enable_ipv4 enable_ipv6 attachable labels";
const IPAM_KEYS: &str = "driver config options";
const IPAM_CONFIG_KEYS: &str = "subnet ip_range gateway aux_addresses";
pub const VOLUME_KEYS: &str = "name driver driver_opts external labels";

/// The workspace root.
pub fn root() -> PathBuf {
    paths::workspace_root()
}

/// The text of a file of the repository, by its path from the root.
pub fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `deploy/compose/docker-compose.yml`, parsed.
pub fn compose() -> Value {
    let name = format!("{DIR}/docker-compose.yml");
    serde_yaml::from_str(&read(&name)).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
}

/// `envoy/us-east.yaml`, parsed.
pub fn us_east() -> Value {
    serde_yaml::from_str(&read("envoy/us-east.yaml")).expect("envoy/us-east.yaml parses")
}

/// `v` as a mapping; `at` names it in the panic message.
pub fn map<'a>(v: &'a Value, at: &str) -> &'a Mapping {
    v.as_mapping()
        .unwrap_or_else(|| panic!("{at} is not a mapping"))
}

/// `v` as a string; `at` names it in the panic message.
pub fn text<'a>(v: &'a Value, at: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{at} is not a string: {v:?}"))
}

/// Every key of `m` is one of the words of `allowed` (or an `x-` extension).
pub fn check_keys(m: &Mapping, allowed: &str, at: &str) {
    for key in m.keys() {
        let key = text(key, at);
        assert!(
            allowed.split_whitespace().any(|k| k == key) || key.starts_with("x-"),
            "{at}.{key} is not a Compose-spec key"
        );
    }
}

/// A top-level network's keys, and its IPAM configuration's.
pub fn check_network(network: &Value, at: &str) {
    check_keys(map(network, at), NETWORK_KEYS, at);
    if let Some(ipam) = network.get("ipam") {
        let at = format!("{at}.ipam");
        check_keys(map(ipam, &at), IPAM_KEYS, &at);
        for config in ipam["config"].as_sequence().expect("ipam.config is a list") {
            check_keys(map(config, &at), IPAM_CONFIG_KEYS, &format!("{at}.config"));
        }
    }
}

/// The services a service depends on, from either form of `depends_on`.
pub fn depends_on<'a>(service: &'a Value, at: &str) -> Vec<&'a str> {
    let at = format!("{at}.depends_on");
    match service.get("depends_on") {
        None => Vec::new(),
        Some(Value::Sequence(list)) => list.iter().map(|d| text(d, &at)).collect(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(d, condition)| {
                check_keys(map(condition, &at), DEPENDS_ON_KEYS, &at);
                text(d, &at)
            })
            .collect(),
        Some(_) => panic!("{at} is neither a list nor a mapping"),
    }
}

/// The service `name` of the compose file.
pub fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

/// A string or a list of strings (`command`, `entrypoint`), as a list.
pub fn words(v: &Value, at: &str) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Sequence(items) => items.iter().map(|w| text(w, at).to_owned()).collect(),
        _ => panic!("{at} is neither a string nor a list"),
    }
}

/// A bind mount of a service: its source as written (relative to `deploy/compose/`) and target.
#[derive(Debug)]
pub struct Mount {
    pub source: String,
    pub target: String,
}

/// The bind mounts of `service`, which must all be long-syntax, read-only binds: the short
/// syntax makes Docker create an empty directory where a file is missing.
pub fn mounts(doc: &Value, name: &str) -> Vec<Mount> {
    let Some(volumes) = service(doc, name).get("volumes") else {
        return Vec::new();
    };
    let volumes = volumes.as_sequence().expect("volumes is a list");
    volumes
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("services.{name}.volumes[{i}]");
            let m = v.as_mapping().unwrap_or_else(|| {
                panic!("{at}: use the long syntax (type: bind), so a missing file is an error")
            });
            check_keys(m, MOUNT_KEYS, &at);
            if let Some(bind) = v.get("bind") {
                check_keys(map(bind, &at), BIND_KEYS, &format!("{at}.bind"));
                assert_ne!(
                    bind.get("create_host_path"),
                    Some(&Value::Bool(true)),
                    "{at}"
                );
            }
            assert_eq!(v["type"].as_str(), Some("bind"), "{at}.type");
            assert_eq!(
                v["read_only"].as_bool(),
                Some(true),
                "{at}: mount it read-only"
            );
            Mount {
                source: text(&v["source"], &at).to_owned(),
                target: text(&v["target"], &at).to_owned(),
            }
        })
        .collect()
}

/// The host file a mount source names: `./generated/X` is X in `generated`, anything else is
/// relative to `deploy/compose/` and must exist in the repository.
pub fn host_path(source: &str, generated: &Path) -> PathBuf {
    if let Some(rest) = source.strip_prefix("./generated/") {
        return generated.join(rest);
    }
    let path = std::path::absolute(root().join(DIR).join(source)).expect("absolute path");
    let path = path.canonicalize().unwrap_or_else(|e| {
        panic!("mount source {source} does not exist in the repository ({e}), nor is it a prepare.sh output")
    });
    assert!(
        path.starts_with(root()),
        "mount source {source} is outside the repository"
    );
    path
}

/// The host file mounted at `target` in service `name`.
pub fn mounted_at(doc: &Value, name: &str, target: &str, generated: &Path) -> PathBuf {
    let mounts = mounts(doc, name);
    let mount = mounts
        .iter()
        .find(|m| m.target == target)
        .unwrap_or_else(|| panic!("service {name} mounts nothing at {target}"));
    host_path(&mount.source, generated)
}

/// `prepare.sh --list-outputs`: what it makes, relative to its output directory.
pub fn prepare_outputs() -> Vec<String> {
    let out = Command::new("bash")
        .arg(root().join(DIR).join("prepare.sh"))
        .arg("--list-outputs")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "prepare.sh --list-outputs failed: {out:?}"
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// An IPv4 network, `a.b.c.d/len` (a bare address is a /32).
#[derive(Clone, Copy)]
pub struct Net(u32, u32);

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.0), self.1)
    }
}

impl Net {
    pub fn parse(cidr: &str) -> Net {
        let (addr, len) = cidr.split_once('/').unwrap_or((cidr, "32"));
        let addr: Ipv4Addr = addr.parse().unwrap_or_else(|e| panic!("{cidr}: {e}"));
        let len: u32 = len.parse().unwrap_or_else(|e| panic!("{cidr}: {e}"));
        assert!(len <= 32, "{cidr}");
        Net(u32::from(addr), len)
    }
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - self.1).unwrap_or(0);
        u32::from(ip) & mask == self.0 & mask
    }
    /// Whether every address of `other` is in `self`.
    pub fn covers(self, other: Net) -> bool {
        other.1 >= self.1 && self.contains(Ipv4Addr::from(other.0))
    }
}

/// The subnet of the compose network `name`.
pub fn subnet(doc: &Value, name: &str) -> Net {
    let config = &doc["networks"][name]["ipam"]["config"][0]["subnet"];
    Net::parse(text(
        config,
        &format!("networks.{name}.ipam.config[0].subnet"),
    ))
}

/// The static address of service `name` on network `network`.
pub fn address(doc: &Value, name: &str, network: &str) -> Ipv4Addr {
    let at = format!("services.{name}.networks.{network}.ipv4_address");
    let ip = &service(doc, name)["networks"][network]["ipv4_address"];
    text(ip, &at)
        .parse()
        .unwrap_or_else(|e| panic!("{at}: {e}"))
}

/// A listener of `us-east.yaml`: its port, whether it requires a PROXY header, and the relay
/// ranges of each of its filter chains.
pub struct EnvoyListener {
    pub port: u64,
    pub proxy_protocol: bool,
    pub relay_ranges: Vec<Vec<Net>>,
}

/// The listeners of `us-east.yaml`, by name.
pub fn envoy_listeners() -> BTreeMap<String, EnvoyListener> {
    let doc = us_east();
    let listeners = doc["static_resources"]["listeners"]
        .as_sequence()
        .expect("listeners");
    listeners
        .iter()
        .map(|l| {
            let name = text(&l["name"], "listener name").to_owned();
            let port = l["address"]["socket_address"]["port_value"]
                .as_u64()
                .expect("port");
            let filters = l["listener_filters"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            let proxy_protocol = filters
                .iter()
                .any(|f| f["name"].as_str() == Some("envoy.filters.listener.proxy_protocol"));
            let chains = l["filter_chains"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            let relay_ranges = chains
                .iter()
                .map(|chain| {
                    let ranges = &chain["filter_chain_match"]["direct_source_prefix_ranges"];
                    let ranges = ranges.as_sequence().cloned().unwrap_or_default();
                    let net = |r: &Value| {
                        let prefix = text(&r["address_prefix"], "address_prefix");
                        Net::parse(&format!("{prefix}/{}", r["prefix_len"].as_u64().unwrap()))
                    };
                    ranges.iter().map(net).collect()
                })
                .collect();
            let listener = EnvoyListener {
                port,
                proxy_protocol,
                relay_ranges,
            };
            (name, listener)
        })
        .collect()
}

/// `relay.toml` as (top-level keys with `[defaults]` ones as `defaults.KEY`, one map per
/// `[[listener]]`), every value as text without its quotes (a list stays `[a, b]`). Enough for
/// the keys the tests compare, in the flat layout relay.toml uses; `ferry-relay --check` is
/// what judges the file itself.
pub fn relay_toml(text: &str) -> (BTreeMap<String, String>, Vec<BTreeMap<String, String>>) {
    let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut listeners: Vec<BTreeMap<String, String>> = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[[listener]]" {
            listeners.push(BTreeMap::new());
            section = "[[listener]]".into();
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("relay.toml: {line}"));
            let (key, value) = (key.trim().to_owned(), value.trim().replace('"', ""));
            match section.as_str() {
                "[[listener]]" => listeners.last_mut().expect("a listener").insert(key, value),
                other => tables
                    .entry(other.to_owned())
                    .or_default()
                    .insert(key, value),
            };
        }
    }
    let mut top = tables.remove("").unwrap_or_default();
    for (key, value) in tables.remove("defaults").unwrap_or_default() {
        top.insert(format!("defaults.{key}"), value);
    }
    (top, listeners)
}

/// The Dockerfile's instructions: continuation lines joined, comments dropped.
pub fn instructions(text: &str) -> Vec<(String, String)> {
    let mut joined = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && joined.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => joined.push_str(part),
            None => {
                joined.push_str(trimmed);
                let (op, rest) = joined.split_once(' ').unwrap_or((&joined, ""));
                out.push((op.to_uppercase(), rest.trim().to_owned()));
                joined.clear();
            }
        }
    }
    out
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            };
            out.push(char::from(c));
        }
    }
    out
}

/// `cert` is signed by `ca` and names `name` in its subject alternative names.
pub fn verify_certificate(cert: &Path, ca: &Path, name: &str) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .arg(cert)
            .output()
            .expect("openssl runs (prepare.sh needs it too)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "openssl {args:?} {}: {text}{err}",
            cert.display()
        );
        text
    };
    openssl(&["verify", "-CAfile", ca.to_str().expect("UTF-8 path")]);
    let text = openssl(&["x509", "-noout", "-text", "-in"]);
    assert!(
        text.contains(&format!("DNS:{name},")) || text.contains(&format!("DNS:{name}\n")),
        "{} does not name {name}",
        cert.display()
    );
}
