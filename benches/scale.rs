//! The scale bench's Rust side, driven by `benches/scale.sh`: bulk-loads a
//! PostgreSQL token store, measures cold lookups and the memory of a cache
//! of a million records, and generates the traffic (Zipf-distributed valid
//! tokens, forged tokens, CLI revocations and creations) against several
//! instances of the demo server.
//!
//! ```text
//! scale load   URL SCHEMA TOKENS OWNERS TOKENS_FILE
//! scale cold   URL SCHEMA TOKENS_FILE SAMPLES
//! scale memory URL SCHEMA ENTRIES
//! scale drive  TOKENS_FILE CA_PEM TARGETS SECS FORGED_SHARE ZIPF_S CONNS REVOCATIONS CREATIONS CLI...
//! scale notify-flood URL SCHEMA SECS
//! ```
//!
//! Every command prints `key=value` lines for the script to tabulate.

#[path = "common/alloc.rs"]
mod alloc;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloc::live;
use tower_pat::store::{CacheConfig, CachedStore, TokenStore};
use tower_pat::token::TokenId;
use tower_pat_sqlx_store::PostgresStore;

/// Counts live heap bytes, for the memory command.
#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn main() {
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("load") => rt.block_on(load(
            &args[1],
            &args[2],
            num(&args[3]),
            num(&args[4]),
            &args[5],
        )),
        Some("cold") => rt.block_on(cold(&args[1], &args[2], &args[3], num(&args[4]))),
        Some("memory") => rt.block_on(memory(&args[1], &args[2], num(&args[3]))),
        Some("drive") => rt.block_on(drive(&args[1..])),
        Some("notify-flood") => rt.block_on(notify_flood(&args[1], &args[2], &args[3])),
        _ => {
            eprintln!("usage: see the header of benches/scale.rs");
            std::process::exit(2);
        }
    }
}

