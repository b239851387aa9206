//! The validating admission webhook (AdmissionReview v1 over HTTPS).
//!
//! A DataFlow is checked exactly as the processor checks it (`dataflow_api::
//! manifest::parse`, which runs `dataflow_api::validate`), and each `type: wasm`
//! transform with a `configMapRef` is loaded from its ConfigMap and linked against
//! our world by the same Wasm host the processor uses. A `*SecretRef` into
//! another namespace is refused unless that Secret grants the DataFlow's
//! namespace (see `grants`). Every problem is reported, each with its field path.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use axum_server::tls_rustls::RustlsConfig;
use dataflow_api::manifest::{self, SpecError};
use dataflow_api::{DataFlowSpec, TransformationSpec};
use dataflow_wasm_host::WasmRuntime;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::grants::{self, ReferencePolicy};
use crate::telemetry::Metrics;
use crate::transforms::component_bytes;

/// Path the API server posts reviews to.
pub const PATH: &str = "/validate-dataflow";

/// Why the webhook server could not run.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Certificate or key unreadable or invalid.
    #[error("webhook TLS files {cert} / {key}: {cause}")]
    Tls {
        /// Certificate file.
        cert: String,
        /// Key file.
        key: String,
        /// Cause (shown in the message, so not an error `source`).
        cause: std::io::Error,
    },
    /// Serving failed.
    #[error("webhook server: {0}")]
    Serve(std::io::Error),
}

/// Validates DataFlows for the API server.
pub struct Validator {
    client: Client,
    metrics: Metrics,
    references: ReferencePolicy,
    runtime: OnceCell<Arc<WasmRuntime>>,
}

impl Validator {
    /// A validator that reads transform ConfigMaps, and the metadata of Secrets
    /// in other namespaces, through `client`.
    pub fn new(client: Client, metrics: Metrics, references: ReferencePolicy) -> Self {
        Self {
            client,
            metrics,
            references,
            runtime: OnceCell::new(),
        }
    }

    /// Answers one review.
    pub async fn review(
        &self,
        review: AdmissionReview<DynamicObject>,
    ) -> AdmissionReview<DynamicObject> {
        let request: AdmissionRequest<DynamicObject> = match review.try_into() {
            Ok(request) => request,
            Err(e) => return AdmissionResponse::invalid(e.to_string()).into_review(),
        };
        let response = AdmissionResponse::from(&request);
        if matches!(request.operation, Operation::Delete | Operation::Connect) {
            return response.into_review();
        }
        let problems = self.problems(&request).await;
        self.metrics.reviewed(problems.is_empty());
        if problems.is_empty() {
            response.into_review()
        } else {
            tracing::info!(
                dataflow_name = %request.name,
                dataflow_namespace = request.namespace.as_deref().unwrap_or_default(),
                problems = problems.len(),
                "denied a DataFlow"
            );
            response.deny(problems.join("; ")).into_review()
        }
    }

    async fn problems(&self, request: &AdmissionRequest<DynamicObject>) -> Vec<String> {
        let Some(object) = &request.object else {
            return vec!["request has no object".into()];
        };
        let text = match serde_json::to_string(object) {
            Ok(text) => text,
            Err(e) => return vec![format!("object cannot be read: {e}")],
        };
        let spec = match manifest::parse(&text) {
            Ok(loaded) => loaded.spec,
            Err(SpecError::Invalid(errors)) => {
                return errors.0.iter().map(ToString::to_string).collect();
            }
            Err(e) => return vec![e.to_string()],
        };
        let namespace = request.namespace.clone().unwrap_or_default();
        let mut problems = match grants::refused_references(
            &self.client,
            &spec,
            &namespace,
            self.references,
        )
        .await
        {
            Ok(refused) => refused,
            Err(e) => vec![format!(
                "cannot check the Secrets in other namespaces this DataFlow refers to: {e}"
            )],
        };
        problems.extend(self.transform_problems(&spec, &namespace).await);
        problems
    }

    async fn transform_problems(&self, spec: &DataFlowSpec, namespace: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        for (index, transformation) in spec.transformations.iter().enumerate() {
            let TransformationSpec::Wasm(wasm) = &transformation.spec else {
                continue;
            };
            let Some(reference) = &wasm.config_map_ref else {
                continue;
            };
            let field = format!("spec.transformations[{index}].wasm.configMapRef");
            let config_map = match api.get_opt(&reference.name).await {
                Ok(Some(cm)) => cm,
                Ok(None) => {
                    problems.push(format!(
                        "{field}: configmap {namespace}/{} not found",
                        reference.name
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(format!(
                        "{field}: cannot read configmap {namespace}/{}: {e}",
                        reference.name
                    ));
                    continue;
                }
            };
            let Some(bytes) = component_bytes(&config_map, &reference.key) else {
                problems.push(format!(
                    "{field}: configmap {namespace}/{} has no key {:?} in binaryData or data",
                    reference.name, reference.key
                ));
                continue;
            };
            if let Some(expected) = &wasm.sha256 {
                let actual = hex::encode(Sha256::digest(bytes));
                if !actual.eq_ignore_ascii_case(expected) {
                    problems.push(format!(
                        "spec.transformations[{index}].wasm.sha256: component has sha256 {actual}, expected {expected}"
                    ));
                    continue;
                }
            }
            if let Err(reason) = self.check_component(&reference.key, bytes.to_vec()).await {
                problems.push(format!("{field}: {reason}"));
            }
        }
        problems
    }

    /// Compiles the component and links it against our world, off the async
    /// threads (compilation is CPU work).
    async fn check_component(&self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        let runtime = self
            .runtime
            .get_or_try_init(|| async { WasmRuntime::new().map(Arc::new) })
            .await
            .map_err(|e| format!("the Wasm host cannot start: {e}"))?
            .clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || runtime.prepare(&name, &bytes).map(|_| ()))
            .await
            .map_err(|e| format!("component check did not finish: {e}"))?
            .map_err(|e| e.to_string())
    }

    /// The HTTP routes (one: [`PATH`]).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().route(PATH, post(handle)).with_state(self)
    }

    /// Serves the webhook over HTTPS on `listener` with the PEM certificate and key
    /// in `cert` and `key`.
    pub async fn serve(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        cert: &Path,
        key: &Path,
    ) -> Result<(), WebhookError> {
        let tls = RustlsConfig::from_pem_file(cert, key)
            .await
            .map_err(|cause| WebhookError::Tls {
                cert: cert.display().to_string(),
                key: key.display().to_string(),
                cause,
            })?;
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        tracing::info!(?addr, path = PATH, "serving the validating webhook");
        axum_server::from_tcp_rustls(listener, tls)
            .map_err(WebhookError::Serve)?
            .serve(self.router().into_make_service())
            .await
            .map_err(WebhookError::Serve)
    }
}

async fn handle(
    State(validator): State<Arc<Validator>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    Json(validator.review(review).await)
}
