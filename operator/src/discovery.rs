//! In-cluster discovery of the nodes' admin gRPC and metrics addresses: the pods of the node
//! StatefulSet, by their stable DNS names under its headless Service.

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
    pub metrics_port: u16,
}

impl NodeSet {
    /// `<sts>-<i>.<svc>.<ns>.svc:<grpc port>` for each ordinal below `replicas`.
    pub fn addrs(&self, replicas: u32) -> Vec<String> {
        self.with_port(replicas, self.grpc_port)
    }

    /// `<sts>-<i>.<svc>.<ns>.svc:<metrics port>` for each ordinal below `replicas`.
    pub fn metrics_addrs(&self, replicas: u32) -> Vec<String> {
        self.with_port(replicas, self.metrics_port)
    }

    fn with_port(&self, replicas: u32, port: u16) -> Vec<String> {
        (0..replicas)
            .map(|i| {
                format!(
                    "{}-{i}.{}.{}.svc:{port}",
                    self.statefulset, self.service, self.namespace
                )
            })
            .collect()
    }

    /// Reads the StatefulSet's replica count.
    pub async fn replicas(&self, client: Client) -> Result<u32, kube::Error> {
        let api: Api<StatefulSet> = Api::namespaced(client, &self.namespace);
        let sts = api.get(&self.statefulset).await?;
        Ok(sts
            .spec
            .and_then(|s| s.replicas)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(1))
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
            metrics_port: 4569,
        };
        assert_eq!(
            set.addrs(2),
            vec![
                "runnel-node-0.runnel-node-headless.data.svc:4568",
                "runnel-node-1.runnel-node-headless.data.svc:4568"
            ]
        );
        assert!(set.addrs(0).is_empty());
        assert_eq!(
            set.metrics_addrs(1),
            vec!["runnel-node-0.runnel-node-headless.data.svc:4569"]
        );
    }
}
