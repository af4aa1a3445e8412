//! `cargo xtask provision`: what the whole test suite needs, on a fresh
//! machine. The README's test command is
//!
//! ```text
//! cargo xtask provision && cargo test --workspace --all-features --config target/provisioned.toml
//! ```
//!
//! 1. Installs what the demo's tests need beyond Rust (Debian's `chromium`,
//!    `chromium-driver`, `nodejs`, `curl`; Python's `requests` and
//!    `openapi-spec-validator`) when it may: as root with `apt-get`, and
//!    with `pip`; and axe-core (the accessibility engine the browser tests
//!    run in Chromium) from the npm registry into `target/npm`. Otherwise
//!    it prints the one command to run, and fails.
//! 2. Finds PostgreSQL and Redis: `DATABASE_URL` and `REDIS_URL`, or the
//!    local defaults (`postgres://root@127.0.0.1:5432/test`,
//!    `redis://127.0.0.1:6379`) when they answer, starting a local
//!    PostgreSQL cluster first if one is installed but stopped, and Redis
//!    (installing it as root if needed). Otherwise it says what to start,
//!    and fails.
//! 3. Writes `target/provisioned.toml`, a cargo configuration whose `[env]`
//!    gives the tests the two URLs and sets `TOWER_PAT_REQUIRE_DB` and
//!    `TOWER_PAT_REQUIRE_TOOLS`, so that with it no test skips.

use std::env;
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{exit, Command, Stdio};
use std::time::Duration;

const DEFAULT_DATABASE_URL: &str = "postgres://root@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The axe-core release the browser tests run (pinned: a new release may
/// add rules).
const AXE_CORE: &str = "axe-core@4.14.1";
/// Where it is installed, relative to the workspace root.
const AXE_CORE_DIR: &str = "target/npm";

/// Where the test configuration is written, relative to the workspace root
/// (the README's command names it).
const PROVISIONED: &str = "target/provisioned.toml";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["provision"] => provision(),
        _ => {
            eprintln!("usage: cargo xtask provision");
            exit(2);
        }
    }
}

fn provision() {
    provision_tools();
    // The workspace root: xtask's manifest directory's parent.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace");
    let axe = provision_axe_core(root);
    let database_url = database_url();
    let redis_url = redis_url();
    let path = root.join(PROVISIONED);
    let config = format!(
        "# Written by `cargo xtask provision`: the test suite's environment, with\n\
         # nothing allowed to skip.\n\
         [env]\n\
         DATABASE_URL = {database_url:?}\n\
         REDIS_URL = {redis_url:?}\n\
         TOWER_PAT_REQUIRE_DB = \"1\"\n\
         TOWER_PAT_REQUIRE_TOOLS = \"1\"\n\
         AXE_CORE_JS = {axe:?}\n"
    );
    let written = std::fs::create_dir_all(path.parent().expect("a file in target/"))
        .and_then(|()| std::fs::write(&path, config));
    if let Err(e) = written {
        fail(&format!("writing {}: {e}", path.display()));
    }
    println!("xtask: DATABASE_URL={database_url} REDIS_URL={redis_url}; wrote {PROVISIONED}");
}

fn fail(why: &str) -> ! {
    eprintln!("xtask: {why}");
    exit(1);
}

