//! `tools/rir-networks` (RIR delegation data -> the redirect's networks) and the `ferry-mmdb`
//! binary (`CIDR COUNTRY` lines -> a MaxMind DB), on small delegation files written here in the
//! registries' format: the exact JSON and text outputs, the errors for bad lines, the pipeline
//! `rir-networks --format text | ferry-mmdb - geo.mmdb` read back with the `maxminddb` crate, and
//! the JSON accepted by the filter's own config parser as `redirect.networks`.
//!
//! Related: a China-sized list through the filter in `geo_redirect::networks`; the MaxMind DB
//! writer behind `ferry-mmdb` in the `harness` binary (`mmdb`).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry_filter::config::Config;
use maxminddb::{geoip2, Reader};

use crate::support::{rir_networks, rir_networks_script};

/// APNIC's file: the version line, summaries, comments, ASNs, other countries, statuses that
/// belong to nobody, IPv4 counts that are not powers of two (768 = /23 + /24, 1536 = /22 + /23,
/// one starting off a /23 boundary), adjacent blocks, lines out of order and an extended-format
/// line (an eighth field, the opaque id).
const APNIC: &str = "\
2|apnic|20250101|27|19830613|20241231|+1000
apnic|*|asn|*|2|summary
apnic|*|ipv4|*|17|summary
apnic|*|ipv6|*|5|summary
# comments may appear anywhere
apnic|CN|asn|4134|1|20020101|allocated
apnic|JP|asn|2497|1|19970101|allocated
apnic|CN|ipv4|36.96.0.0|768|20100806|allocated
apnic|CN|ipv4|1.0.1.0|256|20110414|allocated
apnic|CN|ipv4|1.0.2.0|512|20110414|allocated
apnic|CN|ipv4|1.0.8.0|2048|20110412|allocated
apnic|JP|ipv4|1.0.16.0|4096|20110412|allocated
apnic|CN|ipv4|1.0.32.0|8192|20110412|allocated

apnic|CN|ipv4|42.0.4.0|256|20100127|assigned
apnic|CN|ipv4|42.0.5.0|256|20100127|assigned
apnic|CN|ipv4|58.14.0.0|1536|20050218|allocated|A92E1062
apnic|CN|ipv4|103.2.1.0|768|20110705|allocated
apnic|HK|ipv4|103.2.4.0|1024|20110705|allocated
apnic|CN|ipv4|5.0.0.0|256|20200101|reserved
apnic|ZZ|ipv4|43.224.0.0|1024|20200101|available
apnic||ipv4|43.225.0.0|256||available
apnic|CN|ipv6|240e::|20|20130315|allocated
apnic|CN|ipv6|2400:da00::|32|20110114|allocated
apnic|CN|ipv6|2400:da01::|32|20110114|allocated
apnic|JP|ipv6|2001:200::|35|19990813|allocated
apnic|CN|ipv6|2001:250::|35|20000426|allocated
";

/// ARIN's file, in the same format with a dotted version: a second input, and US networks.
const ARIN: &str = "\
2.3|arin|1735700000000|3|19700101|20241231|-0500
arin|*|ipv4|*|2|summary
arin|*|ipv6|*|1|summary
arin|US|ipv4|8.8.8.0|256|19920301|assigned
arin|US|ipv4|1.0.1.0|256|19920301|reserved
arin|US|ipv6|2600::|12|20060922|allocated
";

/// The CN networks the two files hold: merged, split into CIDR blocks, IPv4 then IPv6, sorted.
const CN: &[&str] = &[
    "1.0.1.0/24",
    "1.0.2.0/23",
    "1.0.8.0/21",
    "1.0.32.0/19",
    "36.96.0.0/23",
    "36.96.2.0/24",
    "42.0.4.0/23",
    "58.14.0.0/22",
    "58.14.4.0/23",
    "103.2.1.0/24",
    "103.2.2.0/23",
    "2001:250::/35",
    "2400:da00::/31",
    "240e::/20",
];

/// The US networks of the two files.
const US: &[&str] = &["8.8.8.0/24", "2600::/12"];

/// `(address, the country the delegation data gives it among CN and US)`.
const PROBES: &[(&str, Option<&str>)] = &[
    ("1.0.0.255", None),
    ("1.0.1.0", Some("CN")),
    ("1.0.3.255", Some("CN")),
    ("1.0.4.0", None),
    ("1.0.15.255", Some("CN")),
    ("1.0.16.1", None), // JP
    ("1.0.63.255", Some("CN")),
    ("5.0.0.1", None), // reserved
    ("8.8.8.8", Some("US")),
    ("36.96.2.255", Some("CN")),
    ("36.96.3.0", None),
    ("42.0.5.255", Some("CN")),
    ("43.224.0.1", None), // available
    ("58.14.5.255", Some("CN")),
    ("58.14.6.0", None),
    ("103.2.0.255", None),
    ("103.2.1.0", Some("CN")),
    ("103.2.4.0", None), // HK
    ("2001:200::1", None),
    ("2001:250::1", Some("CN")),
    ("2001:250:1fff:ffff:ffff:ffff:ffff:ffff", Some("CN")),
    ("2001:250:2000::", None),
    ("2400:da01:ffff::1", Some("CN")),
    ("2400:da02::", None),
    ("240e:fff::1", Some("CN")),
    ("2600:1f18::7", Some("US")),
    ("2a00::1", None),
];

