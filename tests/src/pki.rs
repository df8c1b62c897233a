//! A local certificate authority for tests and the demo: a CA certificate written to `ca.pem`,
//! and leaf certificates for server names, written as PEM files Envoy can load.
//!
//! Keys are ECDSA P-256 (rcgen with the ring backend). The CA is valid from a day ago for ten
//! years; a leaf from a day ago for 90 days (a day of slack on both sides absorbs clock skew
//! between the test host and nothing else), carries its names as DNS subject alternative names
//! (wildcards such as `*.example.cn` allowed), `serverAuth` extended key usage and the CA's key
//! identifier. Key files are created with mode 0600.
//!
//! [`Leaf::spki_der`] is the leaf's SubjectPublicKeyInfo in DER: what Chromium's
//! `--ignore-certificate-errors-spki-list` pins (as the base64 of its SHA-256).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _,
};

/// How long a leaf is valid (from a day before it is issued).
const LEAF_DAYS: u32 = 90;
/// How long the CA is valid (from a day before it is made).
const CA_DAYS: u32 = 3650;
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a CA or a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a certificate needs at least one name")]
    NoNames,
    #[error("{name:?} is not a valid DNS name for a certificate: {reason}")]
    Name { name: String, reason: String },
    #[error("cannot generate a key or sign a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("the system clock is before 1970")]
    Clock,
}

/// A certificate authority whose certificate is `<dir>/ca.pem`.
pub struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish()
    }
}

/// A leaf certificate and its key, as files and as DER.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The names the certificate is for, e.g. `example.cn` and `*.example.cn`.
    pub names: Vec<String>,
    /// The certificate, PEM.
    pub cert_pem: PathBuf,
    /// The private key, PKCS#8 PEM (mode 0600).
    pub key_pem: PathBuf,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The certificate's SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
}

impl Pki {
    /// Make a new CA and write its certificate to `<dir>/ca.pem` (creating `dir`). The CA's key
    /// stays in memory: a later run makes a new CA.
    pub fn new(dir: &Path) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Ferry tests");
        name.push(
            DnType::CommonName,
            "Ferry test CA (local, not trusted anywhere)",
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_DAYS)?;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca_pem = cert.pem();
        let pki = Self {
            dir: dir.to_owned(),
            ca_der: cert.der().to_vec(),
            ca_pem,
            issuer: Issuer::new(params, key),
        };
        write_file(&pki.ca_path(), pki.ca_pem.as_bytes(), 0o644)?;
        Ok(pki)
    }

    /// The directory the files are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate's file, `<dir>/ca.pem`.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Issue a certificate for `names`, written as `<dir>/<first name>.crt` and `.key` (a
    /// leading `*.` becomes `wildcard.`). Issuing for the same first name again overwrites them.
    pub fn issue(&self, names: &[&str]) -> Result<Leaf, PkiError> {
        let first = names.first().ok_or(PkiError::NoNames)?;
        let stem = first.replace('*', "wildcard");
        self.issue_as(&stem, names)
    }

    /// Issue a certificate for `names`, written as `<dir>/<stem>.crt` and `<dir>/<stem>.key`.
    pub fn issue_as(&self, stem: &str, names: &[&str]) -> Result<Leaf, PkiError> {
        let first = names.first().ok_or(PkiError::NoNames)?;
        let mut params = CertificateParams::new(Vec::new())?;
        for name in names {
            let invalid = |reason: String| PkiError::Name {
                name: (*name).to_owned(),
                reason,
            };
            if !is_dns_name(name) {
                return Err(invalid(
                    "expected labels of letters, digits and '-', optionally after '*.'".to_owned(),
                ));
            }
            let dns = (*name)
                .to_owned()
                .try_into()
                .map_err(|err: rcgen::Error| invalid(err.to_string()))?;
            params.subject_alt_names.push(rcgen::SanType::DnsName(dns));
        }
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, *first);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_DAYS)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let leaf = Leaf {
            names: names.iter().map(|name| (*name).to_owned()).collect(),
            cert_pem: self.dir.join(format!("{stem}.crt")),
            key_pem: self.dir.join(format!("{stem}.key")),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            spki_der: key.subject_public_key_info(),
        };
        write_file(&leaf.cert_pem, cert.pem().as_bytes(), 0o644)?;
        write_file(&leaf.key_pem, key.serialize_pem().as_bytes(), 0o600)?;
        Ok(leaf)
    }
}

/// Make `params` valid from a day ago for `days` days.
fn set_validity(params: &mut CertificateParams, days: u32) -> Result<(), PkiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::Clock)?;
    let start = now.saturating_sub(DAY);
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + start;
    params.not_after = epoch + start + DAY * days;
    Ok(())
}

/// A host name of letters, digits and hyphens in dot-separated labels, optionally `*.` first.
pub fn is_dns_name(name: &str) -> bool {
    let host = name.strip_prefix("*.").unwrap_or(name);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Write `data` to `path` with `mode` (applied when the file is created).
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    let failed = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    // Remove first so a key file left with other permissions is not reused as it is.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(failed(err)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(failed)?;
    file.write_all(data).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_is_written_with_its_names_and_a_private_key_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::new(dir.path()).expect("CA");
        assert!(std::fs::read_to_string(pki.ca_path())
            .expect("ca.pem")
            .starts_with("-----BEGIN CERTIFICATE-----"));
        let leaf = pki.issue(&["*.example.cn", "example.cn"]).expect("leaf");
        assert_eq!(leaf.cert_pem, dir.path().join("wildcard.example.cn.crt"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&leaf.key_pem)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The SPKI is a DER SEQUENCE and contains the raw public key.
        assert_eq!(leaf.spki_der[0], 0x30);
        assert!(leaf.spki_der.len() > 65);
        assert!(matches!(pki.issue(&[]), Err(PkiError::NoNames)));
        assert!(matches!(
            pki.issue(&["bad name"]),
            Err(PkiError::Name { .. })
        ));
    }
}
