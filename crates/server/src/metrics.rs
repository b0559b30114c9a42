//! Prometheus metrics: the request latencies measured here, the domain's counts
//! ([`twofold_core::metrics`]), and `GET /metrics` to serve them all in the Prometheus text
//! format on a listener of its own (`TWOFOLD_METRICS_LISTEN`), never on the public one, where a
//! reverse proxy would publish it.
//!
//! Every request passes [`track_requests`], so it costs two clock reads, one hash look-up of
//! the route pattern (no allocation) and a few atomic adds: no lock. A series is allocated the
//! first time its route, method and status class are seen, and only once. Labels are bounded:
//! the route is the pattern of the route table (`/api/v1/admin/users/{id}`), never the path
//! asked for, and `unmatched` for anything the table does not know.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::gate::RouteEntry;
use crate::state::AppState;

/// Where a request took at most this long, in nanoseconds: 1 ms to 10 s. Password hashing
/// puts sign-ins near 50–250 ms; reads of a session take a millisecond or two.
const BOUNDS_NANOS: [u64; 13] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const UNMATCHED: &str = "unmatched";

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn status_class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES.len()) - 1
}

/// One histogram: a count per bucket (the last one past every bound) and the sum.
#[derive(Debug, Default)]
struct Series {
    buckets: [AtomicU64; BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Series {
    fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BOUNDS_NANOS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The route table's patterns and a series slot for each route, method and status class.
#[derive(Debug)]
struct Routes {
    /// Index 0 is [`UNMATCHED`].
    names: Vec<&'static str>,
    index: HashMap<&'static str, usize>,
    series: Vec<OnceLock<Box<Series>>>,
}

impl Routes {
    fn slot(route: usize, method: usize, class: usize) -> usize {
        (route * METHODS.len() + method) * STATUS_CLASSES.len() + class
    }
}

/// Request latencies by route, method and status class, and the requests being answered.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Known once [`crate::routes::app`] has built the route table.
    routes: OnceLock<Routes>,
    in_flight: AtomicI64,
}

impl HttpMetrics {
    /// Takes the route table's patterns as the only values of the `route` label. Done once,
    /// by [`crate::routes::app`]; later calls change nothing.
    pub fn know_routes(&self, inventory: &[RouteEntry]) {
        let mut names = vec![UNMATCHED];
        names.extend(inventory.iter().map(|entry| entry.path));
        let index = names
            .iter()
            .enumerate()
            .skip(1)
            .map(|(position, name)| (*name, position))
            .collect();
        let slots = names.len() * METHODS.len() * STATUS_CLASSES.len();
        let series = std::iter::repeat_with(OnceLock::new).take(slots).collect();
        let _ = self.routes.set(Routes {
            names,
            index,
            series,
        });
    }

    fn observe(&self, route: Option<&str>, method: usize, status: StatusCode, took: Duration) {
        let Some(routes) = self.routes.get() else {
            return;
        };
        let route = route
            .and_then(|route| routes.index.get(route).copied())
            .unwrap_or(0);
        let slot = Routes::slot(route, method, status_class_index(status));
        if let Some(series) = routes.series.get(slot) {
            series.get_or_init(Box::default).observe(took);
        }
    }
}

/// Counts a request in flight until dropped (also when the request is abandoned).
struct InFlight<'a>(&'a AtomicI64);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Middleware: times each request into [`HttpMetrics`].
pub async fn track_requests(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_index(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let in_flight = InFlight::enter(&metrics.in_flight);
    let response = next.run(request).await;
    drop(in_flight);
    let route = route.as_ref().map(MatchedPath::as_str);
    metrics.observe(route, method, response.status(), started.elapsed());
    response
}

impl Collector for HttpMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut gauge = encoder.encode_descriptor(
                "http_requests_in_flight",
                "HTTP requests being answered.",
                None,
                MetricType::Gauge,
            )?;
            gauge.encode_gauge(&self.in_flight.load(Ordering::Relaxed))?;
        }
        let Some(routes) = self.routes.get() else {
            return Ok(());
        };
        let seconds = Unit::Seconds;
        let mut histogram = encoder.encode_descriptor(
            "http_request_duration",
            "Time to answer an HTTP request, by method, route pattern and status class.",
            Some(&seconds),
            MetricType::Histogram,
        )?;
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(BOUNDS_NANOS.len() + 1);
        for (route, name) in routes.names.iter().enumerate() {
            for (method, method_name) in METHODS.iter().enumerate() {
                for (class, class_name) in STATUS_CLASSES.iter().enumerate() {
                    let slot = Routes::slot(route, method, class);
                    let Some(series) = routes.series.get(slot).and_then(OnceLock::get) else {
                        continue;
                    };
                    buckets.clear();
                    let bounds = BOUNDS_NANOS
                        .iter()
                        .map(|nanos| *nanos as f64 / 1e9)
                        .chain([f64::INFINITY]);
                    let counts = series
                        .buckets
                        .iter()
                        .map(|count| count.load(Ordering::Relaxed));
                    buckets.extend(bounds.zip(counts));
                    // The count is the buckets' total, so `+Inf` and `_count` always agree.
                    let count = buckets.iter().map(|(_, count)| count).sum();
                    let sum = series.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                    let labels = [
                        ("method", *method_name),
                        ("route", *name),
                        ("status", *class_name),
                    ];
                    histogram
                        .encode_family(&labels)?
                        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
                }
            }
        }
        Ok(())
    }
}

