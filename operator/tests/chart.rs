//! The Helm chart, rendered by a real `helm` (3.17, installed by
//! `scripts/services.sh start` as `make test` runs it, and named by
//! `DATAFLOW_TEST_HELM`): `helm lint --strict`, `helm template` with default values
//! and with every toggle on, and values refused by the chart's JSON schema. Every
//! rendered document is parsed as its Kubernetes type, and the RBAC rules are
//! compared with what the operator's own tests prove it needs. The webhook
//! certificate the chart generates is served by the operator's real webhook and
//! reached by its Service name, trusting only the chart's caBundle.

use std::collections::BTreeSet;

use dataflow_operator::rbac::REQUIRED;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

mod helm;
mod support;

use helm::{chart_dir, helm, render_chart, template};

/// Parses `document` as `T` and requires that nothing was dropped on the way (a
/// misspelt or misplaced field would be).
fn typed<T: DeserializeOwned + serde::Serialize>(document: &Value) -> T {
    let object: T =
        serde_json::from_value(document.clone()).unwrap_or_else(|e| panic!("{e}: {document:#}"));
    let back = serde_json::to_value(&object).unwrap();
    assert_eq!(
        strip_empty(&back),
        strip_empty(document),
        "fields lost parsing {}",
        document["kind"]
    );
    object
}

/// Drops empty maps and lists (`nodeSelector: {}` and an absent one are the same).
fn strip_empty(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), strip_empty(v)))
                .filter(|(_, v)| !matches!(v, Value::Object(m) if m.is_empty()))
                .filter(|(_, v)| !matches!(v, Value::Array(a) if a.is_empty()))
                .filter(|(_, v)| !v.is_null())
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_empty).collect()),
        other => other.clone(),
    }
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn the_deployment(documents: &[Value]) -> Deployment {
    let deployments = of_kind(documents, "Deployment");
    assert_eq!(deployments.len(), 1);
    typed(deployments[0])
}

/// Every (group, resource, verb) the rules grant.
fn grants(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn check_common(documents: &[Value]) {
    for document in documents {
        match document["kind"].as_str().unwrap() {
            "ServiceAccount" => drop(typed::<ServiceAccount>(document)),
            "ClusterRole" => drop(typed::<ClusterRole>(document)),
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(document)),
            "Role" => drop(typed::<Role>(document)),
            "RoleBinding" => drop(typed::<RoleBinding>(document)),
            "Deployment" => drop(typed::<Deployment>(document)),
            "Service" => drop(typed::<Service>(document)),
            "Secret" => drop(typed::<Secret>(document)),
            "ValidatingWebhookConfiguration" => {
                drop(typed::<ValidatingWebhookConfiguration>(document))
            }
            // CRDs of other projects: the fields their controllers require.
            "ServiceMonitor" => {
                assert_eq!(document["apiVersion"], "monitoring.coreos.com/v1");
                assert_eq!(document["spec"]["endpoints"][0]["port"], "metrics");
            }
            "Issuer" => assert_eq!(document["apiVersion"], "cert-manager.io/v1"),
            "Certificate" => {
                assert_eq!(document["apiVersion"], "cert-manager.io/v1");
                assert!(document["spec"]["secretName"].is_string());
                assert!(document["spec"]["issuerRef"]["name"].is_string());
            }
            other => panic!("unexpected kind {other}"),
        }
    }

    // Least privilege, both ways: the roles grant what the operator uses
    // (rbac::REQUIRED, which its tests enforce) and nothing more. Its rights in
    // flow namespaces come from the ClusterRole, or from one Role per watched
    // namespace, each the same.
    let leader = typed::<Role>(
        of_kind(documents, "Role")
            .into_iter()
            .find(|r| r["metadata"]["name"] == "dataflow-leader-election")
            .expect("the operator's own Role"),
    );
    let namespaced: Vec<Role> = of_kind(documents, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["name"] == "dataflow")
        .map(typed::<Role>)
        .collect();
    let clusters: Vec<ClusterRole> = of_kind(documents, "ClusterRole")
        .into_iter()
        .map(typed::<ClusterRole>)
        .collect();
    let in_flow_namespaces = match (clusters.as_slice(), namespaced.as_slice()) {
        ([cluster], []) => grants(cluster.rules.as_deref().unwrap_or_default()),
        ([], [first, rest @ ..]) => {
            let first_grants = grants(first.rules.as_deref().unwrap_or_default());
            for role in rest {
                assert_eq!(
                    grants(role.rules.as_deref().unwrap_or_default()),
                    first_grants
                );
            }
            first_grants
        }
        _ => panic!("one ClusterRole, or Roles in watched namespaces, and not both"),
    };
    let own = grants(leader.rules.as_deref().unwrap_or_default());
    let mut granted = in_flow_namespaces;
    granted.extend(own.clone());
    let required: BTreeSet<(String, String, String)> = REQUIRED
        .iter()
        .flat_map(|p| {
            p.verbs
                .iter()
                .map(|v| (p.group.to_owned(), p.resource.to_owned(), (*v).to_owned()))
        })
        .collect();
    assert_eq!(granted, required);
    assert!(
        own.iter().all(|(_, resource, verb)| resource == "leases"
            || (resource == "secrets" && (verb == "get" || verb == "create"))
            || (resource == "deployments" && ["get", "list", "watch"].contains(&verb.as_str()))),
        "the operator's own Role is for the leader Lease, the hash key Secret and its own Deployment only: {own:?}"
    );
    let own_deployment = leader
        .rules
        .iter()
        .flatten()
        .find(|r| r.resources.iter().flatten().any(|x| x == "deployments"))
        .expect("the operator may watch its own Deployment");
    assert_eq!(
        own_deployment.resource_names.as_deref(),
        Some(&["dataflow".to_owned()][..])
    );

    // The operator pod is hardened and probed.
    let deployment = the_deployment(documents);
    let pod = deployment.spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("dataflow"));
    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    let container = &pod.containers[0];
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.run_as_non_root, Some(true));
    assert!(container.liveness_probe.is_some() && container.readiness_probe.is_some());
    assert!(container.resources.as_ref().unwrap().limits.is_some());
}

