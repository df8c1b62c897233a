//! The Docker Compose demo (`deploy/compose/`) cannot run here (no Docker), so everything about
//! it that can be checked without Docker is, against the real files it names:
//!
//! - `docker-compose.yml` uses only Compose-spec keys (a typo fails), long-syntax read-only bind
//!   mounts whose sources exist in the repository or are outputs of `prepare.sh`, images pinned
//!   to a tag, the Envoy image of the version `./run` pins, and static addresses inside their
//!   networks' subnets.
//! - Envoy gets every file `envoy/us-east.yaml` reads, at the path it reads it from; and the
//!   strongest check: `prepare.sh` is run into a temp dir and the real Envoy validates
//!   `us-east.yaml` with each container path replaced by the host file compose mounts there
//!   (so a wrong mount target or source, or a certificate that does not match its key, fails).
//! - The relay: `relay.toml` passes `ferry-relay --check`, forwards to Envoy's address and
//!   listener ports with the PROXY protocol Envoy's listeners expect, from an address inside
//!   `direct_source_prefix_ranges`; `relay.Dockerfile` builds `ferry-relay` and runs that binary.
//! - The client is a visitor from China in the generated country database; the origin's nginx
//!   config and the demo page agree with what is mounted.
//!
//! Part of `deploy`.

mod model;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use ferry_tests::envoy::node;
use ferry_tests::{paths, Envoy};
use serde_yaml::Value;

use model::{
    address, base64, check_keys, check_network, compose, depends_on, envoy_listeners, host_path,
    instructions, map, mounted_at, mounts, prepare_outputs, read, relay_toml, root, service,
    subnet, text, us_east, verify_certificate, words, ATTACHMENT_KEYS, BUILD_KEYS, DIR,
    SERVICE_KEYS, TOP_KEYS, VOLUME_KEYS,
};

#[test]
fn the_compose_file_uses_only_compose_spec_keys_and_consistent_names() {
    let doc = compose();
    check_keys(map(&doc, "the document"), TOP_KEYS, "(top)");
    let services = map(&doc["services"], "services");
    let networks = map(&doc["networks"], "networks");
    for name in ["origin", "envoy", "relay", "client"] {
        service(&doc, name);
    }
    if let Some(volumes) = doc.get("volumes") {
        for (name, v) in map(volumes, "volumes") {
            let at = format!("volumes.{}", text(name, "volume name"));
            check_keys(map(v, &at), VOLUME_KEYS, &at);
        }
    }
    for (name, network) in networks {
        check_network(network, &format!("networks.{}", text(name, "network name")));
    }
    let mut addresses = BTreeMap::new();
    for (name, s) in services {
        let name = text(name, "service name");
        let at = format!("services.{name}");
        check_keys(map(s, &at), SERVICE_KEYS, &at);
        mounts(&doc, name);
        match s.get("build") {
            Some(Value::Mapping(build)) => check_keys(build, BUILD_KEYS, &format!("{at}.build")),
            Some(other) => assert!(other.is_string(), "{at}.build"),
            None => assert!(s.get("image").is_some(), "{at} has neither image nor build"),
        }
        for d in depends_on(s, &at) {
            assert!(
                services.contains_key(d),
                "{at} depends on unknown service {d}"
            );
        }
        let attachments = map(&s["networks"], &format!("{at}.networks"));
        for (network, attachment) in attachments {
            let network = text(network, &at);
            let at = format!("{at}.networks.{network}");
            assert!(networks.contains_key(network), "{at}: no such network");
            check_keys(map(attachment, &at), ATTACHMENT_KEYS, &at);
            if attachment.get("ipv4_address").is_some() {
                let ip = address(&doc, name, network);
                assert!(
                    subnet(&doc, network).contains(ip),
                    "{at}: {ip} is not in the subnet"
                );
                let previous = addresses.insert(ip, at.clone());
                assert!(previous.is_none(), "{at}: {ip} is also {previous:?}");
            }
        }
    }
}

#[test]
fn images_are_pinned_and_envoy_is_the_version_run_pins() {
    let doc = compose();
    for (name, s) in map(&doc["services"], "services") {
        let Some(image) = s.get("image") else {
            continue;
        };
        let image = text(image, "image");
        let (_, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("services.{}: image {image} has no tag", text(name, "name")));
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "{image}: pin a tag"
        );
    }
    let run = read("run");
    let version = run
        .lines()
        .find_map(|l| l.strip_prefix("ENVOY_VERSION="))
        .expect("./run sets ENVOY_VERSION");
    assert_eq!(
        service(&doc, "envoy")["image"].as_str(),
        Some(format!("envoyproxy/envoy:v{version}").as_str()),
        "the Envoy image must be the version ./run pins (ENVOY_VERSION={version})"
    );
}