/// What `GET /metrics` encodes: every family, with the `twofold` prefix.
struct Scrape {
    registry: Registry,
    state: AppState,
}

/// The router of the metrics listener: `GET /metrics` and nothing else.
pub fn router(state: AppState) -> Router {
    let mut registry = Registry::with_prefix("twofold");
    state.service.metrics().register(&mut registry);
    registry.register_collector(Box::new(Arc::clone(&state.http_metrics)));
    let scrape = Arc::new(Scrape { registry, state });
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(scrape)
}

async fn serve_metrics(State(scrape): State<Arc<Scrape>>) -> Response {
    if let Err(error) = scrape.state.service.sample_metrics().await {
        // The rest is still worth having; the delivery queue's depth keeps its last value.
        tracing::warn!(error = %error, "cannot read the delivery queue's depth for the metrics");
    }
    let mut text = String::with_capacity(16 * 1024);
    match prometheus_text::encode(&mut text, &scrape.registry) {
        Ok(()) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(error = %error, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Gate;

    #[test]
    fn requests_land_in_their_route_method_and_class_and_unknown_routes_in_unmatched() {
        let metrics = HttpMetrics::default();
        // Before the routes are known nothing is counted (and nothing breaks).
        metrics.observe(None, 0, StatusCode::OK, Duration::from_millis(1));
        metrics.know_routes(&[RouteEntry {
            path: "/api/v1/account",
            gate: Gate::Public,
        }]);
        let took = Duration::from_millis(3);
        metrics.observe(Some("/api/v1/account"), 0, StatusCode::OK, took);
        metrics.observe(Some("/api/v1/account"), 0, StatusCode::OK, took);
        metrics.observe(Some("/nowhere/{x}"), 2, StatusCode::NOT_FOUND, took);
        metrics.observe(
            None,
            7,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(60),
        );
        let mut registry = Registry::with_prefix("twofold");
        registry.register_collector(Box::new(metrics));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        for line in [
            "# TYPE twofold_http_request_duration_seconds histogram\n",
            "twofold_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/account\",status=\"2xx\",le=\"0.0025\"} 0\n",
            "twofold_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/account\",status=\"2xx\",le=\"0.005\"} 2\n",
            "twofold_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/account\",status=\"2xx\"} 2\n",
            "twofold_http_request_duration_seconds_count{method=\"POST\",route=\"unmatched\",status=\"4xx\"} 1\n",
            "twofold_http_request_duration_seconds_bucket{method=\"other\",route=\"unmatched\",status=\"5xx\",le=\"10\"} 0\n",
            "twofold_http_request_duration_seconds_bucket{method=\"other\",route=\"unmatched\",status=\"5xx\",le=\"+Inf\"} 1\n",
            "twofold_http_requests_in_flight 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(text.matches("_count{").count(), 3, "{text}");
    }
}