fn num(s: &str) -> usize {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

/// The demo's token format.
static FORMAT: std::sync::LazyLock<tower_pat::TokenFormat> =
    std::sync::LazyLock::new(|| nuvlyx::live().format().clone());

/// The id of a token, read by the token format itself.
fn id_of(token: &str) -> TokenId {
    FORMAT.parse(token).unwrap()
}

/// Mints `tokens` tokens over `owners` owners, writes them with one
/// `COPY` (which the triggers record as one bulk change: listening
/// instances scan again), and writes the plaintexts to `file`, one per
/// line (bench data, never real tokens).
async fn load(url: &str, schema: &str, tokens: usize, owners: usize, file: &str) {
    let store = PostgresStore::connect_in_schema(url, schema).await.unwrap();
    let format = &*FORMAT;
    let scopes = [
        "orders:read",
        "orders:read products:read",
        "orders:read products:read wallet:read",
    ];
    let started = Instant::now();
    let now = micros(SystemTime::now());
    let mut csv = Vec::with_capacity(tokens * 160);
    let mut plain = Vec::with_capacity(tokens * 82);
    for i in 0..tokens {
        let m = format.mint();
        let digest = m.digest.to_hex();
        writeln!(
            csv,
            "{},\\x{},owner-{:05},scale {i},{},{},{now}",
            i64::from_be_bytes(*m.id.as_bytes()),
            digest,
            i % owners,
            scopes[i % scopes.len()],
            m.token.preview(),
        )
        .unwrap();
        plain.extend_from_slice(m.token.expose_secret().as_bytes());
        plain.push(b'\n');
    }
    let minted = started.elapsed();
    let mut conn = store.pool().acquire().await.unwrap();
    let mut copy = conn
        .copy_in_raw("COPY tower_pat_tokens (id, digest, owner, name, scopes, preview, created_at) FROM STDIN WITH (FORMAT csv)")
        .await
        .unwrap();
    for chunk in csv.chunks(1 << 20) {
        copy.send(chunk).await.unwrap();
    }
    let rows = copy.finish().await.unwrap();
    drop(conn);
    let copied = started.elapsed();
    sqlx::query("ANALYZE tower_pat_tokens")
        .execute(store.pool())
        .await
        .unwrap();
    std::fs::write(file, plain).unwrap();
    println!("load_rows={rows}");
    println!("load_mint_s={:.2}", minted.as_secs_f64());
    println!("load_copy_s={:.2}", (copied - minted).as_secs_f64());
    println!("load_total_s={:.2}", started.elapsed().as_secs_f64());
}

fn read_tokens(file: &str) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A small, fast, seeded generator (SplitMix64): bench traffic, not secrets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Lookups of random stored ids straight from a `PostgresStore` (no cache;
/// not listening, so no filter): one query each, one at a time.
async fn cold(url: &str, schema: &str, file: &str, samples: usize) {
    let store = PostgresStore::connect_in_schema(url, schema).await.unwrap();
    let tokens = read_tokens(file);
    let mut rng = Rng(42);
    // Warm the pool's connection and prepared statement.
    store.find(id_of(&tokens[0])).await.unwrap().unwrap();
    let mut ms = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = id_of(&tokens[rng.next() as usize % tokens.len()]);
        let t = Instant::now();
        assert!(store.find(id).await.unwrap().is_some());
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    println!("cold_samples={samples}");
    println!("cold_p50_ms={:.3}", percentile(&ms, 0.50));
    println!("cold_p99_ms={:.3}", percentile(&ms, 0.99));
    println!("cold_max_ms={:.3}", percentile(&ms, 1.0));
}

/// Bytes per cached record with `entries` records of the store cached,
/// and the size of the filter of known ids.
async fn memory(url: &str, schema: &str, entries: usize) {
    let store = PostgresStore::connect_in_schema(url, schema).await.unwrap();
    let before = live();
    let cached = CachedStore::with_config(
        store.clone(),
        CacheConfig::default()
            .max_entries(entries as u64)
            .ttl(Duration::from_secs(3600)),
    );
    let _listening = store
        .listen(cached.invalidator(), Duration::from_secs(5))
        .await
        .unwrap();
    let after_listen = live();
    let (ids, filter_bytes) = store.known_ids_stats().unwrap();
    // Every stored id, read in pages.
    let all: Vec<i64> = sqlx::query_scalar("SELECT id FROM tower_pat_tokens ORDER BY id LIMIT $1")
        .bind(entries as i64)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let base = live();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let all = Arc::new(all);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (cached, next, all) = (cached.clone(), next.clone(), all.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&id) = all.get(i) else { break };
                let id = TokenId::from_bytes(id.to_be_bytes());
                assert!(cached.find(id).await.unwrap().is_some());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let grown = live() - base;
    let positive = cached.stats().entries;
    println!("memory_fill_s={:.1}", started.elapsed().as_secs_f64());
    println!("memory_cached={positive}");
    println!(
        "memory_bytes_per_cached={:.0}",
        grown as f64 / positive as f64
    );
    println!("filter_ids={ids}");
    println!("filter_bytes={filter_bytes}");
    println!("filter_heap_growth_at_listen={}", after_listen - before);
}

#[derive(Default)]
struct Counts {
    valid: u64,
    valid_ok: u64,
    valid_401_revoked: u64,
    valid_unexpected: u64,
    forged: u64,
    forged_401: u64,
    forged_unexpected: u64,
    errors: u64,
    /// 200s for a revoked token, for a request sent later than 1 s after
    /// the revoking command returned.
    accepted_after_bound: u64,
    /// 200s for a revoked token within the bound (in flight, not yet heard).
    accepted_within_bound: u64,
    latencies_ms: Vec<f64>,
    /// Latencies of the requests with valid tokens alone.
    valid_latencies_ms: Vec<f64>,
    /// (instance, rank) pairs asked for: the first request of each pair
    /// misses any cache, however large and long-lived.
    seen: std::collections::HashSet<u64>,
}

/// `drive`: load from `conns` connections, round-robin over the targets,
/// for `secs` seconds; meanwhile `revocations` hot tokens are revoked and
/// `creations` tokens created through the CLI, and each is probed on every
/// instance until it takes effect.
async fn drive(args: &[String]) {
    let tokens = Arc::new(read_tokens(&args[0]));
    let ca = std::fs::read(&args[1]).unwrap();
    let targets: Arc<Vec<String>> = Arc::new(
        args[2]
            .split(',')
            .map(|t| format!("{t}/api/v1/external/orders"))
            .collect(),
    );
    let secs: f64 = args[3].parse().unwrap();
    let forged_share: f64 = args[4].parse().unwrap();
    let zipf_s: f64 = args[5].parse().unwrap();
    let conns = num(&args[6]);
    let revocations = num(&args[7]);
    let creations = num(&args[8]);
    let cli: Arc<Vec<String>> = Arc::new(args[9..].to_vec());

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .pool_max_idle_per_host(conns)
        .build()
        .unwrap();

    // Zipf over ranks: the cumulative weights, searched by bisection.
    let mut cdf = Vec::with_capacity(tokens.len());
    let mut sum = 0.0;
    for k in 1..=tokens.len() {
        sum += 1.0 / (k as f64).powf(zipf_s);
        cdf.push(sum);
    }
    for c in &mut cdf {
        *c /= sum;
    }
    let cdf = Arc::new(cdf);
    let forged: Arc<Vec<String>> = Arc::new(
        (0..200_000)
            .map(|_| FORMAT.mint().token.expose_secret().to_owned())
            .collect(),
    );
    // Revoked ranks, with when the revoking command returned (`None`
    // while it runs: an instance may hear of it before the command exits).
    let revoked: Arc<Mutex<HashMap<usize, Option<Instant>>>> = Arc::default();
    let bound = Duration::from_secs(1);

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut workers = Vec::new();
    for w in 0..conns {
        let (client, tokens, targets, cdf, forged, revoked) = (
            client.clone(),
            tokens.clone(),
            targets.clone(),
            cdf.clone(),
            forged.clone(),
            revoked.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(0x5EED + w as u64);
            let mut c = Counts::default();
            let mut turn = w;
            while Instant::now() < deadline {
                turn += 1;
                let target = &targets[turn % targets.len()];
                let is_forged = rng.unit() < forged_share;
                let (token, rank) = if is_forged {
                    (&forged[rng.next() as usize % forged.len()], usize::MAX)
                } else {
                    let u = rng.unit();
                    let rank = cdf.partition_point(|&c| c < u).min(tokens.len() - 1);
                    (&tokens[rank], rank)
                };
                let sent = Instant::now();
                let status = client
                    .get(target)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                let ms = sent.elapsed().as_secs_f64() * 1e3;
                c.latencies_ms.push(ms);
                if !is_forged {
                    c.valid_latencies_ms.push(ms);
                }
                let Ok(status) = status else {
                    c.errors += 1;
                    continue;
                };
                if is_forged {
                    c.forged += 1;
                    if status == 401 {
                        c.forged_401 += 1
                    } else {
                        c.forged_unexpected += 1
                    }
                    continue;
                }
                c.valid += 1;
                c.seen
                    .insert(((turn % targets.len()) as u64) << 32 | rank as u64);
                let revoked_at = revoked.lock().unwrap().get(&rank).copied();
                match (status, revoked_at) {
                    (200, None) | (200, Some(None)) => c.valid_ok += 1,
                    (200, Some(Some(at))) if sent > at + bound => c.accepted_after_bound += 1,
                    (200, Some(Some(_))) => c.accepted_within_bound += 1,
                    (401, Some(_)) => c.valid_401_revoked += 1,
                    _ => {
                        c.valid_unexpected += 1;
                        eprintln!("unexpected {status} for a valid token (rank {rank})");
                    }
                }
            }
            c
        }));
    }

    // Revocations and creations through the CLI, spread over the run, each
    // probed on every instance until it shows.
    let events = revocations + creations;
    let gap = Duration::from_secs_f64(secs / (events as f64 + 1.0));
    let mut revoke_ms = Vec::new();
    let mut create_ms = Vec::new();
    let mut cli_ms = Vec::new();
    let mut create_refused = 0u64;
    let mut probe_rng = Rng(7);
    let (mut revoked_n, mut created_n) = (0, 0);
    for e in 0..events {
        tokio::time::sleep_until((started + gap * (e as u32 + 1)).into()).await;
        // Alternate, then finish whichever kind remains.
        let revoke = revoked_n < revocations && (e % 2 == 0 || created_n >= creations);
        if revoke {
            revoked_n += 1;
            // A hot token: cached on every instance.
            let rank = loop {
                let r = 1 + probe_rng.next() as usize % 200;
                if !revoked.lock().unwrap().contains_key(&r) {
                    break r;
                }
            };
            let id = id_of(&tokens[rank]).to_string();
            revoked.lock().unwrap().insert(rank, None);
            let t = Instant::now();
            run_cli(&cli, &["tokens", "revoke", &id]).await;
            let done = Instant::now();
            cli_ms.push((done - t).as_secs_f64() * 1e3);
            revoked.lock().unwrap().insert(rank, Some(done));
            for (ms, _) in probe_all(&client, &targets, &tokens[rank], 401, done).await {
                revoke_ms.push(ms);
            }
        } else {
            created_n += 1;
            let out = run_cli(
                &cli,
                &[
                    "tokens",
                    "create",
                    "--name",
                    &format!("scale-new-{}-{e}", std::process::id()),
                    "--scopes",
                    "orders:read",
                ],
            )
            .await;
            let done = Instant::now();
            let token = out.trim().to_owned();
            for (ms, first_try) in probe_all(&client, &targets, &token, 200, done).await {
                create_ms.push(ms);
                if !first_try {
                    create_refused += 1;
                }
            }
        }
    }

    let mut total = Counts::default();
    for w in workers {
        let c = w.await.unwrap();
        total.valid += c.valid;
        total.valid_ok += c.valid_ok;
        total.valid_401_revoked += c.valid_401_revoked;
        total.valid_unexpected += c.valid_unexpected;
        total.forged += c.forged;
        total.forged_401 += c.forged_401;
        total.forged_unexpected += c.forged_unexpected;
        total.errors += c.errors;
        total.accepted_after_bound += c.accepted_after_bound;
        total.accepted_within_bound += c.accepted_within_bound;
        total.latencies_ms.extend(c.latencies_ms);
        total.valid_latencies_ms.extend(c.valid_latencies_ms);
        total.seen.extend(c.seen);
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies_ms.sort_by(f64::total_cmp);
    total.valid_latencies_ms.sort_by(f64::total_cmp);
    revoke_ms.sort_by(f64::total_cmp);
    create_ms.sort_by(f64::total_cmp);
    cli_ms.sort_by(f64::total_cmp);
    let requests = total.valid + total.forged;
    println!("drive_secs={elapsed:.1}");
    println!("drive_requests={requests}");
    println!("drive_rps={:.0}", requests as f64 / elapsed);
    println!("drive_p50_ms={:.2}", percentile(&total.latencies_ms, 0.5));
    println!("drive_p99_ms={:.2}", percentile(&total.latencies_ms, 0.99));
    println!(
        "valid_p50_ms={:.2}",
        percentile(&total.valid_latencies_ms, 0.5)
    );
    println!(
        "valid_p99_ms={:.2}",
        percentile(&total.valid_latencies_ms, 0.99)
    );
    println!("valid={}", total.valid);
    println!("valid_ok={}", total.valid_ok);
    println!("first_sightings={}", total.seen.len());
    println!("valid_401_revoked={}", total.valid_401_revoked);
    println!("valid_unexpected={}", total.valid_unexpected);
    println!("forged={}", total.forged);
    println!("forged_401={}", total.forged_401);
    println!("forged_unexpected={}", total.forged_unexpected);
    println!("errors={}", total.errors);
    println!("accepted_within_bound={}", total.accepted_within_bound);
    println!("accepted_after_bound={}", total.accepted_after_bound);
    println!("revocation_samples={}", revoke_ms.len());
    println!("revocation_p50_ms={:.1}", percentile(&revoke_ms, 0.5));
    println!("revocation_p99_ms={:.1}", percentile(&revoke_ms, 0.99));
    println!("revocation_max_ms={:.1}", percentile(&revoke_ms, 1.0));
    println!("creation_samples={}", create_ms.len());
    println!("creation_p99_ms={:.1}", percentile(&create_ms, 0.99));
    println!("creation_max_ms={:.1}", percentile(&create_ms, 1.0));
    // A fresh token must work on every instance at the first request
    // after the CLI returned.
    println!("creation_refused={create_refused}");
    println!("cli_p50_ms={:.0}", percentile(&cli_ms, 0.5));
}

/// Runs the demo's CLI (`cli` is the program and its store arguments) and
/// returns its standard output; panics if it fails.
async fn run_cli(cli: &[String], args: &[&str]) -> String {
    let out = tokio::process::Command::new(&cli[0])
        .args(args)
        .args(&cli[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{cli:?} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// For each target: milliseconds from `since` until it answers `want`
/// for `token` (probing every millisecond; panics after 5 s), and whether
/// its first answer already was `want`.
async fn probe_all(
    client: &reqwest::Client,
    targets: &[String],
    token: &str,
    want: u16,
    since: Instant,
) -> Vec<(f64, bool)> {
    let probes = targets.iter().map(|target| async move {
        let mut first_try = true;
        loop {
            let status = client
                .get(target)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if status == want {
                return (since.elapsed().as_secs_f64() * 1e3, first_try);
            }
            first_try = false;
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "{target} still answers {status}, not {want}, after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    futures_util::future::join_all(probes).await
}

/// `notify-flood`: a login role with nothing but `CONNECT` (created if
/// missing) sends `NOTIFY`s of every kind on the schema's channel, as fast
/// as one connection goes, for `secs` seconds: what issue #21's attacker
/// did. Prints how many it sent.
async fn notify_flood(url: &str, schema: &str, secs: &str) {
    use sqlx::Connection;
    let secs: f64 = secs.parse().unwrap();
    let admin = PostgresStore::connect(url).await.unwrap();
    sqlx::query(
        "DO $$ BEGIN CREATE ROLE scale_outsider LOGIN NOSUPERUSER; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    )
    .execute(admin.pool())
    .await
    .unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut conn = sqlx::PgConnection::connect_with(&options.username("scale_outsider"))
        .await
        .unwrap();
    let channel = format!("tower_pat:{schema}");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        let payload = match sent % 5 {
            0 => "all".to_owned(),
            1 => format!("token:{}", FORMAT.mint().id),
            2 => "garbage".to_owned(),
            3 => "v2".to_owned(),
            _ => "owner:o1".to_owned(),
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&channel)
            .bind(payload)
            .execute(&mut conn)
            .await
            .unwrap();
        sent += 1;
    }
    println!("messages_sent={sent}");
}
