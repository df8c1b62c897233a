//! Unit tests of the configuration: table-driven good and bad command lines and files (each
//! bad one must give one line naming the field and the value), the example file, and
//! `parse_duration`.

use super::validate::builtin;
use super::*;
use clap::Parser;
use ferry_net::{Cidr, NetworkSet};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn cidrs(list: &[&str]) -> NetworkSet {
    list.iter().map(|s| s.parse::<Cidr>().unwrap()).collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A listener with the built-in defaults.
fn listener(name: &str, listen: &str, upstreams: &[&str], backups: &[&str]) -> ListenerConfig {
    let mut l = builtin();
    l.name = name.into();
    l.listen = addr(listen);
    l.upstreams = (upstreams.iter().map(|u| (u, false)))
        .chain(backups.iter().map(|u| (u, true)))
        .map(|(u, backup)| UpstreamConfig {
            addr: addr(u),
            backup,
        })
        .collect();
    l
}

fn config(listeners: Vec<ListenerConfig>) -> Config {
    Config {
        listeners,
        metrics: None,
        log_format: LogFormat::Text,
        grace: secs(30),
    }
}

fn from_cli(args: &str) -> Result<Config, ConfigError> {
    let args = std::iter::once("ferry-relay").chain(args.split_whitespace());
    let cli = Cli::try_parse_from(args).map_err(|e| ConfigError::Rule {
        at: "clap: ".into(),
        message: e.to_string(),
    })?;
    Config::from_args(&cli)
}

fn from_toml(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("relay.toml"))
}

/// `input` gave one listener `name` on 0.0.0.0:443 to 10.1.0.5:443, with defaults
/// everywhere else, changed by `edit`.
fn assert_gives(
    input: &str,
    result: Result<Config, ConfigError>,
    name: &str,
    edit: fn(&mut Config),
) {
    let mut want = config(vec![listener(name, "0.0.0.0:443", &["10.1.0.5:443"], &[])]);
    edit(&mut want);
    match result {
        Ok(got) => assert_eq!(got, want, "{input}"),
        Err(e) => panic!("{input}: {e}"),
    }
}

/// `input` was refused with one line that contains `want`.
fn assert_refused(input: &str, result: Result<Config, ConfigError>, want: &str) {
    match result {
        Ok(c) => panic!("{input}: accepted as {c:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(want), "{input}:\n got {msg}\nwant {want}");
            assert!(!msg.contains('\n'), "{input}: more than one line: {msg}");
        }
    }
}

const BASE: &str = "--listen 0.0.0.0:443 --upstream 10.1.0.5:443";

