//! Middleware overhead as ratios, measured in interleaved rounds.
//!
//! Run: `cargo bench --bench overhead --all-features`
//! (`OVERHEAD_ROUNDS`, default 40; `OVERHEAD_BATCH` requests per case and
//! round, default 20000; `OVERHEAD_ONLY=malformed` keeps the cases whose
//! name contains that text, plus the baselines — handy under `perf record`).
//!
//! criterion (`per_request`) measures one case after another, so on a
//! shared machine whose speed drifts by tens of percent over minutes, a
//! difference between two cases can be drift. Here every round runs a
//! batch of every case, in an order rotated from round to round, and each
//! ratio is taken within a round: (case − bare service) / SHA-256 of the
//! token, valid overhead / the hand-written verifier's overhead (the floor
//! of #12), and malformed overhead / valid overhead. The report gives the
//! median over rounds and the spread (25th–75th percentile).

mod common;

use std::time::Instant;

use common::{BARE, SHA256};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn summary(v: &[f64], digits: usize) -> String {
    format!(
        "{:.d$} [{:.d$}–{:.d$}]",
        quantile(v, 0.5),
        quantile(v, 0.25),
        quantile(v, 0.75),
        d = digits
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 2 } else { env("OVERHEAD_ROUNDS", 40) };
    let batch = if quick {
        200
    } else {
        env("OVERHEAD_BATCH", 20000)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cases = common::cases(&rt);
    if let Ok(only) = std::env::var("OVERHEAD_ONLY") {
        cases.retain(|c| c.name.contains(&only) || [BARE, SHA256, common::FLOOR].contains(&c.name));
    }
    let n = cases.len();
    let idx = |name: &str| cases.iter().position(|c| c.name == name);
    let (bare, sha) = (idx(BARE).unwrap(), idx(SHA256).unwrap());
    let valid_and_malformed = idx("tower-pat valid token").zip(idx("tower-pat malformed"));
    let floor = idx(common::FLOOR);
    let alone = idx("tower-pat valid token, AuthLayer alone (no scope check)");
    let limits = idx(common::LIMITS_BASE).zip(idx(common::LIMITED));
    let limits_json = idx(common::LIMITS_BASE_JSON).zip(idx(common::LIMITED_JSON));

    // Warm-up: one batch of each.
    for c in &mut cases {
        for _ in 0..batch {
            (c.run)();
        }
    }
    // ns per call, per round and case.
    let mut t = vec![vec![0.0; n]; rounds];
    for (r, row) in t.iter_mut().enumerate() {
        for k in 0..n {
            let i = (k + r) % n;
            let run = &mut cases[i].run;
            let start = Instant::now();
            for _ in 0..batch {
                run();
            }
            row[i] = start.elapsed().as_nanos() as f64 / batch as f64;
        }
    }

    println!("{rounds} rounds x {batch} calls per case; median [25th-75th percentile] over rounds");
    println!(
        "{:<58} {:>22} {:>22} {:>18}",
        "case", "ns per call", "overhead over bare", "overhead / SHA-256"
    );
    for (i, c) in cases.iter().enumerate() {
        let col: Vec<f64> = t.iter().map(|row| row[i]).collect();
        let over: Vec<f64> = t.iter().map(|row| row[i] - row[bare]).collect();
        let per_sha: Vec<f64> = t
            .iter()
            .map(|row| (row[i] - row[bare]) / row[sha])
            .collect();
        let (o, s) = if i == bare || i == sha {
            ("-".to_owned(), "-".to_owned())
        } else {
            (summary(&over, 0), summary(&per_sha, 2))
        };
        println!(
            "{:<58} {:>22} {:>22} {:>18}",
            c.name,
            summary(&col, 0),
            o,
            s
        );
    }
    for (pair, label) in [
        (limits, "empty answer"),
        (limits_json, "answer with a Content-Type"),
    ] {
        let Some((base, limited)) = pair else {
            continue;
        };
        let ratio: Vec<f64> = t
            .iter()
            .map(|row| (row[limited] - row[base]) / (row[base] - row[bare]))
            .collect();
        println!(
            "budget + allowlist added / valid path's overhead, {label} (target <= 0.25): {}",
            summary(&ratio, 3)
        );
    }
    for (case, label) in [
        (
            valid_and_malformed.map(|(v, _)| v),
            "valid, with the scope check",
        ),
        (alone, "valid, AuthLayer alone"),
    ] {
        if let (Some(case), Some(floor)) = (case, floor) {
            let ratio: Vec<f64> = t
                .iter()
                .map(|row| (row[case] - row[bare]) / (row[floor] - row[bare]))
                .collect();
            println!(
                "{label}: overhead / hand-written verifier overhead (target <= 1.0): {}",
                summary(&ratio, 2)
            );
        }
    }
    if let Some((valid, malformed)) = valid_and_malformed {
        let ratio: Vec<f64> = t
            .iter()
            .map(|row| (row[malformed] - row[bare]) / (row[valid] - row[bare]))
            .collect();
        println!(
            "malformed overhead / valid overhead (target <= 0.4): {}",
            summary(&ratio, 2)
        );
    }
}
