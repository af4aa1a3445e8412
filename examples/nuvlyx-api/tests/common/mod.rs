//! The demo harness shared by the test files: the real binary on free
//! ports, its CLI, and curl against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_nuvlyx-api");
pub static N: AtomicUsize = AtomicUsize::new(0);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the server accepts connections on `port` (30 s at most).
pub fn wait_for_listener(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn data_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "nuvlyx-demo-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub struct Demo {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub http_port: u16,
    pub stdout: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    pub fn start(dir: &Path) -> Demo {
        Self::start_with(dir, &[])
    }

    /// Starts the server with more options.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Demo {
        let (port, http_port) = (free_port(), free_port());
        let mut child = Command::new(BIN)
            .args(["--data-dir", dir.to_str().unwrap()])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        wait_for_listener(port);
        std::thread::sleep(Duration::from_millis(100));
        let stdout = rx.try_iter().collect();
        Demo {
            child,
            dir: dir.to_owned(),
            port,
            http_port,
            stdout,
        }
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn ca(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    pub fn demo_token(&self) -> String {
        self.stdout
            .iter()
            .find_map(|l| l.strip_prefix("Demo token (shown once, expires in 24 h): "))
            .expect("demo token printed on first start")
            .to_owned()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .args(["--data-dir", self.dir.to_str().unwrap()]);
        cmd.output().unwrap()
    }

    /// Runs the CLI with `input` on its standard input (how a token is
    /// handed to it: never in its arguments).
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> Output {
        cli_with_stdin(&self.dir, args, input)
    }

    /// `tokens create` (30 days, the default); returns the token printed
    /// on stdout.
    pub fn create(&self, name: &str, scopes: &str) -> String {
        self.create_with(name, scopes, &[])
    }

    /// `tokens create` with more options.
    pub fn create_with(&self, name: &str, scopes: &str, extra: &[&str]) -> String {
        let mut args = vec!["tokens", "create", "--name", name, "--scopes", scopes];
        args.extend(extra);
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "stdout must hold the token alone: {stdout:?}"
        );
        lines[0].to_owned()
    }

    pub fn curl(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            method,
            "--cacert",
            &self.ca(),
        ]);
        // The token goes to curl on its standard input (`-H @-`), as the
        // README teaches: never in the process list.
        let header = token.map(|t| format!("Authorization: Bearer {t}\n"));
        if header.is_some() {
            cmd.args(["-H", "@-"]);
        }
        let out = run_with_stdin(
            cmd.arg(format!("{}{path}", self.base())),
            header.as_deref().unwrap_or(""),
        );
        let head = String::from_utf8_lossy(&out.stdout).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head)
    }

    pub fn wait_for_status(&self, path: &str, token: &str, want: u16) -> Duration {
        let started = Instant::now();
        loop {
            if self.curl("GET", path, Some(token)).0 == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "never answered {want}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// Runs `cmd` with `input` on its standard input.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn cli_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    run_with_stdin(
        Command::new(BIN)
            .args(args)
            .args(["--data-dir", dir.to_str().unwrap()]),
        input,
    )
}

pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Runs the three seed snippets with `token`; returns their status codes.
pub fn run_seed_clients(demo: &Demo, token: &str) -> [u16; 3] {
    let env = |cmd: &mut Command| {
        cmd.env("NUVLYX_BASE_URL", demo.base())
            .env("NUVLYX_TOKEN", token)
            .env("NUVLYX_CA", demo.ca())
            .env("NODE_EXTRA_CA_CERTS", demo.ca())
            .env("REQUESTS_CA_BUNDLE", demo.ca());
    };
    let status = |mut cmd: Command, what: &str| -> u16 {
        env(&mut cmd);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {what}: {e}"));
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{what}: {text}"))
    };
    let mut curl = Command::new("bash");
    curl.arg(clients_dir().join("orders.sh"));
    let mut node = Command::new("node");
    node.arg(clients_dir().join("orders.mjs"));
    let mut python = Command::new("python3");
    python.arg(clients_dir().join("orders.py"));
    [
        status(curl, "curl"),
        status(node, "node"),
        status(python, "python"),
    ]
}

/// Programs and modules some tests need beyond Rust: the seed's client
/// snippets (Node, Python `requests`), the OpenAPI validator, and a
/// headless Chromium under chromedriver.
#[derive(Debug, Clone, Copy)]
pub enum Tool {
    Node,
    PythonRequests,
    OpenApiValidator,
    Chromedriver,
    /// axe-core, the accessibility engine (npm), run inside Chromium.
    AxeCore,
}

impl Tool {
    fn present(self) -> bool {
        let ok = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        match self {
            Tool::Node => ok("node", &["--version"]),
            Tool::PythonRequests => ok("python3", &["-c", "import requests"]),
            Tool::OpenApiValidator => ok("python3", &["-c", "import openapi_spec_validator"]),
            Tool::Chromedriver => ok("chromedriver", &["--version"]),
            Tool::AxeCore => axe_core_js().is_file(),
        }
    }
}

/// Where `cargo xtask provision` installs axe-core's browser bundle
/// (`AXE_CORE_JS` says otherwise).
pub fn axe_core_js() -> PathBuf {
    std::env::var_os("AXE_CORE_JS").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/npm/node_modules/axe-core/axe.min.js")
        },
        PathBuf::from,
    )
}

/// `DATABASE_URL` when it names PostgreSQL. Without it the test says
/// `skipped` and passes, unless `TOWER_PAT_REQUIRE_DB` is set (as the
/// README's test command sets it), where it fails.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    if url.is_none() {
        assert!(
            std::env::var_os("TOWER_PAT_REQUIRE_DB").is_none(),
            "DATABASE_URL is required"
        );
        eprintln!("skipped: DATABASE_URL not set");
    }
    url
}

/// Whether every tool in `needed` is here. Without one, the test says
/// `skipped` in one line and passes, unless `TOWER_PAT_REQUIRE_TOOLS` is
/// set (as the README's test command and CI set it), where it fails:
/// `cargo xtask provision` installs them.
pub fn have(needed: &[Tool]) -> bool {
    let missing: Vec<Tool> = needed.iter().copied().filter(|t| !t.present()).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("TOWER_PAT_REQUIRE_TOOLS").is_none(),
        "missing {missing:?}: `cargo xtask provision` installs them"
    );
    eprintln!("skipped: needs {missing:?} (`cargo xtask provision` installs them)");
    false
}
