{{/*
What the operator does in DataFlow namespaces. The list mirrors
operator/src/rbac.rs (REQUIRED, less the Lease); a test fails when they differ.
A ClusterRole grants it in every namespace, or, with watchNamespaces, a Role in
each listed namespace.
*/}}
{{- define "dataflow-operator.rules" -}}
# Created (by server-side apply) for each DataFlowCron.
- apiGroups: [dataflow.dataflow.io]
  resources: [dataflows]
  verbs: [get, list, watch, create, patch]
- apiGroups: [dataflow.dataflow.io]
  resources: [dataflowcrons]
  verbs: [get, list, watch]
- apiGroups: [dataflow.dataflow.io]
  resources: [dataflowcrons/status]
  verbs: [get, patch]
- apiGroups: [dataflow.dataflow.io]
  resources: [dataflowcrons/finalizers]
  verbs: [update]
- apiGroups: [dataflow.dataflow.io]
  resources: [dataflows/status]
  verbs: [get, patch]
- apiGroups: [dataflow.dataflow.io]
  resources: [dataflows/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
# Flows that run to completion (spec.execution).
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [get, list, watch, create, patch, delete]
# Read for the SecretRefs flows use; each flow's resolved spec is a Secret the
# operator owns.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# Each processor gets its own ServiceAccount, and a Role that lets it patch only
# its DataFlow's status; optionally a NetworkPolicy.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