fn env(deployment: &Deployment, name: &str) -> Option<String> {
    let pod = deployment.spec.template.spec.as_ref()?;
    pod.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

#[test]
fn default_values_render_a_least_privilege_operator() {
    let documents = render_chart(&json!({}));
    check_common(&documents);
    let kinds: BTreeSet<&str> = documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ])
    );
    let deployment = the_deployment(&documents);
    assert_eq!(
        env(&deployment, "PROCESSOR_IMAGE").as_deref(),
        Some("ghcr.io/dataflow/dataflow:0.1.0")
    );
    assert_eq!(env(&deployment, "LEADER_ELECTION").as_deref(), Some("true"));
    assert_eq!(
        env(&deployment, "OPERATOR_DEPLOYMENT_NAME").as_deref(),
        Some("dataflow")
    );
    assert_eq!(env(&deployment, "WEBHOOK_ADDR"), None);
    assert_eq!(env(&deployment, "WATCH_NAMESPACES").as_deref(), Some(""));
    assert_eq!(
        env(&deployment, "ALLOW_CROSS_NAMESPACE_REFERENCES").as_deref(),
        Some("false")
    );
    assert_eq!(
        env(&deployment, "HASH_KEY_SECRET").as_deref(),
        Some("dataflow-hash-key")
    );
    assert_eq!(
        env(&deployment, "PROCESSOR_NETWORK_POLICY_NAMESPACES"),
        None
    );
}

/// `watchNamespaces` gives the operator a Role in each listed namespace and no
/// ClusterRole at all, so no Secret outside those namespaces is within its reach;
/// the webhook judges only DataFlows of those namespaces.
#[test]
fn watched_namespaces_render_roles_and_no_cluster_wide_rights() {
    let documents = render_chart(&json!({
        "watchNamespaces": ["team-a", "team-b"],
        "webhook": {"enabled": true, "certManager": {"enabled": false}},
    }));
    check_common(&documents);
    assert!(of_kind(&documents, "ClusterRole").is_empty());
    assert!(of_kind(&documents, "ClusterRoleBinding").is_empty());
    let roles: BTreeSet<String> = of_kind(&documents, "Role")
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["metadata"]["namespace"].as_str().unwrap(),
                r["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from([
            "dataflow-system/dataflow-leader-election".to_owned(),
            "team-a/dataflow".to_owned(),
            "team-b/dataflow".to_owned(),
        ])
    );
    for binding in of_kind(&documents, "RoleBinding") {
        let binding: RoleBinding = typed(binding);
        assert_eq!(binding.subjects.unwrap()[0].name, "dataflow");
    }
    let deployment = the_deployment(&documents);
    assert_eq!(
        env(&deployment, "WATCH_NAMESPACES").as_deref(),
        Some("team-a,team-b")
    );
    let webhook: ValidatingWebhookConfiguration =
        typed(of_kind(&documents, "ValidatingWebhookConfiguration")[0]);
    let selector = webhook.webhooks.unwrap()[0]
        .namespace_selector
        .clone()
        .unwrap();
    let expression = &selector.match_expressions.unwrap()[0];
    assert_eq!(expression.key, "kubernetes.io/metadata.name");
    assert_eq!(expression.values.as_deref().unwrap(), ["team-a", "team-b"]);
}