/// The two delegation files, written into a temp dir.
struct Files {
    dir: tempfile::TempDir,
    apnic: PathBuf,
    arin: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().expect("temp dir");
    let apnic = dir.path().join("delegated-apnic-latest");
    let arin = dir.path().join("delegated-arin-extended-latest");
    std::fs::write(&apnic, APNIC).expect("write the APNIC file");
    std::fs::write(&arin, ARIN).expect("write the ARIN file");
    Files { dir, apnic, arin }
}

/// The output of a run that must succeed.
fn succeeded(output: Output, what: &str) -> (String, String) {
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8 stderr");
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// The output of a run that must fail with `code`: its stderr.
fn failed(output: Output, code: i32, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: stdout {stdout:?}, stderr {stderr:?}"
    );
    assert_eq!(stdout, "", "{what}: nothing on stdout after an error");
    stderr
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn json_holds_each_country_as_merged_sorted_cidr_blocks() {
    let files = files();
    let output = rir_networks(
        &[
            "-c",
            "CN",
            "--country",
            "us",
            path(&files.apnic),
            path(&files.arin),
        ],
        "",
    );
    let (stdout, stderr) = succeeded(output, "rir-networks");
    let expected = serde_json::json!({ "CN": CN, "US": US });
    // One line of compact JSON, countries in the order asked for.
    assert_eq!(
        stdout,
        format!("{}\n", serde_json::to_string(&expected).expect("JSON"))
    );
    assert!(stdout.starts_with("{\"CN\":[\"1.0.1.0/24\""), "{stdout}");
    assert_eq!(
        stderr,
        "rir-networks: CN: 14 networks\nrir-networks: US: 2 networks\n"
    );
}

#[test]
fn text_is_one_cidr_and_country_a_line() {
    let files = files();
    let output = rir_networks(
        &[
            "-c",
            "CN",
            "-c",
            "US",
            "--format",
            "text",
            "-",
            path(&files.arin),
        ],
        APNIC,
    );
    let (stdout, _) = succeeded(output, "rir-networks --format text");
    let expected: String = CN
        .iter()
        .map(|net| format!("{net} CN\n"))
        .chain(US.iter().map(|net| format!("{net} US\n")))
        .collect();
    assert_eq!(stdout, expected);
}

#[test]
fn the_same_block_from_two_files_appears_once() {
    let files = files();
    let once = rir_networks(&["-c", "CN", path(&files.apnic)], "");
    let twice = rir_networks(&["-c", "CN", path(&files.apnic), "-"], APNIC);
    let (once, _) = succeeded(once, "one file");
    let (twice, _) = succeeded(twice, "the file twice");
    assert_eq!(once, twice);
}

#[test]
fn bad_lines_fail_with_the_file_and_the_line() {
    let cases = [
        (
            "apnic|CN|ipv4|1.0.1.0|0|20110414|allocated",
            "the address count must be positive",
        ),
        (
            "apnic|CN|ipv4|1.0.1.0|-256|20110414|allocated",
            "must be positive",
        ),
        (
            "apnic|CN|ipv4|1.0.1.0|many|20110414|allocated",
            "invalid literal for int()",
        ),
        (
            "apnic|CN|ipv4|1.0.1|256|20110414|allocated",
            "Expected 4 octets in '1.0.1'",
        ),
        (
            "apnic|CN|ipv4|255.255.255.0|512|20110414|allocated",
            "4294967551",
        ),
        (
            "apnic|CN|ipv6|240e::|129|20130315|allocated",
            "'129' is not a valid netmask",
        ),
        (
            "apnic|CN|ipv6|240e::1|20|20130315|allocated",
            "has host bits set",
        ),
        (
            "apnic|CN|ipv6|240e::|x|20130315|allocated",
            "invalid literal for int()",
        ),
        (
            "1.0.1.0/24 CN",
            "expected registry|cc|type|start|value|date|status",
        ),
        // Checked whatever the country: a damaged file must not pass as a shorter list.
        (
            "apnic|JP|ipv4|bogus|256|20110414|allocated",
            "Expected 4 octets in 'bogus'",
        ),
        (
            "apnic|CN|ipv5|1.0.2.0|256|20110414|allocated",
            "unknown type 'ipv5'",
        ),
        (
            "apnic|CN|ipv4|1.0.2.0|256|20110414|alocated",
            "unknown status 'alocated'",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (line, reason) in cases {
        let file = dir.path().join("delegated");
        // The bad line is line 3, after the version line and a summary.
        let text = format!(
            "2|apnic|20250101|2|19830613|20241231|+1000\napnic|*|ipv4|*|2|summary\n{line}\n\
             apnic|CN|ipv4|1.0.1.0|256|20110414|allocated\n"
        );
        std::fs::write(&file, &text).expect("write the file");
        let stderr = failed(rir_networks(&["-c", "CN", path(&file)], ""), 1, line);
        let at = format!("rir-networks: {}:3: ", file.display());
        assert!(stderr.starts_with(&at), "{line}: {stderr:?} lacks {at:?}");
        assert!(
            stderr.contains(reason),
            "{line}: {stderr:?} lacks {reason:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");

        let stderr = failed(rir_networks(&["-c", "CN", "-"], &text), 1, line);
        assert!(
            stderr.starts_with("rir-networks: <stdin>:3: "),
            "{stderr:?}"
        );
    }
}

#[test]
fn a_country_without_networks_missing_files_and_bad_codes_fail() {
    let files = files();
    let stderr = failed(rir_networks(&["-c", "KR", path(&files.apnic)], ""), 1, "KR");
    assert!(
        stderr.contains("rir-networks: no networks for KR in the given files"),
        "{stderr}"
    );
    let missing = files.dir.path().join("missing");
    let stderr = failed(
        rir_networks(&["-c", "CN", path(&missing)], ""),
        1,
        "missing",
    );
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert!(stderr.contains(path(&missing)), "{stderr}");
    let stderr = failed(
        rir_networks(&["-c", "CHN", path(&files.apnic)], ""),
        2,
        "CHN",
    );
    assert!(stderr.contains("--country 'CHN'"), "{stderr}");
}

#[test]
fn the_json_is_accepted_as_the_redirects_networks() {
    let files = files();
    let (json, _) = succeeded(
        rir_networks(
            &[
                "-c",
                "CN",
                "-c",
                "US",
                path(&files.apnic),
                path(&files.arin),
            ],
            "",
        ),
        "rir-networks",
    );
    let config = format!(
        r#"{{"domains": [{{"origin": "example.com", "mirror": "example.cn", "subdomains": true}}],
            "redirect": {{"countries": ["CN", "US"], "networks": {json}}}}}"#
    );
    let config = Config::from_json(config.as_bytes()).unwrap_or_else(|err| panic!("{err}"));
    let redirect = config.redirect.expect("a redirect");
    assert_eq!(redirect.country_header, None, "networks replace the header");
    let networks = redirect.networks.expect("networks");
    // Adjacent blocks are one range for the filter: 1.0.1.0/24 + 1.0.2.0/23, the two halves
    // of 36.96.0.0 (768), 42.0.4.0/23, 58.14.0.0 (1536), 103.2.1.0 (768).
    assert_eq!(networks.ranges(), (8, 4));
    for (ip, country) in PROBES {
        let ip: IpAddr = ip.parse().expect("a test address");
        assert_eq!(networks.contains(ip), country.is_some(), "{ip}");
    }

    // The output of more countries than the redirect lists is refused, naming the extra one.
    let config = format!(
        r#"{{"domains": [{{"origin": "example.com", "mirror": "example.cn"}}],
            "redirect": {{"countries": ["CN"], "networks": {json}}}}}"#
    );
    let err = Config::from_json(config.as_bytes()).expect_err("US is not redirected");
    assert!(err.to_string().contains("redirect.networks.US"), "{err}");
}

