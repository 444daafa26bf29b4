//! The HTTP surface (SPEC §4): `/metrics` with content negotiation and gzip, the
//! status page `/` and its JSON twin `/api/v1/status`, `/-/healthy`, `/-/ready`,
//! and `/probe?target=DOMAIN` (SPEC §7.2, see [`crate::dns::targets`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;

use crate::status::{App, html_page, status_document};

/// `Content-Type` of the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics text 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Builds the router. `telemetry_path` is where metrics are served.
pub fn router(app: Arc<App>, telemetry_path: &str) -> Router {
    Router::new()
        .route(telemetry_path, get(metrics))
        .route("/", get(index))
        .route("/api/v1/status", get(status_json))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .route("/probe", get(probe))
        .fallback(not_found)
        .layer(CompressionLayer::new().gzip(true).no_br().no_deflate().no_zstd())
        .layer(axum::middleware::from_fn_with_state(app.auth.clone(), crate::web::require_auth))
        .with_state(app)
}

/// Does the `Accept` header ask for OpenMetrics (with a non-zero quality)?
pub fn wants_openmetrics(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else { return false };
    accept.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/openmetrics-text") {
            return false;
        }
        let q = params.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
        q > 0.0
    })
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let open = wants_openmetrics(headers.get(header::ACCEPT));
    let ctype = if open { OPENMETRICS_CONTENT_TYPE } else { TEXT_CONTENT_TYPE };
    let encode = {
        let app = app.clone();
        move || if open { app.metrics.encode_openmetrics() } else { app.metrics.encode_text() }
    };
    let body = match app.persister.clone() {
        // what this answer shows is saved before it is sent (SPEC §7.1)
        Some(p) => match tokio::task::spawn_blocking(move || p.render(encode)).await {
            Ok(b) => b,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        None => encode(),
    };
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}

/// The header in which Prometheus sends the scrape timeout.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

async fn probe(State(app): State<Arc<App>>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    use crate::dns::targets::{parse_request, probe_deadline};
    let settings = app.dns.probe_settings();
    let req = match parse_request(query.as_deref().unwrap_or(""), &settings.allow) {
        Ok(r) => r,
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return (status, format!("{}\n", refusal.message())).into_response();
        }
    };
    let header = headers.get(SCRAPE_TIMEOUT_HEADER).and_then(|v| v.to_str().ok());
    let deadline = probe_deadline(header, app.dns.longest_deadline());
    let (outcome, source) = app.dns.probe(&req, deadline).await;
    tracing::debug!(domain = %req.target, ?source, "probe");
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(crate::dns::state::ProbeCollector(outcome)));
    let mut body = String::with_capacity(4096);
    let (encoded, ctype) = if wants_openmetrics(headers.get(header::ACCEPT)) {
        (prometheus_client::encoding::text::encode(&mut body, &registry), OPENMETRICS_CONTENT_TYPE)
    } else {
        (prometheus_client::encoding::prometheus_text::encode(&mut body, &registry), TEXT_CONTENT_TYPE)
    };
    if encoded.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the probe's metrics\n").into_response();
    }
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}

async fn index(State(app): State<Arc<App>>) -> Html<String> {
    Html(html_page(&status_document(&app)))
}

async fn status_json(State(app): State<Arc<App>>) -> Response {
    axum::Json(status_document(&app)).into_response()
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.ready() {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready: log sources starting or first DNS round running\n")
            .into_response()
    }
}

async fn reload(State(app): State<Arc<App>>) -> Response {
    let Some(reloader) = app.reloader.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Not ready to reload\n").into_response();
    };
    match tokio::task::spawn_blocking(move || reloader.reload()).await {
        Ok(Ok(summary)) => (StatusCode::OK, format!("Reloaded: {summary}\n")).into_response(),
        Ok(Err(e)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("Reload failed, the running configuration stays: {e}\n"))
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("Reload failed: {e}\n")).into_response(),
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not found: see / for the endpoints\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(wants_openmetrics(Some(&h(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ))));
        assert!(!wants_openmetrics(Some(&h("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"))));
        assert!(!wants_openmetrics(Some(&h("application/openmetrics-text;q=0"))));
        assert!(!wants_openmetrics(None));
    }
}