#[test]
fn network_policies_and_cross_namespace_references_are_the_operators_settings() {
    let documents = render_chart(&json!({
        "allowCrossNamespaceReferences": true,
        "processor": {"networkPolicy": {"enabled": true, "monitoringNamespace": "prometheus"}},
    }));
    check_common(&documents);
    let deployment = the_deployment(&documents);
    assert_eq!(
        env(&deployment, "PROCESSOR_NETWORK_POLICY_NAMESPACES").as_deref(),
        Some("dataflow-system,prometheus")
    );
    assert_eq!(
        env(&deployment, "ALLOW_CROSS_NAMESPACE_REFERENCES").as_deref(),
        Some("true")
    );
}

#[test]
fn every_toggle_on_renders_valid_objects() {
    let overrides = json!({
        "image": {"tag": "1.2.3"},
        "processorImage": "registry.example/processor:9",
        "logLevel": "debug",
        "leaderElection": true,
        "replicaCount": 3,
        "nodeSelector": {"pool": "ops"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
              "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "dataflow-operator"}}}}]}},
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}}},
        "webhook": {"enabled": true},
    });
    let documents = render_chart(&overrides);
    check_common(&documents);
    for kind in [
        "ServiceMonitor",
        "ValidatingWebhookConfiguration",
        "Issuer",
        "Certificate",
    ] {
        assert_eq!(of_kind(&documents, kind).len(), 1, "{kind}");
    }
    let monitor = of_kind(&documents, "ServiceMonitor")[0];
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");

    let deployment = the_deployment(&documents);
    assert_eq!(deployment.spec.replicas, Some(3));
    assert_eq!(
        env(&deployment, "PROCESSOR_IMAGE").as_deref(),
        Some("registry.example/processor:9")
    );
    assert_eq!(env(&deployment, "LOG_LEVEL").as_deref(), Some("debug"));
    assert_eq!(
        env(&deployment, "WEBHOOK_ADDR").as_deref(),
        Some("0.0.0.0:9443")
    );
    let pod = deployment.spec.template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("ghcr.io/dataflow/dataflow:1.2.3")
    );
    assert_eq!(pod.node_selector.unwrap()["pool"], "ops");
    assert_eq!(
        pod.tolerations.unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("dataflow-webhook-cert")
    );

    // The webhook reaches the operator's /validate-dataflow through its Service,
    // with the certificate cert-manager issues for that Service's name.
    let webhook: ValidatingWebhookConfiguration =
        typed(of_kind(&documents, "ValidatingWebhookConfiguration")[0]);
    let hook = &webhook.webhooks.unwrap()[0];
    let service = hook.client_config.service.as_ref().unwrap();
    assert_eq!(service.path.as_deref(), Some("/validate-dataflow"));
    assert_eq!(service.name, "dataflow-webhook");
    let certificate = of_kind(&documents, "Certificate")[0];
    assert_eq!(
        certificate["spec"]["dnsNames"][0],
        "dataflow-webhook.dataflow-system.svc"
    );
    assert_eq!(
        webhook.metadata.annotations.unwrap()["cert-manager.io/inject-ca-from"],
        "dataflow-system/dataflow-webhook"
    );
}

#[test]
fn webhook_with_a_certificate_of_your_own() {
    let overrides = json!({"webhook": {
        "enabled": true,
        "certManager": {"enabled": false},
        "certSecret": "my-webhook-tls",
        "caBundle": "LS0tLS1CRUdJTi0tLS0t",
    }});
    let documents = render_chart(&overrides);
    check_common(&documents);
    assert!(of_kind(&documents, "Certificate").is_empty());
    let webhook: ValidatingWebhookConfiguration =
        typed(of_kind(&documents, "ValidatingWebhookConfiguration")[0]);
    let hook = &webhook.webhooks.unwrap()[0];
    assert!(hook.client_config.ca_bundle.is_some());
    let pod = the_deployment(&documents).spec.template.spec.unwrap();
    assert_eq!(
        pod.volumes.unwrap()[0]
            .secret
            .as_ref()
            .unwrap()
            .secret_name
            .as_deref(),
        Some("my-webhook-tls")
    );
}