/// Whether `program args` runs and succeeds (quietly).
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `program args`, showing its output; fails with `why` if it fails.
fn run(program: &str, args: &[&str], why: &str) {
    let ok = Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        fail(why);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn provision_tools() {
    // (what is checked, the Debian package that provides it)
    let debian: Vec<&str> = [
        (
            runs("chromedriver", &["--version"]),
            "chromium chromium-driver",
        ),
        (runs("node", &["--version"]), "nodejs"),
        (runs("npm", &["--version"]), "npm"),
        (runs("curl", &["--version"]), "curl"),
        (runs("python3", &["-m", "pip", "--version"]), "python3-pip"),
    ]
    .into_iter()
    .filter(|(present, _)| !present)
    .map(|(_, package)| package)
    .collect();
    if !debian.is_empty() {
        let packages = debian.join(" ");
        if is_root() && runs("apt-get", &["--version"]) {
            println!("xtask: installing {packages}");
            run("apt-get", &["update", "-qq"], "apt-get update failed");
            let mut args = vec!["install", "-y", "-qq"];
            args.extend(debian.iter().flat_map(|p| p.split(' ')));
            run("apt-get", &args, "apt-get install failed");
        } else {
            fail(&format!(
                "the demo's tests need Debian packages that are missing; run:\n    sudo apt-get install -y {packages}"
            ));
        }
    }
    let python: Vec<&str> = [
        ("requests", "requests"),
        ("openapi_spec_validator", "openapi-spec-validator"),
    ]
    .into_iter()
    .filter(|(module, _)| !runs("python3", &["-c", &format!("import {module}")]))
    .map(|(_, package)| package)
    .collect();
    if !python.is_empty() {
        let mut args = vec!["-m", "pip", "install", "--quiet"];
        args.extend(&python);
        let installed = runs("python3", &args) || {
            // Debian's Python refuses a system-wide pip install (PEP 668).
            args.push("--break-system-packages");
            is_root() && runs("python3", &args)
        };
        if !installed {
            fail(&format!(
                "the demo's tests need Python modules that are missing; run:\n    python3 -m pip install {}",
                python.join(" ")
            ));
        }
    }
}

/// Installs the pinned axe-core into `target/npm` (once); its browser
/// bundle's path.
fn provision_axe_core(root: &std::path::Path) -> String {
    let dir = root.join(AXE_CORE_DIR);
    let bundle = dir.join("node_modules/axe-core/axe.min.js");
    let version = AXE_CORE.rsplit('@').next().expect("name@version");
    let installed = std::fs::read_to_string(dir.join("node_modules/axe-core/package.json"))
        .is_ok_and(|p| p.contains(&format!("\"version\": \"{version}\"")));
    if !installed {
        println!("xtask: installing {AXE_CORE} into {AXE_CORE_DIR}");
        let _ = std::fs::create_dir_all(&dir);
        run(
            "npm",
            &[
                "install",
                "--prefix",
                &dir.to_string_lossy(),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                AXE_CORE,
            ],
            "npm install axe-core failed (the browser tests need it)",
        );
    }
    if !bundle.is_file() {
        fail(&format!(
            "{} is missing after npm install",
            bundle.display()
        ));
    }
    bundle.to_string_lossy().into_owned()
}

/// Whether something accepts TCP connections at `host:port` of `url`.
fn answers(url: &str, default_port: u16) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split(['/', '?']).next().unwrap_or("");
    let addr = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

fn database_url() -> String {
    let url = env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
    if answers(&url, 5432) {
        return url;
    }
    // A local cluster that is installed but stopped (Debian's layout).
    if let Ok(versions) = std::fs::read_dir("/etc/postgresql") {
        for version in versions.flatten() {
            let version = version.file_name().to_string_lossy().into_owned();
            println!("xtask: starting PostgreSQL {version}");
            runs(
                "pg_ctlcluster",
                &["--skip-systemctl-redirect", &version, "main", "start"],
            );
        }
        for _ in 0..30 {
            if answers(&url, 5432) {
                return url;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    fail(&format!(
        "PostgreSQL does not answer at {url}; start it, or set DATABASE_URL=postgres://user@host:port/db"
    ))
}

fn redis_url() -> String {
    let url = env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into());
    if answers(&url, 6379) {
        return url;
    }
    if !runs("redis-server", &["--version"]) && is_root() && runs("apt-get", &["--version"]) {
        println!("xtask: installing redis-server");
        run(
            "apt-get",
            &["install", "-y", "-qq", "redis-server"],
            "apt-get install failed",
        );
    }
    if runs("redis-server", &["--version"]) {
        println!("xtask: starting redis-server");
        runs(
            "redis-server",
            &["--daemonize", "yes", "--save", "", "--appendonly", "no"],
        );
        for _ in 0..30 {
            if answers(&url, 6379) {
                return url;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    fail(&format!(
        "Redis does not answer at {url}; start it (`redis-server --daemonize yes`), or set REDIS_URL=redis://host:port"
    ))
}
