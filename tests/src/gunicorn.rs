//! Real Python origins: gunicorn with gthread workers serving a WSGI application over TLS, the
//! way Django sites commonly run, for the tests that need an origin nobody here wrote: the
//! small WSGI site in `tests/data/wsgi_site.py`, or a Django site ([`DjangoSite`],
//! `tests/data/djangosite/`: the admin, sqlite, production settings).
//!
//! [`Gunicorn::start`] runs the pinned gunicorn (`./run` installs it, Django and WhiteNoise into
//! `.venv`; or `GUNICORN_BIN`, whose directory's `python` must have them) on an ephemeral port
//! of 127.0.0.1, waits (20 s at most) for the line in its log that names the bound address, and
//! stops it (SIGTERM, then SIGKILL, the workers with it) when dropped. A missing gunicorn fails
//! with how to install it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::paths;
use crate::pki::Leaf;

/// How long gunicorn gets to start.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How to run gunicorn.
#[derive(Clone, Debug)]
pub struct GunicornOptions {
    /// Threads of the one gthread worker (a thread serves one connection at a time).
    pub threads: u32,
    /// The certificate and key to serve TLS with.
    pub tls: Leaf,
    /// Environment for the application (`FERRY_SITE_HOST`, `FERRY_SITE_ASSETS`, ...).
    pub env: Vec<(String, String)>,
    /// The directory of the application, under `tests/data/`.
    pub dir: &'static str,
    /// The WSGI application, `module:callable`.
    pub app: &'static str,
}

impl GunicornOptions {
    /// The small WSGI site of `tests/data/wsgi_site.py`.
    pub fn wsgi_site(tls: Leaf, threads: u32) -> Self {
        Self {
            threads,
            tls,
            env: Vec::new(),
            dir: "",
            app: "wsgi_site:app",
        }
    }
}

/// A running gunicorn. Dropping it stops the server.
pub struct Gunicorn {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gunicorn {
    /// Start gunicorn serving `tests/data/wsgi_site.py`.
    ///
    /// # Panics
    /// If gunicorn is missing or does not start, with the reason and its log.
    pub fn start(options: &GunicornOptions) -> Self {
        Self::try_start(options).unwrap_or_else(|err| panic!("gunicorn did not start: {err}"))
    }

    /// Start gunicorn; on failure, why (with its log).
    pub fn try_start(options: &GunicornOptions) -> Result<Self, String> {
        let bin = paths::try_gunicorn_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("ferry-gunicorn-")
            .tempdir()
            .map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let log = dir.path().join("gunicorn.log");
        let data = paths::workspace_root().join("tests/data").join(options.dir);
        let mut command = Command::new(&bin);
        command
            .arg("--chdir")
            .arg(&data)
            .args(["--bind", "127.0.0.1:0", "--worker-class", "gthread"])
            .args(["--workers", "1", "--threads", &options.threads.to_string()])
            .arg("--certfile")
            .arg(&options.tls.cert_pem)
            .arg("--keyfile")
            .arg(&options.tls.key_pem)
            .args(["--access-logfile", "-", "--error-logfile", "-"])
            .arg(options.app)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            // The access log goes to stdout: unbuffered, so it is there
            // to read while the server runs.
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null());
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let file2 = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        command.stdout(file).stderr(file2);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(addr) = listening_at(&server.log()) {
                server.addr = addr;
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("gunicorn exited ({status}):\n{}", server.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "gunicorn not listening after 20 s:\n{}",
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address gunicorn listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log: the access log (one line per request) and its own messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the log is.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// The address in gunicorn's "Listening at: https://127.0.0.1:PORT" line.
fn listening_at(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|line| line.contains("Listening at: "))?;
    let url = line.split("Listening at: ").nth(1)?;
    let addr = url.split("://").nth(1)?.split_whitespace().next()?;
    addr.parse().ok()
}

impl Drop for Gunicorn {
    fn drop(&mut self) {
        // The master stops its workers on SIGTERM.
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Django site of `tests/data/djangosite/` (the admin, sqlite, production settings,
/// `ALLOWED_HOSTS` its own host only) behind gunicorn over TLS: migrated, with its static files
/// collected and a superuser, in a directory of its own.
pub struct DjangoSite {
    dir: tempfile::TempDir,
    server: Gunicorn,
}

impl DjangoSite {
    /// Set up and start the site for `host` (what `ALLOWED_HOSTS` lets in), with a superuser
    /// `admin` (password `ferry-pass-1`) whose first name, last name and e-mail are given.
    ///
    /// # Panics
    /// If Django or gunicorn is missing or a set-up step fails, with its output.
    pub fn start(host: &str, tls: Leaf, user: [&str; 3]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ferry-django-")
            .tempdir()
            .expect("a temp dir");
        let env = vec![
            (
                "FERRY_DJANGO_DIR".to_owned(),
                dir.path().display().to_string(),
            ),
            ("FERRY_SITE_HOST".to_owned(), host.to_owned()),
        ];
        let site = |args: &[&str]| manage(&env, args);
        site(&["migrate", "--noinput"]);
        site(&["collectstatic", "--noinput"]);
        let [first, last, email] = user;
        site(&[
            "shell",
            "-c",
            &format!(
                "from django.contrib.auth.models import User\n\
                 User.objects.create_superuser('admin', {email:?}, 'ferry-pass-1', \
                 first_name={first:?}, last_name={last:?})"
            ),
        ]);
        let server = Gunicorn::start(&GunicornOptions {
            threads: 8,
            tls,
            env: env.clone(),
            dir: "djangosite",
            app: "ferrysite.wsgi:application",
        });
        Self { dir, server }
    }

    /// The server.
    pub fn server(&self) -> &Gunicorn {
        &self.server
    }

    /// The superuser's first name, last name and e-mail as the database holds them.
    pub fn stored_user(&self) -> [String; 3] {
        let env = vec![(
            "FERRY_DJANGO_DIR".to_owned(),
            self.dir.path().display().to_string(),
        )];
        let out = manage(
            &env,
            &[
                "shell",
                "-c",
                "import json\nfrom django.contrib.auth.models import User\n\
                 u = User.objects.get(username='admin')\n\
                 print(json.dumps([u.first_name, u.last_name, u.email]))",
            ],
        );
        // Django's shell may print a line of its own first ("N objects imported").
        let last = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let fields: Vec<String> = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("manage.py shell printed {out:?}: {e}"));
        fields
            .try_into()
            .unwrap_or_else(|f: Vec<String>| panic!("{f:?}"))
    }
}

/// `python manage.py ARGS` for the Django site, with the virtualenv's python (beside
/// gunicorn); its output, or a panic with it.
fn manage(env: &[(String, String)], args: &[&str]) -> String {
    let gunicorn = paths::gunicorn_bin();
    let python = gunicorn.with_file_name("python");
    let dir = paths::workspace_root().join("tests/data/djangosite");
    let output = Command::new(&python)
        .arg("manage.py")
        .args(args)
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "manage.py {} failed ({}):\n{text}\n{}",
        args.first().unwrap_or(&""),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_address_is_read_from_the_log() {
        let log = "[2026-11-27 02:33:01 +0000] [19738] [INFO] Starting gunicorn 27.0.1\n\
                   [2026-11-27 02:33:01 +0000] [19738] [INFO] Listening at: https://127.0.0.1:41234 (19738)\n";
        assert_eq!(listening_at(log), Some("127.0.0.1:41234".parse().unwrap()));
        assert_eq!(listening_at("nothing yet"), None);
    }
}