#[test]
fn good_command_lines_give_these_values() {
    type Edit = fn(&mut Config);
    let cases: Vec<(String, Edit)> = vec![
        (BASE.into(), |_| {}),
        (
            "--listen 0.0.0.0:443 --upstream 10.1.0.5:443 --upstream 10.1.0.6:443 \
                 --backup 10.2.0.5:443 --proxy-protocol v2 --metrics 127.0.0.1:9090"
                .into(),
            |c| {
                c.listeners[0] = listener(
                    "default",
                    "0.0.0.0:443",
                    &["10.1.0.5:443", "10.1.0.6:443"],
                    &["10.2.0.5:443"],
                );
                c.listeners[0].proxy_protocol = ProxyVersion::V2;
                c.metrics = Some(addr("127.0.0.1:9090"));
            },
        ),
        (
            "--listen [::]:443 --upstream [2001:db8::5]:443,10.1.0.6:443 --name https".into(),
            |c| {
                c.listeners[0] = listener(
                    "https",
                    "[::]:443",
                    &["[2001:db8::5]:443", "10.1.0.6:443"],
                    &[],
                );
            },
        ),
        (
            format!("{BASE} --proxy-protocol v1 --balance least-conn"),
            |c| {
                c.listeners[0].proxy_protocol = ProxyVersion::V1;
                c.listeners[0].balance = Balance::LeastConnections;
            },
        ),
        (
            format!("{BASE} --proxy-protocol none --balance round-robin"),
            |_| {},
        ),
        (
            format!("{BASE} --max-connections 10000 --max-per-ip 100"),
            |c| {
                c.listeners[0].max_connections = Some(10000);
                c.listeners[0].max_per_ip = Some(100);
            },
        ),
        (format!("{BASE} --max-connections unlimited"), |_| {}),
        (
            format!(
                "{BASE} --allow 10.0.0.0/8,192.168.0.0/16 --allow ::ffff:172.16.0.0/108 \
                     --deny 10.9.0.0/16 --accept-proxy-from 10.0.0.5"
            ),
            |c| {
                let l = &mut c.listeners[0];
                l.allow = cidrs(&["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"]);
                l.deny = cidrs(&["10.9.0.0/16"]);
                l.accept_proxy_from = cidrs(&["10.0.0.5/32"]);
            },
        ),
        (
            format!(
                "{BASE} --connect-timeout 250ms --idle-timeout 1h --half-close-timeout 1m30s \
                     --proxy-header-timeout 2s --keepalive off --no-nodelay --no-splice"
            ),
            |c| {
                let l = &mut c.listeners[0];
                l.connect_timeout = Duration::from_millis(250);
                l.idle_timeout = secs(3600);
                l.half_close_timeout = secs(90);
                l.proxy_header_timeout = secs(2);
                l.keepalive = None;
                l.nodelay = false;
                l.splice = false;
            },
        ),
        (format!("{BASE} --keepalive 2h"), |c| {
            c.listeners[0].keepalive = Some(secs(7200));
        }),
        (
            format!(
                "{BASE} --health-interval 500ms --health-rise 1 --health-fall 5 \
                     --grace 0s --log-format json"
            ),
            |c| {
                let h = &mut c.listeners[0].health;
                h.interval = Duration::from_millis(500);
                // The default 1s timeout follows a shorter interval down.
                h.timeout = Duration::from_millis(500);
                h.rise = 1;
                h.fall = 5;
                c.grace = Duration::ZERO;
                c.log_format = LogFormat::Json;
            },
        ),
        (
            format!("{BASE} --health-interval 10s --health-timeout 10s"),
            |c| {
                c.listeners[0].health.interval = secs(10);
                c.listeners[0].health.timeout = secs(10);
            },
        ),
        // Port 0: the kernel picks (tests).
        ("--listen 127.0.0.1:0 --upstream 127.0.0.1:1".into(), |c| {
            c.listeners[0] = listener("default", "127.0.0.1:0", &["127.0.0.1:1"], &[]);
        }),
    ];
    for (args, edit) in cases {
        assert_gives(&args, from_cli(&args), "default", edit);
    }
}

