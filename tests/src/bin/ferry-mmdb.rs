//! `ferry-mmdb`: build a MaxMind DB country database for Envoy's geoip filter from a text file
//! of `CIDR COUNTRY` lines, e.g. from public RIR delegation data:
//!
//! ```text
//! tools/rir-networks -c CN -c US --format text delegated-* | ferry-mmdb - geo.mmdb
//! ```
//!
//! The input is what [`CountryDb::from_text`] reads: one `NETWORK COUNTRY` pair a line
//! (`1.0.1.0/24 CN`, `240e::/20 cn`), `#` comments, blank lines; `-` reads stdin. The whole input
//! is parsed before anything is written, and the output is put in place with a rename
//! ([`CountryDb::write`]), so a running Envoy that watches the file never sees half a database.
//!
//! Exit codes (sysexits): 0 with a one-line summary on stderr; 64 (EX_USAGE) for a bad command
//! line or bad input, with one line that names the input and the line; 66 (EX_NOINPUT) when the
//! input cannot be read; 73 (EX_CANTCREAT) when the output cannot be written. Input without a
//! single network is bad input: an empty database knows no address, and the usual cause is a
//! failed step earlier in a pipeline.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use ferry_tests::mmdb::CountryDb;

/// EX_USAGE: the command line or the input is wrong.
const EX_USAGE: u8 = 64;
/// EX_NOINPUT: the input cannot be read.
const EX_NOINPUT: u8 = 66;
/// EX_CANTCREAT: the output cannot be written.
const EX_CANTCREAT: u8 = 73;

/// Build a MaxMind DB country database (for Envoy's geoip filter) from `CIDR COUNTRY` lines.
#[derive(Debug, Parser)]
#[command(name = "ferry-mmdb")]
struct Args {
    /// The English description written into the database's metadata.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// A text file of `CIDR COUNTRY` lines (`#` starts a comment), or `-` for stdin.
    input: String,
    /// The `.mmdb` file to write (replaced as a whole).
    output: PathBuf,
}

/// Why the database was not written, and the exit code that says so.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => {
            // --help and --version: print to stdout and succeed.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(EX_USAGE);
        }
    };
    match run(&args) {
        Ok(summary) => {
            eprintln!("ferry-mmdb: {summary}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("ferry-mmdb: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Read, parse, write; the summary line on success.
fn run(args: &Args) -> Result<String, Failure> {
    let (name, text) = read_input(&args.input)?;
    let mut db = CountryDb::from_text(&text)
        .map_err(|err| Failure::new(EX_USAGE, format!("{name}: {err}")))?;
    if let Some(description) = &args.description {
        db.set_description(description)
            .map_err(|err| Failure::new(EX_USAGE, format!("--description: {err}")))?;
    }
    // Every line parsed, so counting needs no second validation.
    let counts = Counts::of(&text);
    if counts.ipv4 + counts.ipv6 == 0 {
        return Err(Failure::new(
            EX_USAGE,
            format!("{name}: no networks (an empty database would know no address)"),
        ));
    }
    let output = &args.output;
    db.write(output).map_err(|err| {
        Failure::new(
            EX_CANTCREAT,
            format!("cannot write {}: {err}", output.display()),
        )
    })?;
    let size = std::fs::metadata(output).map_or(0, |meta| meta.len());
    Ok(format!(
        "wrote {}: {} IPv4 and {} IPv6 networks of {} countries ({}), {size} bytes",
        output.display(),
        counts.ipv4,
        counts.ipv6,
        counts.countries.len(),
        counts.countries.into_iter().collect::<Vec<_>>().join(" "),
    ))
}

/// The input's name for messages, and its text.
fn read_input(input: &str) -> Result<(String, String), Failure> {
    let mut text = String::new();
    let (name, read) = if input == "-" {
        let read = std::io::stdin().read_to_string(&mut text);
        ("<stdin>".to_owned(), read)
    } else {
        let path = Path::new(input);
        let read = std::fs::File::open(path).and_then(|mut file| file.read_to_string(&mut text));
        (path.display().to_string(), read)
    };
    match read {
        Ok(_) => Ok((name, text)),
        Err(err) if err.kind() == std::io::ErrorKind::InvalidData => Err(Failure::new(
            EX_USAGE,
            format!("{name}: not UTF-8 text: {err}"),
        )),
        Err(err) => Err(Failure::new(
            EX_NOINPUT,
            format!("cannot read {name}: {err}"),
        )),
    }
}

/// What an already parsed input holds, for the summary.
struct Counts {
    ipv4: usize,
    ipv6: usize,
    countries: BTreeSet<String>,
}

impl Counts {
    /// Count the `NETWORK COUNTRY` lines of `text`, which [`CountryDb::from_text`] accepted.
    fn of(text: &str) -> Self {
        let mut counts = Self {
            ipv4: 0,
            ipv6: 0,
            countries: BTreeSet::new(),
        };
        for line in text.lines() {
            let content = line.split('#').next().unwrap_or_default();
            let mut fields = content.split_whitespace();
            let (Some(network), Some(country)) = (fields.next(), fields.next()) else {
                continue;
            };
            if network.contains(':') {
                counts.ipv6 += 1;
            } else {
                counts.ipv4 += 1;
            }
            counts.countries.insert(country.to_ascii_uppercase());
        }
        counts
    }
}