#[test]
fn every_mount_source_is_in_the_repository_or_made_by_prepare_sh() {
    let doc = compose();
    let outputs = prepare_outputs();
    let unused = Path::new("/nonexistent-generated");
    for name in map(&doc["services"], "services").keys() {
        let name = text(name, "service name");
        for mount in mounts(&doc, name) {
            match mount.source.strip_prefix("./generated/") {
                Some(rest) => assert!(
                    outputs.iter().any(|o| o == rest),
                    "services.{name} mounts {}, which prepare.sh does not make ({outputs:?})",
                    mount.source
                ),
                None => {
                    host_path(&mount.source, unused);
                }
            }
        }
    }
    let ignore = read(&format!("{DIR}/.gitignore"));
    assert!(
        ignore.lines().any(|l| l.trim() == "/generated/"),
        "generated/ is not git-ignored"
    );
}

#[test]
fn envoy_gets_every_file_us_east_yaml_reads_and_runs_that_config() {
    let doc = compose();
    let envoy = service(&doc, "envoy");
    let command = words(&envoy["command"], "services.envoy.command");
    let config = command
        .iter()
        .position(|w| w == "-c" || w == "--config-path")
        .and_then(|i| command.get(i + 1))
        .expect("the envoy command names its config with -c");
    let mounts = mounts(&doc, "envoy");
    let source = mounts
        .iter()
        .find(|m| &m.target == config)
        .map(|m| m.source.as_str());
    assert_eq!(
        source,
        Some("../../envoy/us-east.yaml"),
        "Envoy must run envoy/us-east.yaml"
    );
    for path in node::file_paths(&us_east()) {
        assert!(
            mounts.iter().any(|m| m.target == path),
            "envoy/us-east.yaml reads {path}, which the envoy service does not mount"
        );
    }
    // The shipped origin cluster connects to `example.com`: a network alias of the origin,
    // on a network Envoy is on.
    let origin = service(&doc, "origin");
    let on_network_with_alias = map(&origin["networks"], "origin networks")
        .iter()
        .any(|(n, a)| {
            let aliases = a["aliases"].as_sequence().cloned().unwrap_or_default();
            aliases.iter().any(|x| x.as_str() == Some("example.com"))
                && envoy["networks"].get(n).is_some()
        });
    assert!(
        on_network_with_alias,
        "no network alias example.com for the origin that Envoy sees"
    );
}

#[test]
fn the_relay_forwards_to_envoy_as_us_east_yaml_expects() {
    let doc = compose();
    let (top, listeners) = relay_toml(&read(&format!("{DIR}/relay.toml")));
    let envoy_listeners = envoy_listeners();
    // The link: the network the relay and Envoy share.
    let relay_nets = map(&service(&doc, "relay")["networks"], "relay networks");
    let envoy_nets = map(&service(&doc, "envoy")["networks"], "envoy networks");
    let shared: Vec<&str> = relay_nets
        .keys()
        .filter(|n| envoy_nets.contains_key(*n))
        .map(|n| text(n, "network"))
        .collect();
    assert_eq!(
        shared.len(),
        1,
        "the relay and Envoy should share one network: {shared:?}"
    );
    let link = shared[0];
    let envoy_ip = address(&doc, "envoy", link);
    let relay_ip = address(&doc, "relay", link);
    assert!(!listeners.is_empty(), "relay.toml has no listener");
    for listener in &listeners {
        let name = &listener["name"];
        let upstreams = &listener["upstreams"];
        let upstream = upstreams.trim_matches(['[', ']']);
        assert!(
            !upstream.contains(','),
            "listener {name}: one upstream expected: {upstreams}"
        );
        let (ip, port) = upstream.trim().rsplit_once(':').expect("IP:port");
        assert_eq!(
            ip.parse::<Ipv4Addr>().ok(),
            Some(envoy_ip),
            "listener {name} upstream"
        );
        let port: u64 = port.parse().expect("port");
        let envoy = envoy_listeners
            .values()
            .find(|l| l.port == port)
            .unwrap_or_else(|| panic!("listener {name}: Envoy has no listener on port {port}"));
        let proxy = listener
            .get("proxy_protocol")
            .or(top.get("defaults.proxy_protocol"));
        let sends_proxy = matches!(proxy.map(String::as_str), Some("v1" | "v2"));
        assert_eq!(
            sends_proxy, envoy.proxy_protocol,
            "listener {name}: the relay's proxy_protocol ({proxy:?}) and Envoy's listener on {port} disagree"
        );
        for ranges in &envoy.relay_ranges {
            assert!(
                ranges.iter().any(|r| r.covers(subnet(&doc, link))),
                "the {link} subnet (the relay is {relay_ip}) is not inside {ranges:?} of Envoy's listener on {port}"
            );
        }
    }
    // The client connects to the relay's address on their network, on the ports it listens on.
    let listen: Vec<&str> = listeners.iter().map(|l| l["listen"].as_str()).collect();
    assert!(
        listen.contains(&"0.0.0.0:443") && listen.contains(&"0.0.0.0:80"),
        "{listen:?}"
    );
    let client = read(&format!("{DIR}/client.sh"));
    let relay_on_china = address(&doc, "relay", "china");
    assert!(
        client.contains(&format!("RELAY=${{RELAY:-{relay_on_china}}}")),
        "client.sh RELAY"
    );
    let metrics = top.get("metrics").expect("relay.toml sets metrics");
    let port = metrics.rsplit_once(':').expect("IP:port").1;
    assert!(
        client.contains(&format!("$RELAY:{port}/metrics")),
        "client.sh metrics URL"
    );
}

