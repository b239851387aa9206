//! Every Kubernetes API permission the operator uses, in one list.
//!
//! The Helm chart's ClusterRole must grant all of them (a chart test checks it),
//! and the fake API server of the operator's tests refuses any request this list
//! does not cover, with 403 as a real API server would. So the list cannot fall
//! behind the code, and the chart cannot fall behind the list.

/// A set of verbs on one resource (`resource/subresource` for subresources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// API group; `""` is the core group.
    pub group: &'static str,
    /// Resource, or `resource/subresource`.
    pub resource: &'static str,
    /// Verbs, as RBAC names them.
    pub verbs: &'static [&'static str],
}

const WATCHED_AND_OWNED: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
const OWNED: &[&str] = &["get", "create", "patch", "delete"];

/// What the operator needs.
pub const REQUIRED: &[Permission] = &[
    // Created (by server-side apply) for each DataFlowCron.
    Permission {
        group: "dataflow.dataflow.io",
        resource: "dataflows",
        verbs: &["get", "list", "watch", "create", "patch"],
    },
    Permission {
        group: "dataflow.dataflow.io",
        resource: "dataflowcrons",
        verbs: &["get", "list", "watch"],
    },
    Permission {
        group: "dataflow.dataflow.io",
        resource: "dataflowcrons/status",
        verbs: &["get", "patch"],
    },
    Permission {
        group: "dataflow.dataflow.io",
        resource: "dataflowcrons/finalizers",
        verbs: &["update"],
    },
    // Patched by the operator; the processor's own Role grants get/patch on it, which
    // Kubernetes allows only to a creator that holds the same.
    Permission {
        group: "dataflow.dataflow.io",
        resource: "dataflows/status",
        verbs: &["get", "patch"],
    },
    // Owner references with blockOwnerDeletion need update on the owner's finalizers.
    Permission {
        group: "dataflow.dataflow.io",
        resource: "dataflows/finalizers",
        verbs: &["update"],
    },
    Permission {
        group: "apps",
        resource: "deployments",
        verbs: WATCHED_AND_OWNED,
    },
    Permission {
        group: "",
        resource: "configmaps",
        verbs: WATCHED_AND_OWNED,
    },
    // Flows that run to completion (`spec.execution`).
    Permission {
        group: "batch",
        resource: "jobs",
        verbs: WATCHED_AND_OWNED,
    },
    Permission {
        group: "batch",
        resource: "cronjobs",
        verbs: WATCHED_AND_OWNED,
    },
    // Read for the `*SecretRef`s flows use (their metadata is watched); each
    // flow's resolved spec is a Secret the operator owns, and so is the key of
    // the spec hash.
    Permission {
        group: "",
        resource: "secrets",
        verbs: WATCHED_AND_OWNED,
    },
    // Beside each processor when `processor.networkPolicy.enabled`.
    Permission {
        group: "networking.k8s.io",
        resource: "networkpolicies",
        verbs: OWNED,
    },
    Permission {
        group: "",
        resource: "serviceaccounts",
        verbs: OWNED,
    },
    Permission {
        group: "rbac.authorization.k8s.io",
        resource: "roles",
        verbs: OWNED,
    },
    Permission {
        group: "rbac.authorization.k8s.io",
        resource: "rolebindings",
        verbs: OWNED,
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
    },
    Permission {
        group: "",
        resource: "events",
        verbs: &["create", "patch"],
    },
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "list", "watch", "create", "patch", "update"],
    },
];

/// The RBAC attributes of an API request: group, resource (with subresource) and
/// verb. `None` for paths outside the resource APIs (discovery, `/version`).
pub fn request_attributes(method: &str, path: &str, query: &str) -> Option<Request> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, named, subresource) = match rest {
        [resource] => (*resource, false, None),
        [resource, _name] => (*resource, true, None),
        [resource, _name, sub] => (*resource, true, Some(*sub)),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    let verb = match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    let resource = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    Some(Request {
        group: group.to_owned(),
        resource,
        verb,
    })
}

/// The RBAC attributes of one API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// API group (`""` for core).
    pub group: String,
    /// Resource, or `resource/subresource`.
    pub resource: String,
    /// RBAC verb.
    pub verb: &'static str,
}

impl Request {
    /// Whether [`REQUIRED`] covers this request.
    pub fn is_required(&self) -> bool {
        REQUIRED.iter().any(|p| {
            p.group == self.group && p.resource == self.resource && p.verbs.contains(&self.verb)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_group_resource_and_verb_from_requests() {
        let cases = [
            (
                "GET",
                "/apis/dataflow.dataflow.io/v1/dataflows",
                "watch=true&resourceVersion=1",
                ("dataflow.dataflow.io", "dataflows", "watch"),
            ),
            (
                "PATCH",
                "/apis/dataflow.dataflow.io/v1/namespaces/team/dataflows/orders/status",
                "",
                ("dataflow.dataflow.io", "dataflows/status", "patch"),
            ),
            (
                "GET",
                "/api/v1/namespaces/team/secrets/pg",
                "",
                ("", "secrets", "get"),
            ),
            ("GET", "/api/v1/configmaps", "", ("", "configmaps", "list")),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/team/events",
                "",
                ("events.k8s.io", "events", "create"),
            ),
            (
                "DELETE",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles/r",
                "",
                ("rbac.authorization.k8s.io", "roles", "delete"),
            ),
        ];
        for (method, path, query, (group, resource, verb)) in cases {
            let request = request_attributes(method, path, query).unwrap();
            assert_eq!(
                (
                    request.group.as_str(),
                    request.resource.as_str(),
                    request.verb
                ),
                (group, resource, verb),
                "{method} {path}"
            );
            assert!(request.is_required(), "{method} {path}");
        }
        assert!(request_attributes("GET", "/version", "").is_none());
        let pods = request_attributes("GET", "/api/v1/pods", "").unwrap();
        assert!(!pods.is_required());
    }
}