#[test]
fn chart_crds_are_what_the_operator_generates() {
    for (file, generated) in [
        (
            "crds/dataflows.dataflow.dataflow.io.yaml",
            dataflow_operator::crd::crd_yaml().unwrap(),
        ),
        (
            "crds/dataflowcrons.dataflow.dataflow.io.yaml",
            dataflow_operator::crd::cron_crd_yaml().unwrap(),
        ),
    ] {
        let path = chart_dir().join(file);
        let in_chart = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            in_chart == generated,
            "{} is stale: run `make crds`",
            path.display()
        );
    }
}

#[test]
fn chart_passes_helm_lint() {
    let chart = chart_dir();
    let output = helm(&["lint", "--strict", chart.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// helm checks values against values.schema.json before rendering; a mistake is
/// refused with the offending key named.
#[test]
fn values_outside_the_schema_are_refused() {
    for (bad, key) in [
        (json!({"logLevel": "verbose"}), "logLevel"),
        (json!({"replicaCount": 0}), "replicaCount"),
        (
            json!({"webhook": {"failurePolicy": "Sometimes"}}),
            "failurePolicy",
        ),
        (json!({"unknownSetting": true}), "unknownSetting"),
        (json!({"image": {"tag": 5}}), "tag"),
        (json!({"watchNamespaces": ["Team_A"]}), "watchNamespaces"),
        (
            json!({"allowCrossNamespaceReferences": "yes"}),
            "allowCrossNamespaceReferences",
        ),
        (
            json!({"processor": {"networkPolicy": {"enabled": "on"}}}),
            "enabled",
        ),
    ] {
        let error = template(&bad).expect_err(&format!("{bad} should be refused"));
        assert!(error.contains(key), "{bad}: {error}");
    }
}

/// Without cert-manager or a Secret of your own, the chart makes a CA and a serving
/// certificate. The operator's webhook serves that certificate, and a client that
/// trusts only the caBundle of the ValidatingWebhookConfiguration reaches it by the
/// Service's DNS name, as the API server would.
#[tokio::test]
async fn webhook_with_a_certificate_the_chart_generates() {
    let documents =
        render_chart(&json!({"webhook": {"enabled": true, "certManager": {"enabled": false}}}));
    check_common(&documents);
    assert!(of_kind(&documents, "Certificate").is_empty());
    let secret: Secret = typed(of_kind(&documents, "Secret")[0]);
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("dataflow-webhook-cert")
    );
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.unwrap();
    let webhook: ValidatingWebhookConfiguration =
        typed(of_kind(&documents, "ValidatingWebhookConfiguration")[0]);
    let ca_bundle = webhook.webhooks.unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .unwrap();
    assert_eq!(
        ca_bundle.0, data["ca.crt"].0,
        "the webhook trusts the CA that signed the Secret"
    );

    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &data["tls.crt"].0).unwrap();
    std::fs::write(&key, &data["tls.key"].0).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = support::FakeApi::default();
    let validator = std::sync::Arc::new(dataflow_operator::webhook::Validator::new(
        fake.client(),
        dataflow_operator::telemetry::Metrics::new().unwrap(),
        dataflow_operator::grants::ReferencePolicy::default(),
    ));
    tokio::spawn(async move { validator.serve(listener, &cert, &key).await });

    let host = "dataflow-webhook.dataflow-system.svc";
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca_bundle.0).unwrap()])
        .resolve(host, addr)
        .build()
        .unwrap();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u1", "operation": "DELETE", "name": "orders", "namespace": "team",
                    "kind": {"group": "dataflow.dataflow.io", "version": "v1", "kind": "DataFlow"},
                    "resource": {"group": "dataflow.dataflow.io", "version": "v1", "resource": "dataflows"},
                    "userInfo": {"username": "admin"}, "object": null, "oldObject": null}
    });
    let mut answer = None;
    for _ in 0..50 {
        match client
            .post(format!("https://{host}:{}/validate-dataflow", addr.port()))
            .json(&review)
            .send()
            .await
        {
            Ok(response) => {
                answer = Some(response.json::<Value>().await.unwrap());
                break;
            }
            Err(e) if e.is_connect() => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => panic!("TLS to the generated certificate failed: {e:?}"),
        }
    }
    let answer = answer.expect("the webhook answered");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}