#[test]
fn the_relay_config_passes_ferry_relay_check() {
    let doc = compose();
    let relay = service(&doc, "relay");
    let command = words(&relay["command"], "services.relay.command");
    let config = command
        .iter()
        .position(|w| w == "--config")
        .and_then(|i| command.get(i + 1))
        .expect("the relay command names --config");
    let file = mounted_at(&doc, "relay", config, Path::new("/nonexistent-generated"));
    let bin = paths::try_relay_bin().unwrap_or_else(|message| panic!("{message}"));
    let out = Command::new(&bin)
        .args(["--check", "--config"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "ferry-relay --check refuses {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_relay_image_builds_ferry_relay_and_runs_that_binary() {
    let doc = compose();
    let build = &service(&doc, "relay")["build"];
    assert_eq!(
        build["context"].as_str(),
        Some("../.."),
        "the build context is the workspace"
    );
    let dockerfile = text(&build["dockerfile"], "build.dockerfile");
    let steps = instructions(&read(dockerfile));
    let froms: Vec<&str> = steps
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    let (builder, stage) = froms[0].split_once(" AS ").expect("FROM rust:... AS build");
    let rust = builder
        .strip_prefix("rust:")
        .expect("the builder is the official rust image");
    let (version, release) = rust.split_once('-').expect("rust:VERSION-RELEASE");
    let msrv = read("Cargo.toml");
    let msrv = msrv
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let numbers = |v: &str| {
        v.split('.')
            .map(|n| n.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        numbers(version) >= numbers(msrv),
        "rust:{version} is older than rust-version {msrv}"
    );
    assert_eq!(
        froms[1],
        format!("debian:{release}-slim"),
        "runtime: the builder's Debian, slim"
    );

    let runs: Vec<&str> = steps
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    let build_run = runs
        .iter()
        .find(|r| r.contains("cargo build"))
        .expect("a cargo build");
    for flag in ["--release", "--locked", "-p ferry-relay"] {
        assert!(
            build_run.contains(flag),
            "cargo build without {flag}: {build_run}"
        );
    }
    let copy = steps
        .iter()
        .find_map(|(op, a)| {
            (op == "COPY")
                .then_some(a)
                .filter(|a| a.starts_with("--from="))
        })
        .expect("COPY --from the builder");
    let parts: Vec<&str> = copy.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "COPY --from=STAGE SRC DST: {copy}");
    assert_eq!(parts[0], format!("--from={stage}"));
    let (src, dst) = (parts[1], parts[2]);
    // The binary must be copied out of the cargo output by the build RUN itself, and not from a
    // cache mount, which is not part of the builder image.
    let after_build = build_run
        .split("target/release/ferry-relay")
        .nth(1)
        .unwrap_or_default();
    assert!(
        after_build.contains(src),
        "the build RUN does not put the binary at {src}"
    );
    for cache in build_run.split("--mount=type=cache,target=").skip(1) {
        let cache = cache.split_whitespace().next().unwrap();
        assert!(
            !src.starts_with(cache),
            "{src} is in the cache mount {cache}"
        );
    }
    let last = |op: &str| {
        steps
            .iter()
            .rev()
            .find(|(o, _)| o == op)
            .map(|(_, a)| a.clone())
    };
    let user = last("USER").expect("the runtime sets USER");
    assert!(
        user != "root" && !user.starts_with('0'),
        "the relay runs as root: USER {user}"
    );
    let entrypoint: Vec<String> = serde_json::from_str(&last("ENTRYPOINT").expect("ENTRYPOINT"))
        .expect("ENTRYPOINT in exec (JSON) form");
    assert_eq!(entrypoint, [dst], "ENTRYPOINT runs the copied binary");
    let cmd: Vec<String> = serde_json::from_str(&last("CMD").expect("CMD")).expect("CMD as JSON");
    let command = words(&service(&doc, "relay")["command"], "command");
    assert_eq!(
        cmd, command,
        "the image's CMD and the compose command differ"
    );
}

#[test]
fn the_origin_config_and_page_match_what_is_mounted() {
    let doc = compose();
    let targets: Vec<String> = mounts(&doc, "origin")
        .into_iter()
        .map(|m| m.target)
        .collect();
    let nginx = read(&format!("{DIR}/origin/nginx.conf"));
    for directive in ["ssl_certificate", "ssl_certificate_key", "root"] {
        let path = nginx
            .lines()
            .find_map(|l| l.trim().strip_prefix(directive)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("nginx.conf has no {directive}"))
            .trim()
            .trim_end_matches(';');
        assert!(
            targets.iter().any(|t| t == path),
            "nginx.conf {directive} {path} is not mounted"
        );
    }
    // The page's Subresource Integrity hash is the script's: browsers run it from the origin,
    // and the client checks that Ferry drops it on the mirror.
    let html = read(&format!("{DIR}/origin/html/index.html"));
    let script = std::fs::read(root().join(DIR).join("origin/html/app.js")).expect("app.js");
    let digest = ring::digest::digest(&ring::digest::SHA384, &script);
    let expected = format!("integrity=\"sha384-{}\"", base64(digest.as_ref()));
    assert!(html.contains(&expected), "index.html lacks {expected}");
}

#[test]
fn prepare_sh_outputs_pass_envoy_validate_as_compose_mounts_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("generated");
    let wasm = paths::wasm_path();
    let run = Command::new("bash")
        .arg(root().join(DIR).join("prepare.sh"))
        .arg(&out)
        .env("FERRY_WASM", &wasm)
        .env("FERRY_MMDB", env!("CARGO_BIN_EXE_ferry-mmdb"))
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "prepare.sh failed ({}):\n{stderr}",
        run.status
    );
    for output in prepare_outputs() {
        assert!(
            out.join(&output).is_file(),
            "prepare.sh did not make {output}"
        );
    }

    // us-east.yaml with every path it reads replaced by the host file mounted there.
    let doc = compose();
    let mut config = us_east();
    for path in node::file_paths(&config) {
        let host = mounted_at(&doc, "envoy", &path, &out);
        assert!(
            host.is_file(),
            "{path} is mounted from {}, which is no file",
            host.display()
        );
        node::substitute(&mut config, &path, &host.display().to_string());
    }
    let rendered = dir.path().join("us-east.yaml");
    std::fs::write(&rendered, serde_yaml::to_string(&config).unwrap()).expect("write");
    Envoy::validate(&rendered).unwrap_or_else(|err| panic!("{err}"));

    // The client is a visitor from China; the sample networks are there too.
    let db = mounted_at(&doc, "envoy", node::GEOIP_DB, &out);
    let reader = maxminddb::Reader::open_readfile(&db).expect("the database opens");
    let country = |ip: Ipv4Addr| {
        let found = reader.lookup(ip.into()).expect("lookup");
        let record: Option<maxminddb::geoip2::Country> = found.decode().expect("decodes");
        record.and_then(|r| r.country.iso_code.map(str::to_owned))
    };
    let client = address(&doc, "client", "china");
    assert_eq!(
        country(client).as_deref(),
        Some("CN"),
        "the client {client}"
    );
    assert_eq!(
        country(Ipv4Addr::new(8, 8, 8, 8)).as_deref(),
        Some("US"),
        "the sample data"
    );
    // TLS as it happens at run time, which `--mode validate` does not try: the client verifies
    // Envoy's certificates for the names it asks for, and Envoy verifies nginx's for
    // `example.com` (the origin cluster's SNI and subject alternative name).
    let client_ca = mounted_at(&doc, "client", "/ferry/ca.crt", &out);
    let envoy_ca = mounted_at(&doc, "envoy", node::SYSTEM_CA, &out);
    let nginx_cert = mounted_at(&doc, "origin", "/etc/nginx/tls/origin.crt", &out);
    for (cert, ca, name) in [
        (
            mounted_at(&doc, "envoy", node::MIRROR_CERT, &out),
            &client_ca,
            "example.cn",
        ),
        (
            mounted_at(&doc, "envoy", node::ORIGIN_CERT, &out),
            &client_ca,
            "example.com",
        ),
        (nginx_cert, &envoy_ca, "example.com"),
    ] {
        verify_certificate(&cert, ca, name);
    }
    assert!(read(&format!("{DIR}/client.sh")).contains("CA=${CA:-/ferry/ca.crt}"));
}
