//! In-cluster discovery of the nodes' admin gRPC addresses: the pods of the node StatefulSet,
//! by their stable DNS names under its headless Service.

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::Client;

/// Where the node StatefulSet lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSet {
    pub statefulset: String,
    pub service: String,
    pub namespace: String,
    pub grpc_port: u16,
}

impl NodeSet {
    /// `<sts>-<i>.<svc>.<ns>.svc:<port>` for each ordinal below `replicas`.
    pub fn addrs(&self, replicas: u32) -> Vec<String> {
        (0..replicas)
            .map(|i| {
                format!(
                    "{}-{i}.{}.{}.svc:{}",
                    self.statefulset, self.service, self.namespace, self.grpc_port
                )
            })
            .collect()
    }

    /// Reads the StatefulSet's replica count and returns its pods' addresses.
    pub async fn discover(&self, client: Client) -> Result<Vec<String>, kube::Error> {
        let api: Api<StatefulSet> = Api::namespaced(client, &self.namespace);
        let sts = api.get(&self.statefulset).await?;
        let replicas = sts
            .spec
            .and_then(|s| s.replicas)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(1);
        Ok(self.addrs(replicas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_statefulset_dns() {
        let set = NodeSet {
            statefulset: "runnel-node".into(),
            service: "runnel-node-headless".into(),
            namespace: "data".into(),
            grpc_port: 4568,
        };
        assert_eq!(
            set.addrs(2),
            vec![
                "runnel-node-0.runnel-node-headless.data.svc:4568",
                "runnel-node-1.runnel-node-headless.data.svc:4568"
            ]
        );
        assert!(set.addrs(0).is_empty());
    }
}
