//! Acting as a ServiceAccount without a pod: a kubeconfig that impersonates it (the test user's
//! credentials plus `as:` and `as-groups:`, so every request carries `Impersonate-User` and
//! `Impersonate-Group` headers), and access reviews of what it may do.
//!
//! The groups are those the API server gives a ServiceAccount token, so the RBAC bindings that
//! apply are exactly those a pod running as that account gets.

use std::fmt;
use std::path::Path;

use k8s_openapi::api::authorization::v1::ResourceAttributes;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReviewSpec;
use kube::Api;
use kube::Client;
use kube::api::PostParams;

use crate::E2eError;
use crate::Result;

/// A ServiceAccount, as the API server names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccount {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// The groups of a ServiceAccount token's user.
    pub fn groups(&self) -> Vec<String> {
        vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".to_string(),
        ]
    }

    /// Writes to `out` a copy of the kubeconfig `admin` in which every user impersonates this
    /// account. The credentials stay the admin's: the API server authenticates the admin, checks
    /// that it may impersonate, then authorizes each request as the account.
    pub fn write_kubeconfig(&self, admin: &Path, out: &Path) -> Result<()> {
        let text = std::fs::read_to_string(admin)?;
        let mut config: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| E2eError::Kubeconfig(e.to_string()))?;
        let users = config
            .get_mut("users")
            .and_then(serde_yaml::Value::as_sequence_mut)
            .ok_or_else(|| E2eError::Kubeconfig(format!("{}: no users", admin.display())))?;
        let groups: Vec<serde_yaml::Value> = self.groups().into_iter().map(Into::into).collect();
        for named in users {
            let user = named
                .get_mut("user")
                .and_then(serde_yaml::Value::as_mapping_mut)
                .ok_or_else(|| E2eError::Kubeconfig(format!("{}: a user without 'user'", admin.display())))?;
            user.insert("as".into(), self.user().into());
            user.insert("as-groups".into(), groups.clone().into());
        }
        let text = serde_yaml::to_string(&config).map_err(|e| E2eError::Kubeconfig(e.to_string()))?;
        std::fs::write(out, text)?;
        Ok(())
    }
}

/// One request, as RBAC sees it: verb, API group, resource (`resource/subresource`), and
/// optionally namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Access {
    /// `verb` on `resource` (`"streams"`, or `"streams/status"` for a subresource) of `group`
    /// (`""` for the core group), in every namespace (or cluster-scoped).
    pub fn new(verb: &str, group: &str, resource: &str) -> Access {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (resource, None),
        };
        Access {
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            subresource,
            ..Access::default()
        }
    }

    /// In this namespace.
    pub fn in_ns(mut self, namespace: &str) -> Access {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// On the object of this name.
    pub fn named(mut self, name: &str) -> Access {
        self.name = Some(name.to_string());
        self
    }

    /// Whether the caller of `client` may do this (a SelfSubjectAccessReview, which any
    /// authenticated user may create).
    pub async fn allowed(&self, client: &Client) -> Result<bool> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(self.verb.clone()),
                    group: Some(self.group.clone()),
                    resource: Some(self.resource.clone()),
                    subresource: self.subresource.clone(),
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(sub) = &self.subresource {
            write!(f, "/{sub}")?;
        }
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " (all namespaces / cluster)"),
        }
    }
}
