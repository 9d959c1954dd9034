//! OpenTelemetry export (feature `otel`): the framework's spans (`cqrs.apply`, `cqrs.handle`,
//! `cqrs.relay`, and the service's own) go by OTLP over HTTP to the endpoint of the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); the other standard
//! `OTEL_*` variables (service name, headers, timeout) apply as the OpenTelemetry SDK reads them.
//! Without the endpoint nothing is exported and tracing stays local.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::error::{Error, Result};

/// Keeps the exporter running; dropping it sends the spans still buffered.
#[derive(Debug)]
pub struct OtelGuard {
    provider: SdkTracerProvider,
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "OpenTelemetry: the last spans were not exported");
        }
    }
}

/// The `tracing` layer that exports spans by OTLP, when the standard endpoint variable is
/// set (`None` otherwise), named `service` unless `OTEL_SERVICE_NAME` says otherwise. Keep the
/// guard until the process ends.
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// let otel = cqrs_rabbit::telemetry::otlp_layer("catalogue").expect("a valid OTLP setting");
/// let (layer, _guard) = otel.map_or((None, None), |(l, g)| (Some(l), Some(g)));
/// tracing_subscriber::registry().with(layer).init();
/// ```
pub fn otlp_layer<S>(service: &str) -> Result<Option<(impl Layer<S>, OtelGuard)>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let set = |key: &str| std::env::var_os(key).is_some_and(|v| !v.is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| Error::Input(format!("cannot set up the OTLP exporter: {e}")))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(service.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("cqrs-rs");
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(Some((
        tracing_opentelemetry::layer().with_tracer(tracer),
        OtelGuard { provider },
    )))
}
