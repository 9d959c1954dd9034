//! The HTTP endpoint of a process: `/metrics` (Prometheus text format), `/health/live` and
//! `/health/ready` (JSON, 200 or 503), for Prometheus and Kubernetes probes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::health::{Health, Report};
use super::names;
use crate::error::{Error, Result};

/// The recorder this process installed, if it did.
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// How often histograms are compacted when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's `metrics` recorder, with the framework's
/// histogram buckets and help texts; a second call returns the same handle. The service's own
/// `metrics::counter!`s land in the same registry and on the same `/metrics`.
///
/// Fails if another `metrics` recorder is installed already (then render that one yourself and
/// pass `None` to [`serve`]).
pub fn install_recorder() -> Result<PrometheusHandle> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = prometheus_builder()?
        .install_recorder()
        .map_err(|e| Error::Input(format!("cannot install the Prometheus recorder: {e}")))?;
    names::describe();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// The Prometheus exporter's builder with the framework's histogram buckets (seconds from
/// 0.5 ms to 5 min, batch sizes from 1 to 1000), for a service that builds its own recorder.
pub fn prometheus_builder() -> Result<PrometheusBuilder> {
    let failed = |e: metrics_exporter_prometheus::BuildError| {
        Error::Input(format!("cannot configure the Prometheus recorder: {e}"))
    };
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            names::SECONDS_BUCKETS,
        )
        .map_err(failed)?
        .set_buckets_for_metric(
            Matcher::Suffix("_messages".to_owned()),
            names::BATCH_BUCKETS,
        )
        .map_err(failed)
}

/// A running endpoint.
#[derive(Debug)]
pub struct Endpoint {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Where it listens (the port chosen by the system when the address said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until it stopped (its shutdown future resolved).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

#[derive(Clone)]
struct Shared {
    health: Health,
    metrics: Option<PrometheusHandle>,
}

/// Serves `/metrics` (from `metrics`, when given), `/health/live` and `/health/ready` (from
/// `health`) on `addr` until `shutdown` resolves.
///
/// ```no_run
/// # async fn run() -> Result<(), cqrs_rabbit::Error> {
/// use cqrs_rabbit::telemetry::{Health, install_recorder, serve};
/// let health = Health::new();
/// let endpoint = serve(
///     "127.0.0.1:9464".parse().unwrap(),
///     health.clone(),
///     Some(install_recorder()?),
///     std::future::pending::<()>(),
/// )
/// .await?;
/// // give `health` to the relay and the consumer: `Relay::with_health(health.clone())`
/// # Ok(()) }
/// ```
pub async fn serve<F>(
    addr: SocketAddr,
    health: Health,
    metrics: Option<PrometheusHandle>,
    shutdown: F,
) -> Result<Endpoint>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io {
            context: format!("cannot listen on {addr} (CQRS_METRICS_ADDR)"),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| Error::Io {
        context: format!("cannot read the address of {addr}"),
        source,
    })?;
    let upkeep = metrics.clone();
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(Shared { health, metrics });
    let task = tokio::spawn(async move {
        let upkeep = async {
            let Some(handle) = upkeep else {
                return std::future::pending().await;
            };
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
        tokio::select! {
            result = server.into_future() => {
                if let Err(error) = result {
                    tracing::warn!(%error, "the metrics endpoint stopped");
                }
            }
            () = upkeep => {}
        }
    });
    tracing::info!(address = %local_addr, "serving /metrics, /health/live and /health/ready");
    Ok(Endpoint { local_addr, task })
}

async fn render(State(shared): State<Shared>) -> Response {
    match shared.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this process has no Prometheus recorder of its own\n",
        )
            .into_response(),
    }
}

async fn live(State(shared): State<Shared>) -> Response {
    answer(&shared.health.live())
}

async fn ready(State(shared): State<Shared>) -> Response {
    answer(&shared.health.ready())
}

fn answer(report: &Report) -> Response {
    let status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}
