//! Unit tests of the configuration: table-driven good and bad command lines and files (each
//! bad one must give one line naming the field and the value, and a value out of its range
//! names the range), the `--config` file's bounds, the listener that would forward to itself
//! (against a made-up host), the example file, and `parse_duration` / `parse_size`.

use std::ffi::OsString;
use std::net::IpAddr;

use super::host::accepts;
use super::validate::builtin;
use super::*;
use clap::Parser;
use ferry_net::{Cidr, NetworkSet};

/// The host the tests run against: loopback, one IPv4 and one IPv6 interface address.
fn host() -> HostAddrs {
    HostAddrs::new(["10.0.0.7", "2001:db8::7"].map(|ip| ip.parse::<IpAddr>().unwrap()))
}

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

/// The configuration of a command line (split at white space), as the binary reads it: a
/// flag error of clap's is the line the binary prints.
fn from_cli(args: &str) -> Result<Config, ConfigError> {
    let args: Vec<OsString> = std::iter::once("ferry-relay")
        .chain(args.split_whitespace())
        .map(OsString::from)
        .collect();
    let cli = Cli::try_parse_from(&args).map_err(|e| ConfigError::Rule {
        at: String::new(),
        message: flag_error(&e, &args),
    })?;
    Config::from_args(&cli, &host())
}

