//! Secret values stay in Secrets: the spec of an earlier operator, kept in a
//! ConfigMap, is removed once its Secret is in place; a reference into another
//! namespace is followed only with that Secret's grant, and a refused Secret's
//! data is never fetched.

use super::*;

const LEGACY_CONFIG_MAP: &str = "/api/v1/namespaces/team/configmaps/dataflow-orders-spec";
const SHARED_SECRET: &str = "/api/v1/namespaces/shared/secrets/pg";

/// The ConfigMap an earlier operator made for the flow, the password in it.
fn legacy_config_map(owner_uid: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "dataflow-orders-spec", "namespace": "team",
                        "labels": {"app.kubernetes.io/managed-by": "dataflow-operator"},
                        "ownerReferences": [{"apiVersion": "dataflow.dataflow.io/v1", "kind": "DataFlow",
                                             "name": "orders", "uid": owner_uid, "controller": true}]},
           "data": {"spec.json": format!("{{\"sink\":{{\"postgresql\":{{\"connectionString\":\"{PASSWORD}\"}}}}}}")}})
}

#[tokio::test]
async fn the_spec_configmap_of_an_earlier_operator_is_deleted_once_the_secret_is_in_place() {
    let fake = created_flow();
    fake.put(LEGACY_CONFIG_MAP, legacy_config_map("uid-1"));
    let calls = pass(&fake, "img:1").await;
    assert!(fake.get(LEGACY_CONFIG_MAP).is_none(), "{:?}", lines(&calls));
    assert!(resolved_spec(&fake).contains("s3cret-pass"));
    // Deleted after the Deployment that mounts the Secret was applied.
    let position = |wanted: &str| {
        calls
            .iter()
            .position(|c| c.line() == wanted)
            .unwrap_or_else(|| panic!("no {wanted}: {:?}", lines(&calls)))
    };
    assert!(
        position(&format!("PATCH {DEPLOYMENT}")) < position(&format!("DELETE {LEGACY_CONFIG_MAP}"))
    );
    // A second pass finds no ConfigMap left to delete.
    let again = pass(&fake, "img:1").await;
    assert!(
        !again
            .iter()
            .any(|c| c.line() == format!("DELETE {LEGACY_CONFIG_MAP}")),
        "{:?}",
        lines(&again)
    );
}

#[tokio::test]
async fn a_configmap_of_that_name_the_flow_does_not_own_is_kept() {
    let fake = created_flow();
    fake.put(LEGACY_CONFIG_MAP, legacy_config_map("someone-else"));
    pass(&fake, "img:1").await;
    assert!(fake.get(LEGACY_CONFIG_MAP).is_some());
}

fn referring_to_shared() -> FakeApi {
    let fake = FakeApi::default();
    let mut flow = manifest("orders", true);
    flow["spec"]["sink"]["postgresql"]["connectionStringSecretRef"]["namespace"] = json!("shared");
    fake.put(DF, flow);
    let mut shared = secret(PASSWORD);
    shared["metadata"]["namespace"] = json!("shared");
    fake.put(SHARED_SECRET, shared);
    fake
}

#[tokio::test]
async fn a_reference_into_another_namespace_is_refused_without_reading_the_secret() {
    let fake = referring_to_shared();
    let calls = pass(&fake, "img:1").await;
    let status = &fake.get(DF).unwrap()["status"];
    assert_eq!(status["phase"], "Error", "{status}");
    assert_eq!(status["conditions"][1]["reason"], "CrossNamespaceReference");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "spec.sink.postgresql.connectionStringSecretRef: secret shared/pg is in another namespace and does not grant namespace team"
        ),
        "{message}"
    );
    // Only the Secret's metadata was asked for, never its data.
    let reads: Vec<_> = calls.iter().filter(|c| c.path == SHARED_SECRET).collect();
    assert_eq!(reads.len(), 1, "{:?}", lines(&calls));
    assert!(
        reads[0].accept.contains("PartialObjectMetadata"),
        "a full GET of the refused Secret: {}",
        reads[0].accept
    );
    assert!(fake.get(SPEC_SECRET).is_none());
    assert!(fake.get(DEPLOYMENT).is_none());
    for call in &calls {
        assert!(
            !call.body.to_string().contains("s3cret-pass"),
            "{}",
            call.line()
        );
    }
}

#[tokio::test]
async fn the_secrets_grant_lets_the_reference_through() {
    let fake = referring_to_shared();
    let mut granting = fake.get(SHARED_SECRET).unwrap();
    granting["metadata"]["annotations"] =
        json!({"dataflow.dataflow.io/allowed-namespaces": "other, team"});
    fake.put(SHARED_SECRET, granting);
    pass(&fake, "img:1").await;
    assert_eq!(fake.get(DF).unwrap()["status"]["phase"], "Pending");
    assert!(resolved_spec(&fake).contains("s3cret-pass"));
}

#[tokio::test]
async fn a_missing_secret_elsewhere_is_refused_in_the_same_words() {
    let fake = referring_to_shared();
    pass(&fake, "img:1").await;
    let present = fake.get(DF).unwrap()["status"]["message"].clone();

    let missing = FakeApi::default();
    let mut flow = manifest("orders", true);
    flow["spec"]["sink"]["postgresql"]["connectionStringSecretRef"]["namespace"] = json!("shared");
    missing.put(DF, flow);
    pass(&missing, "img:1").await;
    assert_eq!(missing.get(DF).unwrap()["status"]["message"], present);
}

#[tokio::test]
async fn each_flow_gets_a_tap_token_once_in_a_secret_of_its_own() {
    let fake = created_flow();
    let tap = "/api/v1/namespaces/team/secrets/dataflow-orders-tap";
    pass(&fake, "img:1").await;
    let first = fake.get(tap).expect("the tap Secret");
    assert_eq!(first["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    let token = first["data"]["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "{token}");
    let again = pass(&fake, "img:1").await;
    assert!(
        !again
            .iter()
            .any(|c| c.path.starts_with(tap) && c.method != "GET"),
        "the token is never rewritten: {:?}",
        lines(&again)
    );
    assert_eq!(fake.get(tap).unwrap()["data"]["token"], token.as_str());
    let pod = &fake.get(DEPLOYMENT).unwrap()["spec"]["template"]["spec"];
    assert!(
        pod["containers"][0]["args"]
            .to_string()
            .contains("--tap-token-file=/etc/dataflow-tap/token")
    );
    // Another flow's token is its own.
    let other = FakeApi::default();
    other.put(DF, manifest("orders", true));
    other.put(SECRET, secret(PASSWORD));
    pass(&other, "img:1").await;
    assert_ne!(other.get(tap).unwrap()["data"]["token"], token.as_str());
}
