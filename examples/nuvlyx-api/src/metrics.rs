//! `--metrics-addr`: the counters tower-pat records (rejections by reason,
//! store latency, change-feed health, the filter of known ids) and the
//! cache's view, in the Prometheus text format, on a listener of their own:
//! an operator's scraper reaches it, API clients never do.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::store::CacheStatsFn;

/// Installs the process's recorder. Call once, before serving, so that
/// every value from the start is kept.
pub fn install() -> Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Serves `GET /metrics` on `addr`, in the background.
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle, cache: CacheStatsFn) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let (handle, cache) = (handle.clone(), cache.clone());
            async move { render(&handle, &cache()) }
        }),
    );
    eprintln!("metrics on http://{addr}/metrics");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

fn render(handle: &PrometheusHandle, cache: &tower_pat::store::CacheStats) -> String {
    metrics::gauge!("tower_pat_cache_entries", "kind" => "record").set(cache.entries as f64);
    metrics::gauge!("tower_pat_cache_entries", "kind" => "unknown_id")
        .set(cache.negative_entries as f64);
    metrics::counter!("tower_pat_cache_lookups_total", "answer" => "hit").absolute(cache.hits);
    metrics::counter!("tower_pat_cache_lookups_total", "answer" => "miss").absolute(cache.misses);
    handle.run_upkeep();
    handle.render()
}