/// `ferry-mmdb ARGS` with `stdin`.
fn ferry_mmdb(args: &[&str], stdin: &[u8]) -> Output {
    let bin = env!("CARGO_BIN_EXE_ferry-mmdb");
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {bin}: {err}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    // A failing binary may exit before reading everything; its exit status tells.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("ferry-mmdb runs")
}

/// The country the database gives `ip`, and the network of the record.
fn lookup(reader: &Reader<Vec<u8>>, ip: IpAddr) -> (Option<String>, String) {
    let found = reader.lookup(ip).expect("lookup");
    let network = found.network().expect("network").to_string();
    let record: Option<geoip2::Country> = found.decode().expect("the record decodes");
    let country = record.and_then(|record| record.country.iso_code.map(str::to_owned));
    (country, network)
}

#[test]
fn rir_networks_piped_into_ferry_mmdb_builds_a_country_database() {
    let files = files();
    let out = files.dir.path().join("geo.mmdb");
    // The shell pipeline `rir-networks ... | ferry-mmdb - geo.mmdb`, process to process.
    let script = rir_networks_script();
    let mut producer = Command::new("python3")
        .arg(&script)
        .args(["-c", "CN", "-c", "US", "--format", "text"])
        .args([&files.apnic, &files.arin])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run python3 {}: {err}", script.display()));
    let pipe = producer.stdout.take().expect("stdout is piped");
    let consumer = Command::new(env!("CARGO_BIN_EXE_ferry-mmdb"))
        .args(["--description", "CN and US from RIR data", "-"])
        .arg(&out)
        .stdin(Stdio::from(pipe))
        .stderr(Stdio::piped())
        .output()
        .expect("ferry-mmdb runs");
    let produced = producer.wait_with_output().expect("rir-networks runs");
    assert!(produced.status.success(), "rir-networks: {produced:?}");
    let (_, stderr) = succeeded(consumer, "ferry-mmdb");
    let size = std::fs::metadata(&out).expect("the database exists").len();
    assert_eq!(
        stderr,
        format!(
            "ferry-mmdb: wrote {}: 12 IPv4 and 4 IPv6 networks of 2 countries (CN US), \
             {size} bytes\n",
            out.display()
        )
    );

    let reader = Reader::open_readfile(&out).expect("the database opens");
    reader.verify().expect("the database verifies");
    let meta = reader.metadata();
    assert_eq!(meta.database_type, "GeoLite2-Country");
    assert_eq!(
        meta.description.get("en").map(String::as_str),
        Some("CN and US from RIR data")
    );
    for (ip, country) in PROBES {
        let ip: IpAddr = ip.parse().expect("a test address");
        let (found, _) = lookup(&reader, ip);
        assert_eq!(found.as_deref(), *country, "{ip}");
    }
    // The blocks are what the text said, not the filter's merged ranges.
    assert_eq!(
        lookup(&reader, "36.96.2.7".parse().expect("ip")).1,
        "36.96.2.0/24"
    );
    assert_eq!(
        lookup(&reader, "1.0.1.7".parse().expect("ip")).1,
        "1.0.1.0/24"
    );
}