#[test]
fn bad_command_lines_get_one_line_naming_the_flag_and_value() {
    let cases = [
        ("", "--listen is required, or --config FILE"),
        ("--upstream 10.1.0.5:443", "--listen is required, or --config FILE"),
        ("--listen 0.0.0.0:443", "--upstream is required (at least one)"),
        (
            "--listen 0.0.0.0 --upstream 10.1.0.5:443",
            "--listen 0.0.0.0 is not valid: missing port",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 10.1.0.5",
            "--upstream 10.1.0.5 is not valid: missing port",
        ),
        (
            "--listen 0.0.0.0:443 --upstream envoy.internal:443",
            "--upstream envoy.internal:443 is not valid: expected IP:port (host names are not resolved)",
        ),
        (
            "--listen 0.0.0.0:443 --upstream ::1:443",
            "--upstream ::1:443 is not valid: missing port (write IPv6 as [addr]:port)",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 10.1.0.5:70000",
            "--upstream 10.1.0.5:70000 is not valid: port 70000 is over 65535",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 10.1.0.5:https",
            "--upstream 10.1.0.5:https is not valid: port \"https\" is not a number",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 10.1.0.5:0",
            "--upstream 10.1.0.5:0 is not valid: port 0 cannot be connected to",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 0.0.0.0:443",
            "--upstream 0.0.0.0:443 is not valid: 0.0.0.0 cannot be connected to",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 10.1.0.5:443 --backup 10.1.0.5:443",
            "--backup 10.1.0.5:443 is not valid: listed twice",
        ),
        (
            "--listen 127.0.0.1:8443 --upstream 127.0.0.1:8443",
            "--upstream 127.0.0.1:8443 is not valid: it is the listen address of listener \"default\"",
        ),
        (
            "--max-connections 0",
            "--max-connections 0 is not valid: must be greater than zero",
        ),
        ("--max-per-ip -3", "--max-per-ip -3 is not valid: must be greater than zero"),
        ("--max-per-ip ten", "--max-per-ip ten is not valid: expected a whole number"),
        (
            "--max-connections 99999999999999999999",
            "--max-connections 99999999999999999999 is not valid: too large",
        ),
        ("--proxy-protocol v3", "--proxy-protocol v3 is not valid: expected none, v1, v2"),
        (
            "--balance leastconn",
            "--balance leastconn is not valid: expected round-robin, least-conn",
        ),
        ("--allow 10.0.0.0/33", "--allow 10.0.0.0/33 is not valid: prefix length 33 is over 32"),
        (
            "--deny 10.1.0.0/8",
            "--deny 10.1.0.0/8 is not valid: host bits are set (the network is 10.0.0.0/8)",
        ),
        (
            "--accept-proxy-from 0.0.0.0/0",
            "--accept-proxy-from 0.0.0.0/0 is not valid: it would let any client choose its address",
        ),
        ("--accept-proxy-from ::/0", "--accept-proxy-from ::/0 is not valid"),
        ("--connect-timeout 0s", "--connect-timeout 0s is not valid: must be greater than zero"),
        ("--idle-timeout 10", "--idle-timeout 10 is not valid: missing unit"),
        ("--half-close-timeout 5x", "--half-close-timeout 5x is not valid: unknown unit \"x\""),
        (
            "--proxy-header-timeout 1.5s",
            "--proxy-header-timeout 1.5s is not valid: use whole numbers (1500ms, not 1.5s)",
        ),
        ("--connect-timeout s", "--connect-timeout s is not valid: expected a number before \"s\""),
        (
            "--connect-timeout 99999999999d",
            "--connect-timeout 99999999999d is not valid: too large",
        ),
        ("--keepalive 100ms", "--keepalive 100ms is not valid: must be from 1s to 32767s"),
        ("--keepalive 10h", "--keepalive 10h is not valid: must be from 1s to 32767s"),
        ("--health-rise 0", "--health-rise 0 is not valid: must be greater than zero"),
        ("--health-fall 5000000000", "--health-fall 5000000000 is not valid: too large"),
        ("--health-interval 0ms", "--health-interval 0ms is not valid: must be greater than zero"),
        (
            "--health-interval 1s --health-timeout 2s",
            "--health-timeout 2s is not valid: must not exceed --health-interval (1s)",
        ),
        ("--metrics 127.0.0.1", "--metrics 127.0.0.1 is not valid: missing port"),
        ("--metrics localhost:9090", "--metrics localhost:9090 is not valid: expected IP:port"),
        ("--log-format yaml", "--log-format yaml is not valid: expected text, json"),
        ("--grace forever", "--grace forever is not valid: expected a number before \"forever\""),
        ("--name a/b", "--name a/b is not valid: only letters, digits"),
        (
            "--config relay.toml --upstream 10.1.0.5:443",
            "--upstream cannot be used with --config: listener settings go in the file",
        ),
        ("--config relay.toml --no-splice", "--no-splice cannot be used with --config"),
        ("--config /nonexistent/relay.toml", "cannot read /nonexistent/relay.toml: "),
    ];
    for (args, want) in cases {
        // A case that sets no --listen (nor --config) gets the valid base listener, so
        // that each case is wrong in one way only; the first two cases stand alone.
        let stands_alone = ["", "--upstream 10.1.0.5:443"].contains(&args);
        let args = if stands_alone || args.contains("--listen") || args.contains("--config") {
            args.to_owned()
        } else {
            format!("{BASE} {args}")
        };
        assert_refused(&args, from_cli(&args), want);
    }
}

#[test]
fn the_example_file_parses() {
    let c = from_toml(include_str!("../../relay.example.toml")).unwrap();
    assert_eq!(c.metrics, Some(addr("127.0.0.1:9090")));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.grace, secs(30));
    let [https, http] = &c.listeners[..] else {
        panic!("two listeners: {c:?}")
    };
    let mut want = listener(
        "https",
        "0.0.0.0:443",
        &["10.1.0.5:443", "10.1.0.6:443"],
        &["10.2.0.5:443"],
    );
    want.proxy_protocol = ProxyVersion::V2;
    want.balance = Balance::LeastConnections;
    want.max_connections = Some(20000);
    want.max_per_ip = Some(256);
    want.deny = cidrs(&["198.51.100.0/24"]);
    want.accept_proxy_from = cidrs(&["10.0.0.0/28"]);
    assert_eq!(https, &want);

    let mut want = listener("http", "0.0.0.0:80", &["10.1.0.5:80", "10.1.0.6:80"], &[]);
    want.proxy_protocol = ProxyVersion::V2;
    want.max_connections = Some(5000);
    want.idle_timeout = secs(120);
    want.health.interval = secs(5);
    assert_eq!(http, &want);
}

