use super::*;
use crate::transforms::TransformVolume;

fn dataflow() -> DataFlow {
    let mut df: DataFlow = serde_norway::from_str(
        r#"
apiVersion: dataflow.dataflow.io/v1
kind: DataFlow
metadata: {name: orders, namespace: team, uid: 1234-abcd}
spec:
  source: {type: generator, generator: {}}
  sink: {type: stdout}
  replicas: 3
  resources: {limits: {memory: 256Mi}, requests: {cpu: 100m}}
  nodeSelector: {disk: ssd}
  tolerations: [{key: dedicated, operator: Equal, value: data, effect: NoSchedule}]
  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]}}}
"#,
    )
    .unwrap();
    df.metadata.generation = Some(1);
    df
}

fn settings() -> ProcessorSettings {
    ProcessorSettings {
        image: "ghcr.io/example/dataflow:1.2.3".into(),
        log_level: "debug".into(),
        network_policy: None,
    }
}

#[test]
fn the_resolved_spec_is_a_secret_the_dataflow_owns() {
    let secret = spec_secret(&dataflow(), r#"{"sink":{}}"#).unwrap();
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("dataflow-orders-spec")
    );
    assert_eq!(secret.metadata.namespace.as_deref(), Some("team"));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(secret.data.unwrap()["spec.json"].0, br#"{"sink":{}}"#);
    let owner = &secret.metadata.owner_references.unwrap()[0];
    assert_eq!(owner.kind, "DataFlow");
    assert_eq!(owner.api_version, "dataflow.dataflow.io/v1");
    assert_eq!(owner.name, "orders");
    assert_eq!(owner.uid, "1234-abcd");
    assert_eq!(owner.controller, Some(true));
}

#[test]
fn deployment_runs_the_processor_as_specified() {
    let plan = TransformPlan {
        volumes: vec![TransformVolume {
            volume: "transform-0".into(),
            config_map: "pii".into(),
            keys: ["pii.wasm".to_owned()].into(),
            mount_path: "/etc/dataflow-transforms/pii".into(),
        }],
        digests: BTreeMap::new(),
    };
    let df = dataflow();
    let dep = deployment(&df, &settings(), &plan, "abc123").unwrap();
    assert_eq!(dep.metadata.name.as_deref(), Some("dataflow-orders"));
    assert_eq!(
        dep.metadata.owner_references.as_ref().unwrap()[0].name,
        "orders"
    );
    let spec = dep.spec;
    assert_eq!(spec.replicas, Some(3));
    let selector = spec.selector.match_labels.unwrap();
    let template_meta = spec.template.metadata.unwrap();
    let pod_labels = template_meta.labels.unwrap();
    for (k, v) in &selector {
        assert_eq!(pod_labels.get(k), Some(v), "selector label {k} on the pod");
    }
    assert_eq!(
        template_meta.annotations.unwrap()[SPEC_HASH_ANNOTATION],
        "abc123"
    );
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("dataflow-orders-processor")
    );
    assert_eq!(pod.node_selector, df.spec.node_selector);
    assert_eq!(pod.tolerations, df.spec.tolerations);
    assert_eq!(pod.affinity, df.spec.affinity);
    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(
        pod_security.seccomp_profile.unwrap().type_,
        "RuntimeDefault"
    );
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("ghcr.io/example/dataflow:1.2.3")
    );
    assert_eq!(
        container.command.as_deref().unwrap(),
        ["/usr/local/bin/dataflow-processor"]
    );
    assert_eq!(
        container.args.as_deref().unwrap(),
        [
            "--spec-path=/etc/dataflow/spec.json",
            "--namespace=team",
            "--name=orders",
            "--metrics-addr=0.0.0.0:9090",
            "--tap-token-file=/etc/dataflow-tap/token"
        ]
    );
    let liveness = container.liveness_probe.as_ref().unwrap();
    let get = liveness.http_get.as_ref().unwrap();
    assert_eq!(get.path.as_deref(), Some("/livez"));
    assert_eq!(get.port, IntOrString::String("metrics".into()));
    let readiness = container.readiness_probe.as_ref().unwrap();
    assert_eq!(
        readiness.http_get.as_ref().unwrap().path.as_deref(),
        Some("/readyz")
    );
    let env = container.env.as_ref().unwrap();
    assert_eq!(env[0].name, "LOG_LEVEL");
    assert_eq!(env[0].value.as_deref(), Some("debug"));
    assert_eq!(container.resources, df.spec.resources);
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let mounts = container.volume_mounts.as_ref().unwrap();
    let spec_mount = mounts.iter().find(|m| m.name == "spec").unwrap();
    assert_eq!(spec_mount.mount_path, "/etc/dataflow");
    assert_eq!(spec_mount.read_only, Some(true));
    let wasm_mount = mounts.iter().find(|m| m.name == "transform-0").unwrap();
    assert_eq!(wasm_mount.mount_path, "/etc/dataflow-transforms/pii");
    let volumes = pod.volumes.unwrap();
    let spec_volume = volumes.iter().find(|v| v.name == "spec").unwrap();
    assert!(spec_volume.config_map.is_none());
    let spec_source = spec_volume.secret.as_ref().unwrap();
    assert_eq!(
        spec_source.secret_name.as_deref(),
        Some("dataflow-orders-spec")
    );
    assert_eq!(spec_source.default_mode, Some(0o440));
    let tap_volume = volumes.iter().find(|v| v.name == "tap").unwrap();
    assert_eq!(
        tap_volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("dataflow-orders-tap")
    );
    let tap_mount = mounts.iter().find(|m| m.name == "tap").unwrap();
    assert_eq!(
        (tap_mount.mount_path.as_str(), tap_mount.read_only),
        ("/etc/dataflow-tap", Some(true))
    );
    assert_eq!(pod_security_group(&df), Some(RUN_AS));
    let wasm_volume = volumes.iter().find(|v| v.name == "transform-0").unwrap();
    let items = wasm_volume
        .config_map
        .as_ref()
        .unwrap()
        .items
        .as_ref()
        .unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("pii.wasm", "pii.wasm")
    );
}

