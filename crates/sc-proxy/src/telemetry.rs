//! Traces over OpenTelemetry: the `telemetry` section turned into the router's [`Telemetry`],
//! exporting spans in batches over OTLP/gRPC when `telemetry.otlp.endpoint` is set. Without it
//! nothing is built and no call makes a span.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use sc_router::Telemetry;
use serde::Deserialize;
use tracing::{info, warn};

use crate::config::ConfigError;

/// `telemetry`: traces of every gRPC call and control-plane request.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Where spans are exported; traces are made only when `otlp.endpoint` is set.
    pub otlp: OtlpConfig,
    /// The spans' `service.name`.
    pub service_name: String,
    /// The share of new traces recorded (those whose client sent no sampled `traceparent`),
    /// from 0.0 to 1.0; a client's sampling decision is followed.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp: OtlpConfig::default(),
            service_name: "spark-connect-proxy".into(),
            sample_ratio: 1.0,
        }
    }
}

/// `telemetry.otlp`: an OTLP/gRPC collector.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// The collector's address, e.g. `http://127.0.0.1:4317` (`https://` for TLS).
    pub endpoint: Option<String>,
    /// How long one export may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// gRPC metadata sent with every export (e.g. a vendor's API key; never logged or shown).
    pub headers: BTreeMap<String, String>,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: None,
            timeout: Duration::from_secs(10),
            headers: BTreeMap::new(),
        }
    }
}

impl TelemetryConfig {
    /// Checks the values; the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::Invalid(format!(
                "telemetry.sample_ratio is {}; use a number from 0.0 (no new traces) to 1.0 (all)",
                self.sample_ratio
            )));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "telemetry.service_name is empty; leave it out for spark-connect-proxy".into(),
            ));
        }
        if let Some(endpoint) = &self.otlp.endpoint {
            let uri = endpoint.parse::<http::Uri>().ok();
            let scheme = uri.as_ref().and_then(http::Uri::scheme_str);
            if !matches!(scheme, Some("http" | "https"))
                || uri.and_then(|u| u.host().map(str::to_owned)).is_none()
            {
                return Err(ConfigError::Invalid(format!(
                    "telemetry.otlp.endpoint '{endpoint}' is not an http:// or https:// address; write e.g. http://127.0.0.1:4317"
                )));
            }
        }
        for (name, value) in &self.otlp.headers {
            let valid = name
                .parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>()
                .is_ok()
                && value
                    .parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>()
                    .is_ok();
            if !valid {
                return Err(ConfigError::Invalid(format!(
                    "telemetry.otlp.headers.{name} is not a valid gRPC header (lowercase name, visible ASCII value)"
                )));
            }
        }
        if self.otlp.timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "telemetry.otlp.timeout is 0; give the exporter time, e.g. 10s".into(),
            ));
        }
        Ok(())
    }
}

/// The tracer provider behind the router's [`Telemetry`]; flush it at shutdown.
#[derive(Debug)]
pub(crate) struct Exporter(SdkTracerProvider);

impl Exporter {
    /// Exports what is left and stops. The batch exporter's thread sends through a channel
    /// served by this runtime, so the wait happens off it.
    pub(crate) async fn shutdown(self) {
        let provider = self.0;
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "the last spans could not be exported"),
            Err(e) => warn!(error = %e, "the span exporter did not stop"),
        }
    }
}

/// Builds the telemetry the configuration asks for (`None` without `telemetry.otlp.endpoint`).
/// Call inside the runtime that serves the control plane: the exporter's connection lives there.
pub(crate) fn start(
    config: &TelemetryConfig,
    version: &str,
) -> Result<Option<(Telemetry, Exporter)>, String> {
    let Some(endpoint) = &config.otlp.endpoint else {
        return Ok(None);
    };
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (name, value) in &config.otlp.headers {
        if let (Ok(name), Ok(value)) = (
            name.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            value.parse(),
        ) {
            metadata.insert(name, value);
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(config.otlp.timeout)
        .with_metadata(metadata)
        .build()
        .map_err(|e| {
            format!("cannot build the OTLP exporter for telemetry.otlp.endpoint '{endpoint}': {e}")
        })?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            version.to_owned(),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("spark-connect-proxy");
    let telemetry = Telemetry::new(
        opentelemetry::global::BoxedTracer::new(Box::new(tracer)),
        TraceContextPropagator::new(),
    );
    info!(endpoint = %endpoint, sample_ratio = config.sample_ratio, "traces are exported over OTLP/gRPC");
    Ok(Some((telemetry, Exporter(provider))))
}