#[test]
fn config_flag_reads_the_file_and_global_flags_override_it() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/relay.example.toml");
    let c = from_cli(&format!("--config {path}")).unwrap();
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.metrics, Some(addr("127.0.0.1:9090")));

    let c = from_cli(&format!(
        "--config {path} --metrics 127.0.0.1:9191 --log-format text --grace 5s"
    ))
    .unwrap();
    assert_eq!(c.metrics, Some(addr("127.0.0.1:9191")));
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.grace, secs(5));
    assert_eq!(c.listeners.len(), 2);

    let e = from_cli(&format!("--config {path} --grace 5")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--grace 5 is not valid: missing unit (use ms, s, m, h or d)"
    );
}

const ONE: &str = r#"
        [[listener]]
        name = "https"
        listen = "0.0.0.0:443"
        upstreams = ["10.1.0.5:443"]
    "#;

#[test]
fn good_files_give_these_values() {
    type Edit = fn(&mut Config);
    let cases: Vec<(String, Edit)> = vec![
        (ONE.into(), |_| {}),
        (
            format!("metrics = \"[::1]:9090\"\nlog_format = \"text\"\ngrace = \"1m\"\n{ONE}"),
            |c| {
                c.metrics = Some(addr("[::1]:9090"));
                c.grace = secs(60);
            },
        ),
        // Defaults apply; a listener's own value wins; lists are replaced; health merges.
        (
            format!(
                r#"
                    [defaults]
                    proxy_protocol = "v1"
                    connect_timeout = "2s"
                    allow = ["10.0.0.0/8"]
                    keepalive = false
                    health = {{ rise = 4, timeout = "500ms" }}
                    {ONE}
                    connect_timeout = "3s"
                    allow = []
                    health = {{ fall = 1 }}
                    [[listener]]
                    name = "http"
                    listen = "0.0.0.0:80"
                    upstreams = ["10.1.0.5:80"]
                    backups = ["10.2.0.5:80"]
                    keepalive = true
                    "#
            ),
            |c| {
                let l = &mut c.listeners[0];
                l.proxy_protocol = ProxyVersion::V1;
                l.connect_timeout = secs(3);
                l.keepalive = None;
                l.health.rise = 4;
                l.health.timeout = Duration::from_millis(500);
                l.health.fall = 1;
                let mut http = listener("http", "0.0.0.0:80", &["10.1.0.5:80"], &["10.2.0.5:80"]);
                http.proxy_protocol = ProxyVersion::V1;
                http.connect_timeout = secs(2);
                http.allow = cidrs(&["10.0.0.0/8"]);
                http.health.rise = 4;
                http.health.timeout = Duration::from_millis(500);
                c.listeners.push(http);
            },
        ),
        (
            format!(
                "{ONE}max_connections = \"100\"\nmax_per_ip = 7\nnodelay = false\n\
                     splice = false\nkeepalive = \"off\"\nbalance = \"least-conn\"\n"
            ),
            |c| {
                let l = &mut c.listeners[0];
                l.max_connections = Some(100);
                l.max_per_ip = Some(7);
                l.nodelay = false;
                l.splice = false;
                l.keepalive = None;
                l.balance = Balance::LeastConnections;
            },
        ),
        // Two listeners on port 0 are not a clash: the kernel gives each its own port.
        (
            r#"
                [[listener]]
                name = "a"
                listen = "127.0.0.1:0"
                upstreams = ["127.0.0.1:1"]
                [[listener]]
                name = "b"
                listen = "127.0.0.1:0"
                upstreams = ["127.0.0.1:1"]
                "#
            .into(),
            |c| {
                c.listeners[0] = listener("a", "127.0.0.1:0", &["127.0.0.1:1"], &[]);
                c.listeners
                    .push(listener("b", "127.0.0.1:0", &["127.0.0.1:1"], &[]));
            },
        ),
    ];
    for (text, edit) in cases {
        assert_gives(&text, from_toml(&text), "https", edit);
    }
}

/// A `[[listener]]` table with these lines.
fn table(lines: &[&str]) -> String {
    format!("[[listener]]\n{}\n", lines.join("\n"))
}