#[test]
fn processor_may_patch_only_its_own_status() {
    let df = dataflow();
    let role = status_role(&df).unwrap();
    let rules = role.rules.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].resources.as_deref().unwrap(), ["dataflows/status"]);
    assert_eq!(rules[0].resource_names.as_deref().unwrap(), ["orders"]);
    assert_eq!(rules[0].verbs, ["get", "patch"]);
    let binding = status_role_binding(&df).unwrap();
    assert_eq!(binding.role_ref.name, "dataflow-orders-processor");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(subject.name, "dataflow-orders-processor");
    assert_eq!(subject.namespace.as_deref(), Some("team"));
    assert_eq!(
        service_account(&df).unwrap().metadata.name.as_deref(),
        Some("dataflow-orders-processor")
    );
}

#[test]
fn a_valid_reset_annotation_reaches_the_processor_and_a_bad_one_does_not() {
    let mut df = dataflow();
    let annotate = |df: &mut DataFlow, value: &str| {
        df.metadata.annotations = Some(BTreeMap::from([(
            dataflow_api::RESET_ANNOTATION.to_owned(),
            value.to_owned(),
        )]));
    };
    let args = |df: &DataFlow| {
        let owned = owned(df).unwrap();
        processor_args(df, &owned)
    };
    df.spec.source =
        serde_norway::from_str("{type: kafka, kafka: {brokers: [k:9092], topic: t}}").unwrap();
    assert_eq!(args(&df).len(), 5);
    annotate(&mut df, "earliest#2");
    assert_eq!(args(&df).last().unwrap(), "--reset-position=earliest#2");
    annotate(&mut df, "sometime");
    assert_eq!(args(&df).len(), 5, "refused in the status instead");
}

#[test]
fn unsaved_dataflow_is_refused() {
    let mut df = dataflow();
    df.metadata.uid = None;
    assert!(matches!(
        spec_secret(&df, "{}"),
        Err(DesiredError::NotStored(_))
    ));
}

/// The group the kubelet gives the mounted spec's files.
fn pod_security_group(df: &DataFlow) -> Option<i64> {
    let template = pod_template(df, &settings(), &TransformPlan::default(), "h").unwrap();
    template.spec?.security_context?.fs_group
}

#[test]
fn a_network_policy_lets_only_the_listed_namespaces_reach_the_processor() {
    let df = dataflow();
    let settings = NetworkPolicySettings {
        from_namespaces: vec!["dataflow-system".into(), "monitoring".into()],
    };
    let policy = network_policy(&df, &settings).unwrap();
    assert_eq!(policy.metadata.name.as_deref(), Some("dataflow-orders"));
    let spec = policy.spec.unwrap();
    let selected = spec.pod_selector.unwrap().match_labels.unwrap();
    let pod = pod_template(&df, &self::settings(), &TransformPlan::default(), "h").unwrap();
    let pod_labels = pod.metadata.unwrap().labels.unwrap();
    for (key, value) in &selected {
        assert_eq!(pod_labels.get(key), Some(value), "{key}");
    }
    assert_eq!(spec.policy_types.as_deref().unwrap(), ["Ingress"]);
    let rule = &spec.ingress.unwrap()[0];
    let from = &rule.from.as_ref().unwrap()[0];
    let expression = &from
        .namespace_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(expression.key, "kubernetes.io/metadata.name");
    assert_eq!(expression.operator, "In");
    assert_eq!(
        expression.values.as_deref().unwrap(),
        ["dataflow-system", "monitoring"]
    );
    assert_eq!(
        rule.ports.as_ref().unwrap()[0].port,
        Some(IntOrString::String("metrics".into()))
    );
}