fn from_toml(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("relay.toml"), &host())
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
        // The ends of each range are in it.
        (
            format!(
                "{BASE} --connect-timeout 10ms --idle-timeout 1s --half-close-timeout 1d \
                     --proxy-header-timeout 100ms --health-interval 100ms --health-timeout 10ms \
                     --health-rise 100 --health-fall 1 --max-connections 1000000 \
                     --max-per-ip 1 --keepalive 1s --grace 1d --pipe-size 4096"
            ),
            |c| {
                let l = &mut c.listeners[0];
                l.connect_timeout = Duration::from_millis(10);
                l.idle_timeout = secs(1);
                l.half_close_timeout = secs(86400);
                l.proxy_header_timeout = Duration::from_millis(100);
                l.health.interval = Duration::from_millis(100);
                l.health.timeout = Duration::from_millis(10);
                l.health.rise = 100;
                l.health.fall = 1;
                l.max_connections = Some(1_000_000);
                l.max_per_ip = Some(1);
                l.keepalive = Some(secs(1));
                l.pipe_size = Some(4096);
                c.grace = secs(86400);
            },
        ),
        (
            format!(
                "{BASE} --connect-timeout 5m --idle-timeout 1d --half-close-timeout 1s \
                     --proxy-header-timeout 5m --health-interval 1d --health-timeout 1d \
                     --max-per-ip 1000000 --keepalive 32767s --pipe-size 1MiB"
            ),
            |c| {
                let l = &mut c.listeners[0];
                l.connect_timeout = secs(300);
                l.idle_timeout = secs(86400);
                l.half_close_timeout = secs(1);
                l.proxy_header_timeout = secs(300);
                l.health.interval = secs(86400);
                l.health.timeout = secs(86400);
                l.max_per_ip = Some(1_000_000);
                l.keepalive = Some(secs(32767));
                l.pipe_size = Some(1 << 20);
            },
        ),
        (format!("{BASE} --pipe-size 128KiB"), |c| {
            c.listeners[0].pipe_size = Some(128 << 10);
        }),
        (format!("{BASE} --pipe-size 65536"), |c| {
            c.listeners[0].pipe_size = Some(65536);
        }),
        // Addresses of this host that no listener of ours accepts: another port; a listener
        // bound to one address and an upstream on another; the IPv4 wildcard and IPv6.
        (
            "--listen 0.0.0.0:443 --upstream 127.0.0.1:8443".into(),
            |c| {
                c.listeners[0] = listener("default", "0.0.0.0:443", &["127.0.0.1:8443"], &[]);
            },
        ),
        (
            "--listen 127.0.0.1:443 --upstream 10.0.0.7:443".into(),
            |c| {
                c.listeners[0] = listener("default", "127.0.0.1:443", &["10.0.0.7:443"], &[]);
            },
        ),
        (
            "--listen 10.0.0.7:443 --upstream 127.0.0.2:443".into(),
            |c| {
                c.listeners[0] = listener("default", "10.0.0.7:443", &["127.0.0.2:443"], &[]);
            },
        ),
        ("--listen 0.0.0.0:443 --upstream [::1]:443".into(), |c| {
            c.listeners[0] = listener("default", "0.0.0.0:443", &["[::1]:443"], &[]);
        }),
        // An address of another host, on the listener's port (the usual case).
        ("--listen [::]:443 --upstream 10.0.0.8:443".into(), |c| {
            c.listeners[0] = listener("default", "[::]:443", &["10.0.0.8:443"], &[]);
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
            "--upstream 127.0.0.1:8443 is not valid: it is the listen address of listener \"default\": it would forward to itself",
        ),
        (
            "--max-connections 0",
            "--max-connections 0 is not valid: must be from 1 to 1000000, or unlimited",
        ),
        (
            "--max-connections 1000001",
            "--max-connections 1000001 is not valid: must be from 1 to 1000000, or unlimited",
        ),
        (
            "--max-per-ip -3",
            "--max-per-ip -3 is not valid: must be from 1 to 1000000, or unlimited",
        ),
        ("--max-per-ip ten", "--max-per-ip ten is not valid: expected a whole number"),
        (
            "--max-connections 99999999999999999999",
            "--max-connections 99999999999999999999 is not valid: must be from 1 to 1000000",
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
        ("--connect-timeout 0s", "--connect-timeout 0s is not valid: must be from 10ms to 5m"),
        ("--connect-timeout 9ms", "--connect-timeout 9ms is not valid: must be from 10ms to 5m"),
        ("--connect-timeout 1h", "--connect-timeout 1h is not valid: must be from 10ms to 5m"),
        ("--idle-timeout 999ms", "--idle-timeout 999ms is not valid: must be from 1s to 1d"),
        ("--idle-timeout 1d1ms", "--idle-timeout 1d1ms is not valid: must be from 1s to 1d"),
        (
            "--half-close-timeout 500ms",
            "--half-close-timeout 500ms is not valid: must be from 1s to 1d",
        ),
        ("--half-close-timeout 7d", "--half-close-timeout 7d is not valid: must be from 1s to 1d"),
        (
            "--proxy-header-timeout 99ms",
            "--proxy-header-timeout 99ms is not valid: must be from 100ms to 5m",
        ),
        (
            "--proxy-header-timeout 5m1s",
            "--proxy-header-timeout 5m1s is not valid: must be from 100ms to 5m",
        ),
        ("--idle-timeout 10", "--idle-timeout 10 is not valid: missing unit"),
        ("--half-close-timeout 5x", "--half-close-timeout 5x is not valid: unknown unit \"x\""),
        (
            "--proxy-header-timeout 1.5s",
            "--proxy-header-timeout 1.5s is not valid: use whole numbers (1500ms, not 1.5s)",
        ),
        ("--connect-timeout s", "--connect-timeout s is not valid: expected a number before \"s\""),
        (
            "--connect-timeout 99999999999d",
            "--connect-timeout 99999999999d is not valid: must be from 10ms to 5m",
        ),
        ("--keepalive 100ms", "--keepalive 100ms is not valid: must be from 1s to 32767s"),
        ("--keepalive 10h", "--keepalive 10h is not valid: must be from 1s to 32767s"),
        ("--keepalive 0s", "--keepalive 0s is not valid: must be from 1s to 32767s"),
        ("--health-rise 0", "--health-rise 0 is not valid: must be from 1 to 100"),
        ("--health-rise 101", "--health-rise 101 is not valid: must be from 1 to 100"),
        ("--health-fall 5000000000", "--health-fall 5000000000 is not valid: must be from 1 to 100"),
        ("--health-interval 0ms", "--health-interval 0ms is not valid: must be from 100ms to 1d"),
        ("--health-interval 1ms", "--health-interval 1ms is not valid: must be from 100ms to 1d"),
        ("--health-interval 99ms", "--health-interval 99ms is not valid: must be from 100ms to 1d"),
        ("--health-interval 1d1s", "--health-interval 1d1s is not valid: must be from 100ms to 1d"),
        ("--health-timeout 9ms", "--health-timeout 9ms is not valid: must be from 10ms to 1d"),
        ("--grace 1d1ms", "--grace 1d1ms is not valid: must be at most 1d"),
        (
            "--pipe-size 4095",
            "--pipe-size 4095 is not valid: must be from 4KiB to 1MiB (a page to the kernel's default fs.pipe-max-size)",
        ),
        ("--pipe-size 1048577", "--pipe-size 1048577 is not valid: must be from 4KiB to 1MiB"),
        ("--pipe-size 2MiB", "--pipe-size 2MiB is not valid: must be from 4KiB to 1MiB"),
        ("--pipe-size 0", "--pipe-size 0 is not valid: must be from 4KiB to 1MiB"),
        ("--pipe-size -1", "--pipe-size -1 is not valid: must be from 4KiB to 1MiB"),
        (
            "--pipe-size 99999999999999999999MiB",
            "--pipe-size 99999999999999999999MiB is not valid: must be from 4KiB to 1MiB",
        ),
        (
            "--pipe-size 64KB",
            "--pipe-size 64KB is not valid: unknown unit \"KB\" (use KiB, MiB, or none for bytes)",
        ),
        ("--pipe-size 64k", "--pipe-size 64k is not valid: unknown unit \"k\""),
        (
            "--pipe-size 1.5MiB",
            "--pipe-size 1.5MiB is not valid: use whole numbers (1536KiB, not 1.5MiB)",
        ),
        ("--pipe-size big", "--pipe-size big is not valid: expected a number before \"big\""),
        // A listener that would forward to itself: any address of this host (loopback, an
        // interface's, IPv4-mapped) on the port of a listener on the wildcard.
        (
            "--listen 0.0.0.0:443 --upstream 127.0.0.1:443",
            "--upstream 127.0.0.1:443 is not valid: it is an address of this host, and listener \"default\" listens on 0.0.0.0:443: it would forward to itself",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 127.0.0.2:443",
            "--upstream 127.0.0.2:443 is not valid: it is an address of this host",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 10.0.0.7:443",
            "--upstream 10.0.0.7:443 is not valid: it is an address of this host",
        ),
        (
            "--listen 0.0.0.0:443 --upstream [::ffff:127.0.0.1]:443",
            "--upstream [::ffff:127.0.0.1]:443 is not valid: it is an address of this host",
        ),
        (
            "--listen [::]:443 --upstream 127.0.0.1:443",
            "--upstream 127.0.0.1:443 is not valid: it is an address of this host, and listener \"default\" listens on [::]:443",
        ),
        (
            "--listen [::]:443 --upstream [::1]:443",
            "--upstream [::1]:443 is not valid: it is an address of this host",
        ),
        (
            "--listen [::]:443 --upstream [2001:db8::7]:443",
            "--upstream [2001:db8::7]:443 is not valid: it is an address of this host",
        ),
        (
            "--listen 0.0.0.0:443 --upstream 10.1.0.5:443 --backup 10.0.0.7:443",
            "--backup 10.0.0.7:443 is not valid: it is an address of this host",
        ),
        (
            "--listen 10.0.0.7:443 --upstream 10.0.0.7:443",
            "--upstream 10.0.0.7:443 is not valid: it is the listen address of listener \"default\": it would forward to itself",
        ),
        // Clap's own errors: one line, as the binary prints them.
        ("--bogus", "unexpected argument '--bogus' found"),
        ("--gracee 5s", "unexpected argument '--gracee' found (did you mean '--grace'?)"),
        (
            "--grace -1s",
            "--grace -1s is not valid: a value that starts with '-' is read as a flag; write --grace=-1s",
        ),
        ("--grace=-1s", "--grace -1s is not valid: expected a number before \"-1s\""),
        ("--grace", "a value is required for '--grace <DURATION>' but none was supplied"),
        ("check", "unexpected argument 'check' found"),
        ("--check=yes", "unexpected value 'yes' for '--check' found"),
        ("--grace 1s --grace 2s", "the argument '--grace <DURATION>' cannot be used multiple times"),
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
    want.warm = 8;
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

/// The pipe size is measured, not the kernel's: 256 KiB from the flags and from a file alike.
#[test]
fn pipes_are_256_kib_unless_configured() {
    let flags = from_cli(BASE).unwrap();
    assert_eq!(flags.listeners[0].pipe_size, Some(256 << 10));
    let file = from_toml(ONE).unwrap();
    assert_eq!(file.listeners[0].pipe_size, Some(256 << 10));
}

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
        // pipe_size: bytes or KiB/MiB, inherited from [defaults] and replaced by a listener.
        (
            format!(
                "[defaults]\npipe_size = \"1MiB\"\n{ONE}pipe_size = 65536\n\
                 [[listener]]\nname = \"http\"\nlisten = \"0.0.0.0:80\"\n\
                 upstreams = [\"10.1.0.5:80\"]\n"
            ),
            |c| {
                c.listeners[0].pipe_size = Some(65536);
                let mut http = listener("http", "0.0.0.0:80", &["10.1.0.5:80"], &[]);
                http.pipe_size = Some(1 << 20);
                c.listeners.push(http);
            },
        ),
        (format!("{ONE}pipe_size = \"128KiB\"\n"), |c| {
            c.listeners[0].pipe_size = Some(128 << 10);
        }),
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
        // Through another listener of ours, on the wildcard.
        (
            table(&[
                r#"name = "a""#,
                r#"listen = "0.0.0.0:8443""#,
                r#"upstreams = ["10.1.0.5:443"]"#,
            ]) + &table(&[
                r#"name = "b""#,
                r#"listen = "127.0.0.1:443""#,
                r#"upstreams = ["10.0.0.7:8443"]"#,
            ]),
            r#"relay.toml: listener "b": upstream "10.0.0.7:8443" is not valid: it is an address of this host, and listener "a" listens on 0.0.0.0:8443"#,
        ),
        (
            table(&[
                r#"name = "a""#,
                r#"listen = "[::]:443""#,
                r#"upstreams = ["10.1.0.5:443"]"#,
                r#"backups = ["[::1]:443"]"#,
            ]),
            r#"relay.toml: listener "a": backup "[::1]:443" is not valid: it is an address of this host, and listener "a" listens on [::]:443: it would forward to itself"#,
        ),
        (
            with("max_connections = 0"),
            r#"relay.toml: listener "https": max_connections 0 is not valid: must be from 1 to 1000000, or unlimited"#,
        ),
        (
            with("max_connections = 1000001"),
            r#"listener "https": max_connections 1000001 is not valid: must be from 1 to 1000000, or unlimited"#,
        ),
        (
            with("max_per_ip = -1"),
            r#"listener "https": max_per_ip -1 is not valid: must be from 1 to 1000000, or unlimited"#,
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
            r#"listener "https": idle_timeout "0ms" is not valid: must be from 1s to 1d"#,
        ),
        (
            with(r#"connect_timeout = "1d""#),
            r#"listener "https": connect_timeout "1d" is not valid: must be from 10ms to 5m"#,
        ),
        (
            with("pipe_size = 1"),
            r#"listener "https": pipe_size 1 is not valid: must be from 4KiB to 1MiB"#,
        ),
        (
            with(r#"pipe_size = "64 KiB""#),
            r#"listener "https": pipe_size "64 KiB" is not valid: unknown unit " KiB""#,
        ),
        (
            with("pipe_size = true"),
            r#"listener "https": pipe_size true is not valid: expected a size such as "256KiB""#,
        ),
        (
            format!("[defaults]\npipe_size = \"2MiB\"\n{ONE}"),
            r#"relay.toml: defaults: pipe_size "2MiB" is not valid: must be from 4KiB to 1MiB"#,
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
            r#"listener "https": health.rise 0 is not valid: must be from 1 to 100"#,
        ),
        (
            with("health = { fall = 1000 }"),
            r#"listener "https": health.fall 1000 is not valid: must be from 1 to 100"#,
        ),
        (
            with(r#"health = { interval = "1ms" }"#),
            r#"listener "https": health.interval "1ms" is not valid: must be from 100ms to 1d"#,
        ),
        (
            with(r#"health = { interval = "1m", timeout = "2m" }"#),
            r#"health.timeout "2m" is not valid: must not exceed health.interval (1m)"#,
        ),
        (
            format!("grace = \"2d\"\n{ONE}"),
            r#"relay.toml: grace "2d" is not valid: must be at most 1d"#,
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

/// `--config` takes a regular file of at most 1 MiB: anything else is refused at once with one
/// line (a FIFO without a writer, which would block a read forever, included).
#[test]
fn the_config_file_must_be_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let good =
        "[[listener]]\nname = \"a\"\nlisten = \"0.0.0.0:443\"\nupstreams = [\"10.1.0.5:443\"]\n";
    // Exactly the limit, padded with a comment: accepted.
    let mut padded = good.to_owned();
    padded += "#";
    padded += &"x".repeat(MAX_FILE_BYTES as usize - padded.len() - 1);
    padded += "\n";
    assert_eq!(padded.len() as u64, MAX_FILE_BYTES);
    std::fs::write(path("limit.toml"), &padded).unwrap();
    std::fs::write(path("over.toml"), padded.clone() + "\n").unwrap();
    std::fs::write(path("latin1.toml"), b"# caf\xe9\n").unwrap();
    std::fs::create_dir(path("dir.toml")).unwrap();
    nix::unistd::mkfifo(&path("fifo.toml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink("/dev/zero", path("zero.toml")).unwrap();

    let c = from_cli(&format!("--config {}", path("limit.toml").display())).unwrap();
    assert_eq!(c.listeners.len(), 1);

    let show = |name: &str| path(name).display().to_string();
    let cases = [
        (
            show("over.toml"),
            format!("cannot read {}: larger than 1MiB", show("over.toml")),
        ),
        (
            show("latin1.toml"),
            format!(
                "cannot read {}: not UTF-8 text: invalid byte at offset 5",
                show("latin1.toml")
            ),
        ),
        (
            show("dir.toml"),
            format!(
                "cannot read {}: it is a directory, not a regular file",
                show("dir.toml")
            ),
        ),
        (
            show("fifo.toml"),
            format!(
                "cannot read {}: it is a FIFO, not a regular file",
                show("fifo.toml")
            ),
        ),
        (
            show("zero.toml"),
            format!(
                "cannot read {}: it is a character device, not a regular file",
                show("zero.toml")
            ),
        ),
        (
            "/dev/zero".into(),
            "cannot read /dev/zero: it is a character device, not a regular file".into(),
        ),
        (
            "/dev/urandom".into(),
            "cannot read /dev/urandom: it is a character device".into(),
        ),
        (
            "/dev/null".into(),
            "cannot read /dev/null: it is a character device".into(),
        ),
    ];
    for (file, want) in cases {
        // On another thread, so that a read that blocks fails the test instead of hanging it.
        let args = format!("--config {file}");
        let (done, result) = std::sync::mpsc::channel();
        let run = args.clone();
        std::thread::spawn(move || done.send(from_cli(&run).map_err(|e| e.to_string())));
        let result = result
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{args}: still reading after 10 s"));
        match result {
            Ok(c) => panic!("{args}: accepted as {c:?}"),
            Err(msg) => assert!(msg.starts_with(&want), "{args}:\n got {msg}\nwant {want}"),
        }
    }
}

/// A file that grows while it is read (or a device that never ends) gives at most one byte
/// past the limit before the read stops.
#[test]
fn reading_stops_one_byte_past_the_limit() {
    use super::file::read_at_most;
    assert_eq!(read_at_most(&b"abc"[..], 3).unwrap(), Some(b"abc".to_vec()));
    assert_eq!(read_at_most(&b"abcd"[..], 3).unwrap(), None);
    assert_eq!(read_at_most(std::io::repeat(b'#'), 1 << 20).unwrap(), None);
    let mut endless = std::io::repeat(b'#');
    let mut counted = CountingReader(&mut endless, 0);
    assert_eq!(read_at_most(&mut counted, 1000).unwrap(), None);
    assert_eq!(counted.1, 1001, "bytes taken from an endless reader");
}

struct CountingReader<'a, R>(&'a mut R, u64);

impl<R: std::io::Read> std::io::Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// Whether a listener bound to the first address accepts a connection to the second, on a
/// host with 10.0.0.7 and 2001:db8::7 (and loopback).
#[test]
fn a_listener_accepts_its_address_or_any_of_this_host_on_the_wildcard() {
    let cases = [
        ("10.1.0.5:443", "10.1.0.5:443", true),
        ("10.1.0.5:443", "10.1.0.5:80", false),
        ("0.0.0.0:443", "127.0.0.1:443", true),
        ("0.0.0.0:443", "127.255.0.9:443", true),
        ("0.0.0.0:443", "10.0.0.7:443", true),
        ("0.0.0.0:443", "0.0.0.0:443", true),
        ("0.0.0.0:443", "[::ffff:10.0.0.7]:443", true),
        ("0.0.0.0:443", "10.0.0.8:443", false),
        ("0.0.0.0:443", "127.0.0.1:80", false),
        ("0.0.0.0:443", "[::1]:443", false),
        ("0.0.0.0:443", "[2001:db8::7]:443", false),
        ("[::]:443", "[::1]:443", true),
        ("[::]:443", "[2001:db8::7]:443", true),
        ("[::]:443", "127.0.0.1:443", true),
        ("[::]:443", "10.0.0.7:443", true),
        ("[::]:443", "[2001:db8::8]:443", false),
        ("[::]:443", "10.0.0.8:443", false),
        ("127.0.0.1:443", "127.0.0.1:443", true),
        ("127.0.0.1:443", "127.0.0.2:443", false),
        ("127.0.0.1:443", "10.0.0.7:443", false),
        ("10.0.0.7:443", "127.0.0.1:443", false),
        ("[::ffff:127.0.0.1]:443", "127.0.0.1:443", true),
        // Port 0 is whatever the kernel gives: never a match.
        ("0.0.0.0:0", "127.0.0.1:0", false),
        ("127.0.0.1:0", "127.0.0.1:0", false),
    ];
    for (listen, dest, want) in cases {
        assert_eq!(
            accepts(addr(listen), addr(dest), &host()),
            want,
            "{listen} accepts {dest}"
        );
    }
    // Without the interfaces, loopback and the wildcard still count as this host.
    let bare = HostAddrs::default();
    assert!(accepts(addr("0.0.0.0:443"), addr("127.0.0.1:443"), &bare));
    assert!(!accepts(addr("0.0.0.0:443"), addr("10.0.0.7:443"), &bare));
}

/// At most 256 listeners in a file and 64 upstreams and backups in a listener.
#[test]
fn listeners_and_upstreams_are_counted() {
    let listeners = |n: usize| {
        (0..n)
            .map(|i| {
                table(&[
                    &format!("name = \"l{i}\""),
                    &format!("listen = \"0.0.0.0:{}\"", 1000 + i),
                    r#"upstreams = ["10.1.0.5:443"]"#,
                ])
            })
            .collect::<String>()
    };
    assert_eq!(from_toml(&listeners(256)).unwrap().listeners.len(), 256);
    assert_refused(
        "257 listeners",
        from_toml(&listeners(257)),
        "relay.toml: 257 listeners: at most 256 (one [[listener]] table each)",
    );

    let upstreams = |n: usize| {
        (0..n)
            .map(|i| format!("10.1.{}.{}:443", i / 200, i % 200 + 1))
            .collect::<Vec<_>>()
    };
    let args = |n: usize| {
        let list = upstreams(n);
        format!(
            "--listen 0.0.0.0:443 --upstream {} --backup {}",
            list[..n / 2].join(","),
            list[n / 2..].join(",")
        )
    };
    assert_eq!(
        from_cli(&args(64)).unwrap().listeners[0].upstreams.len(),
        64
    );
    assert_refused(
        "65",
        from_cli(&args(65)),
        "65 upstreams and backups: at most 64 in all",
    );
    let quoted: Vec<String> = upstreams(65).iter().map(|u| format!("{u:?}")).collect();
    let text = table(&[
        r#"name = "a""#,
        r#"listen = "0.0.0.0:443""#,
        &format!("upstreams = [{}]", quoted.join(", ")),
    ]);
    assert_refused(
        "65 in a file",
        from_toml(&text),
        r#"relay.toml: listener "a": 65 upstreams and backups: at most 64 in all"#,
    );
}

#[test]
fn durations_and_sizes_print_as_they_parse() {
    let durations = [
        (Duration::ZERO, "0s"),
        (Duration::from_millis(10), "10ms"),
        (Duration::from_millis(1500), "1s500ms"),
        (secs(90), "1m30s"),
        (secs(300), "5m"),
        (secs(3600), "1h"),
        (secs(86400), "1d"),
        (secs(86401), "1d1s"),
        (secs(32767), "9h6m7s"),
    ];
    for (d, text) in durations {
        assert_eq!(format_duration(d), text);
        assert_eq!(parse_duration(text), Ok(d), "{text}");
    }
    let sizes = [
        (0, "0"),
        (4096, "4KiB"),
        (5000, "5000"),
        (256 << 10, "256KiB"),
        (1 << 20, "1MiB"),
        (3 << 20, "3MiB"),
    ];
    for (n, text) in sizes {
        assert_eq!(format_size(n), text);
        assert_eq!(parse_size(text), Ok(n), "{text}");
    }
    assert_eq!(parse_size("1536KiB"), Ok(1536 << 10));
    let bad = [
        ("", "empty size"),
        ("KiB", "expected a number before \"KiB\""),
        (
            "64kib",
            "unknown unit \"kib\" (use KiB, MiB, or none for bytes)",
        ),
        (
            "1GiB",
            "unknown unit \"GiB\" (use KiB, MiB, or none for bytes)",
        ),
        ("1.5MiB", "use whole numbers (1536KiB, not 1.5MiB)"),
        ("99999999999999999999", "too large"),
        ("18014398509481984MiB", "too large"),
    ];
    for (text, want) in bad {
        assert_eq!(parse_size(text), Err(want.to_string()), "{text}");
    }
}

/// `warm`, `warm_max_idle` and `congestion`: defaults, ranges and names, in flags and files.
#[test]
fn warm_connections_and_congestion_control_settings() {
    let c = from_cli("--listen 0.0.0.0:443 --upstream 10.1.0.5:443").unwrap();
    let l = &c.listeners[0];
    assert_eq!((l.warm, l.warm_max_idle), (0, Duration::from_secs(3)));
    assert_eq!(l.congestion.as_deref(), Some("bbr"));
    let c = from_cli(
        "--listen 0.0.0.0:443 --upstream 10.1.0.5:443 --warm 64 --warm-max-idle 100ms --congestion default",
    )
    .unwrap();
    let l = &c.listeners[0];
    assert_eq!((l.warm, l.warm_max_idle), (64, Duration::from_millis(100)));
    assert_eq!(l.congestion, None);
    let c = from_toml(&format!(
        "{ONE}warm = 4\nwarm_max_idle = \"2s\"\ncongestion = \"cubic\"\n"
    ))
    .unwrap();
    let l = &c.listeners[0];
    assert_eq!((l.warm, l.warm_max_idle), (4, Duration::from_secs(2)));
    assert_eq!(l.congestion.as_deref(), Some("cubic"));
    for (flags, want) in [
        ("--warm 65", "--warm 65 is not valid: must be from 0 to 64"),
        ("--warm=-1", "--warm -1 is not valid: must be from 0 to 64"),
        (
            "--warm-max-idle 10ms",
            "--warm-max-idle 10ms is not valid: must be from 100ms to 1h",
        ),
        (
            "--congestion b/r",
            "--congestion b/r is not valid: expected a congestion control algorithm",
        ),
    ] {
        let args = format!("--listen 0.0.0.0:443 --upstream 10.1.0.5:443 {flags}");
        let err = from_cli(&args).expect_err(&args).to_string();
        assert!(err.starts_with(want), "{args}: {err}");
    }
}