#[test]
fn bad_files_get_one_line_naming_the_field_and_value() {
    let with = |extra: &str| format!("{ONE}{extra}\n");
    let name_x = r#"name = "x""#;
    let listen_443 = r#"listen = "0.0.0.0:443""#;
    let cases = [
        (
            String::new(),
            "relay.toml: no listener: add a [[listener]] table",
        ),
        (r#"grace = "30s""#.into(), "relay.toml: no listener"),
        (
            with(r#"conect_timeout = "5s""#),
            "relay.toml:6:5: unknown field `conect_timeout`, expected one of",
        ),
        (
            format!("colour = 1\n{ONE}"),
            "relay.toml:1:1: unknown field `colour`",
        ),
        (with("[listener.health]\nrate = 1"), "unknown field `rate`"),
        (with(r#"upstreams = ["10.1.0.6:443"]"#), "relay.toml:6"),
        (
            with("idle_timeout = 1.5"),
            "invalid type: floating point `1.5`",
        ),
        (
            table(&[listen_443]),
            "relay.toml: listener #1: name is missing",
        ),
        (
            table(&[name_x, r#"upstreams = ["10.1.0.5:443"]"#]),
            r#"relay.toml: listener "x": listen is missing"#,
        ),
        (
            table(&[name_x, listen_443]),
            r#"relay.toml: listener "x": upstreams is missing"#,
        ),
        (
            table(&[
                name_x,
                listen_443,
                "upstreams = []",
                r#"backups = ["10.1.0.5:443"]"#,
            ]),
            r#"relay.toml: listener "x": upstreams is empty: at least one is required"#,
        ),
        (
            table(&[r#"name = "x y""#, listen_443]),
            r#"relay.toml: listener #1: name "x y" is not valid: only letters"#,
        ),
        (
            table(&["name = 443", listen_443]),
            "relay.toml: listener #1: name 443 is not valid: expected a string",
        ),
        (
            table(&[name_x, listen_443, r#"upstreams = ["10.1.0.5"]"#]),
            r#"relay.toml: listener "x": upstream "10.1.0.5" is not valid: missing port"#,
        ),
        (
            ONE.to_owned() + &table(&[r#"name = "https""#, r#"listen = "0.0.0.0:80""#]),
            r#"relay.toml: listener #2: name "https" is not valid: already used by listener #1"#,
        ),
        (
            ONE.to_owned() + &table(&[r#"name = "b""#, listen_443]),
            r#"relay.toml: listener "b": listen "0.0.0.0:443" is not valid: already used by listener "https""#,
        ),
        (
            table(&[
                r#"name = "b""#,
                r#"listen = "127.0.0.1:8443""#,
                r#"upstreams = ["10.1.0.5:443"]"#,
            ]) + &table(&[
                r#"name = "c""#,
                r#"listen = "127.0.0.1:9443""#,
                r#"upstreams = ["10.1.0.5:443"]"#,
                r#"backups = ["127.0.0.1:8443"]"#,
            ]),
            r#"relay.toml: listener "c": backup "127.0.0.1:8443" is not valid: it is the listen address of listener "b""#,
        ),
        (
            with("max_connections = 0"),
            r#"relay.toml: listener "https": max_connections 0 is not valid: must be greater than zero"#,
        ),
        (
            with("max_per_ip = true"),
            r#"listener "https": max_per_ip true is not valid: expected a whole number"#,
        ),
        (
            with("connect_timeout = 5"),
            r#"listener "https": connect_timeout 5 is not valid: expected a string such as "5s""#,
        ),
        (
            with(r#"idle_timeout = "0ms""#),
            r#"listener "https": idle_timeout "0ms" is not valid: must be greater than zero"#,
        ),
        (
            with(r#"nodelay = "yes""#),
            r#"listener "https": nodelay "yes" is not valid: expected true or false"#,
        ),
        (
            with("keepalive = 60"),
            r#"listener "https": keepalive 60 is not valid: expected a string such as "5s""#,
        ),
        (
            with("proxy_protocol = 2"),
            r#"listener "https": proxy_protocol 2 is not valid: expected a string"#,
        ),
        (
            with(r#"allow = ["10.0.0.0/8", "10.0.0.1/8"]"#),
            r#"listener "https": allow "10.0.0.1/8" is not valid: host bits are set"#,
        ),
        (
            with(r#"deny = ["bad"]"#),
            r#"listener "https": deny "bad" is not valid: not an IP address"#,
        ),
        (
            with(r#"accept_proxy_from = ["10.0.0.0/24", "::/0"]"#),
            r#"listener "https": accept_proxy_from "::/0" is not valid: it would let any client"#,
        ),
        (
            with(r#"health = { interval = "1s", timeout = "2s" }"#),
            r#"health.timeout "2s" is not valid: must not exceed health.interval (1s)"#,
        ),
        (
            with("health = { rise = 0 }"),
            r#"listener "https": health.rise 0 is not valid: must be greater than zero"#,
        ),
        (
            format!("[defaults]\nidle_timeout = \"10\"\n{ONE}"),
            r#"relay.toml: defaults: idle_timeout "10" is not valid: missing unit"#,
        ),
        (
            format!("[defaults]\n{listen_443}\n{ONE}"),
            "relay.toml: defaults: listen belongs in each [[listener]], not here",
        ),
        (
            format!("metrics = \"127.0.0.1\"\n{ONE}"),
            r#"relay.toml: metrics "127.0.0.1" is not valid: missing port"#,
        ),
        (
            format!("log_format = \"JSON\"\n{ONE}"),
            r#"relay.toml: log_format "JSON" is not valid: expected text, json"#,
        ),
        ("[[listener]\n".into(), "relay.toml:1:"),
        (
            "listener = 5".into(),
            "relay.toml:1:12: invalid type: integer `5`",
        ),
    ];
    for (text, want) in cases {
        assert_refused(&text, from_toml(&text), want);
    }
}

#[test]
fn the_flag_definitions_are_consistent() {
    <Cli as clap::CommandFactory>::command().debug_assert();
}

#[test]
fn durations_parse_with_units() {
    let good = [
        ("250ms", Duration::from_millis(250)),
        ("5s", secs(5)),
        ("10m", secs(600)),
        ("2h", secs(7200)),
        ("1d", secs(86400)),
        ("1m30s", secs(90)),
        ("0s", Duration::ZERO),
        ("1s500ms", Duration::from_millis(1500)),
    ];
    for (text, want) in good {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    let bad = [
        ("", "empty duration"),
        ("5", "missing unit (use ms, s, m, h or d)"),
        ("5sec", "unknown unit \"sec\" (use ms, s, m, h or d)"),
        ("5S", "unknown unit \"S\" (use ms, s, m, h or d)"),
        ("-5s", "expected a number before \"-5s\""),
        ("5 s", "unexpected \" s\""),
        (" 5s", "expected a number before \" 5s\""),
        ("1.5s", "use whole numbers (1500ms, not 1.5s)"),
        ("4294967296s", "too large"),
    ];
    for (text, want) in bad {
        assert_eq!(parse_duration(text), Err(want.to_string()), "{text}");
    }
}

/// The one rule for networks (`ferry_net::cases`), through the relay's command line: `--allow`
/// admits exactly the addresses the network contains, and a refused network is one line naming
/// the flag, the value and the reason.
#[test]
fn the_shared_network_rules_through_the_command_line() {
    for (network, ip, inside) in ferry_net::cases::CONTAINS {
        let config = from_cli(&format!(
            "--listen 0.0.0.0:443 --upstream 10.1.0.5:443 --allow {network}"
        ))
        .unwrap_or_else(|e| panic!("--allow {network}: {e}"));
        let ip: std::net::IpAddr = ip.parse().unwrap();
        assert_eq!(
            config.listeners[0].allow.contains(ip),
            *inside,
            "--allow {network} admits {ip}"
        );
    }
    for (network, reason) in ferry_net::cases::REFUSED {
        if network.is_empty() || network.contains(' ') {
            // Not one command-line word (the helper splits at white space); the file form
            // takes them, below.
            continue;
        }
        let err = from_cli(&format!(
            "--listen 0.0.0.0:443 --upstream 10.1.0.5:443 --allow {network}"
        ))
        .expect_err(network)
        .to_string();
        assert_eq!(err, format!("--allow {network} is not valid: {reason}"));
    }
    for (network, reason) in ferry_net::cases::REFUSED {
        let text = format!(
            "[[listener]]\nname = \"a\"\nlisten = \"0.0.0.0:443\"\nupstreams = [\"10.1.0.5:443\"]\nallow = [{}]\n",
            toml::Value::from(*network)
        );
        let err = from_toml(&text).expect_err(network).to_string();
        assert!(
            err.ends_with(&format!("is not valid: {reason}")),
            "{network:?}: {err}"
        );
    }
}