#[test]
fn ferry_mmdb_refuses_bad_input_with_the_line_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("geo.mmdb");
    let out_arg = path(&out);
    let cases: [(&[u8], &str); 5] = [
        (
            b"1.0.1.0/24 CN\n# fine so far\n1.0.1.7/24 CN\n",
            "ferry-mmdb: <stdin>: line 3: \"1.0.1.7/24\" is not a network: host bits are set \
             (the network is 1.0.1.0/24)\n",
        ),
        (
            b"1.0.1.0/24 CHN\n",
            "ferry-mmdb: <stdin>: line 1: \"CHN\" is not a country code: expected two ASCII \
             letters, such as CN\n",
        ),
        (
            b"\n\n1.0.1.0/24\n",
            "ferry-mmdb: <stdin>: line 3: expected NETWORK COUNTRY (such as `1.0.1.0/24 CN`), \
             found \"1.0.1.0/24\"\n",
        ),
        (
            b"# only comments\n\n",
            "ferry-mmdb: <stdin>: no networks (an empty database would know no address)\n",
        ),
        (
            b"1.0.1.0/24 CN\n\xff\n",
            "ferry-mmdb: <stdin>: not UTF-8 text",
        ),
    ];
    for (input, expected) in cases {
        let output = ferry_mmdb(&["-", out_arg], input);
        let stderr = failed(output, 64, expected);
        assert!(stderr.starts_with(expected), "{stderr:?}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        assert!(!out.exists(), "nothing is written for {expected:?}");
    }

    // A file input is named in the message; a missing one is EX_NOINPUT.
    let input = dir.path().join("networks.txt");
    std::fs::write(&input, "1.0.1.0/33 CN\n").expect("write the input");
    let stderr = failed(ferry_mmdb(&[path(&input), out_arg], b""), 64, "file");
    assert!(
        stderr.starts_with(&format!("ferry-mmdb: {}: line 1: ", input.display())),
        "{stderr:?}"
    );
    let missing = dir.path().join("missing.txt");
    let stderr = failed(ferry_mmdb(&[path(&missing), out_arg], b""), 66, "missing");
    assert!(stderr.starts_with("ferry-mmdb: cannot read "), "{stderr:?}");
    // A bad command line is EX_USAGE too.
    failed(ferry_mmdb(&["-"], b""), 64, "no output");
    let unwritable = dir.path().join("no/such/dir/geo.mmdb");
    let stderr = failed(
        ferry_mmdb(&["-", path(&unwritable)], b"1.0.1.0/24 CN\n"),
        73,
        "unwritable",
    );
    assert!(
        stderr.starts_with("ferry-mmdb: cannot write "),
        "{stderr:?}"
    );
    assert!(!out.exists());
}
