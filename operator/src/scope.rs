//! Which namespaces the operator works in: all of them (a ClusterRole grants its
//! rights), or only those the chart's `watchNamespaces` lists (a Role in each).

use kube::{Api, Client, Resource};

/// The namespaces the operator watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    All,
    /// Only these (never empty).
    Namespaces(Vec<String>),
}

impl Scope {
    /// From `WATCH_NAMESPACES`: comma-separated names; empty means all.
    pub fn parse(list: &str) -> Self {
        let mut names: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            Self::All
        } else {
            Self::Namespaces(names)
        }
    }

    /// Whether objects of `namespace` are the operator's to handle.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Namespaces(names) => names.iter().any(|n| n == namespace),
        }
    }

    /// What is watched one by one: each namespace, or `None` once for all.
    pub fn partitions(&self) -> Vec<Option<&str>> {
        match self {
            Self::All => vec![None],
            Self::Namespaces(names) => names.iter().map(|n| Some(n.as_str())).collect(),
        }
    }
}

/// The API of `K` in one partition of a [`Scope`].
pub fn api<K>(client: &Client, partition: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match partition {
        None => Api::all(client.clone()),
        Some(namespace) => Api::namespaced(client.clone(), namespace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_means_every_namespace() {
        assert_eq!(Scope::parse(""), Scope::All);
        assert_eq!(Scope::parse(" , "), Scope::All);
        let scope = Scope::parse("team-b, team-a,team-b");
        assert_eq!(
            scope,
            Scope::Namespaces(vec!["team-a".into(), "team-b".into()])
        );
        assert!(scope.contains("team-a"));
        assert!(!scope.contains("kube-system"));
        assert!(Scope::All.contains("kube-system"));
        assert_eq!(scope.partitions(), [Some("team-a"), Some("team-b")]);
        assert_eq!(Scope::All.partitions(), [None]);
    }
}
