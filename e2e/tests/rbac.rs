//! The operator with nothing but the chart's RBAC, against a real API server that authorizes
//! with RBAC, three real `runnel-node cluster` processes on loopback, and the real
//! `runnel-operator` binary run with the arguments of the chart's Deployment.
//!
//! The chart is rendered by the real `helm` (`../shared/tools/k8s/get-helm.sh`); only its CRDs
//! and its RBAC objects (ServiceAccount, Roles, ClusterRoles and their bindings) are applied:
//! there is no kubelet to run the Deployment. The operator runs as the chart's ServiceAccount
//! through a kubeconfig that impersonates it (`as: system:serviceaccount:<ns>:<sa>` with the
//! groups of a ServiceAccount token).
//!
//! For each mode of the chart — the default (Streams in every namespace) and
//! `operator.watchNamespaceOnly=true` — the test:
//! 1. proves the impersonation is real: before the RBAC objects exist, the impersonating client
//!    is refused with the account's name in the message, and so is the operator binary itself;
//! 2. applies the RBAC objects and asks the API server, as the account
//!    (SelfSubjectAccessReview), that everything the operator does is allowed and that a list
//!    of things it must not do (Secrets, other StatefulSets, deleting pods, Nodes, other
//!    Leases, other namespaces unless cluster-wide, granting itself more) is refused;
//! 3. runs the operator and has it do its whole job in the release namespace: the
//!    leader-election Lease (created, renewed, released on SIGTERM), a Stream to Ready
//!    (finalizer, status by server-side apply, Events), replica zones in the status (pods and
//!    Nodes read), node scaling growing the node StatefulSet (get and patch, an Event on it), a
//!    DeliveryStream stored and deleted, the Stream deleted from the catalog; and fails if the
//!    operator ever logged a refusal.
//!
//! Nothing waits on a fixed time: every check polls with a generous deadline.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::Client;
use kube::api::DeleteParams;
use kube::api::ListParams;
use kube::discovery::Discovery;
use runnel_e2e::chart;
use runnel_e2e::chart::Release;
use runnel_e2e::cluster::Cluster;
use runnel_e2e::cluster::client_from;
use runnel_e2e::cluster::create_namespace;
use runnel_e2e::cluster::random_suffix;
use runnel_e2e::cluster::wait_established;
use runnel_e2e::identity::Access;
use runnel_e2e::identity::ServiceAccount;
use runnel_e2e::node_pods::Placed;
use runnel_e2e::node_pods::ZONE_LABEL;
use runnel_e2e::node_pods::create_hosts;
use runnel_e2e::node_pods::create_pods;
use runnel_e2e::node_pods::create_statefulset;
use runnel_e2e::node_pods::delete_hosts;
use runnel_e2e::node_pods::zone_of;
use runnel_e2e::process::NodePorts;
use runnel_e2e::process::OperatorProcess;
use runnel_e2e::process::grpc_addrs;
use runnel_e2e::process::start_members;
use runnel_e2e::streams::Env;
use runnel_e2e::streams::check_replica_zones;
use runnel_e2e::wait;
use runnel_e2e::wait::CONVERGE;
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SHARDS: usize = 4;
/// The three node pods run on Kubernetes Nodes in three zones.
const LAYOUT: [Placed<'static>; 3] = [
    Placed::new(1, ZONE_LABEL, "zone-a"),
    Placed::new(2, ZONE_LABEL, "zone-b"),
    Placed::new(3, ZONE_LABEL, "zone-c"),
];
/// Chart values of both releases: placement rounds every second, and node scaling that grows
/// the node StatefulSet from 3 to 4 pods once nodes hold more than 3 replicas each (a 4-shard
/// stream puts 4 on each of the 3 nodes).
const VALUES: &[&str] = &[
    "--set",
    "operator.placement.intervalSeconds=1",
    "--set",
    "operator.nodeScaling.enabled=true",
    "--set",
    "operator.nodeScaling.minNodes=3",
    "--set",
    "operator.nodeScaling.maxNodes=4",
    "--set",
    "operator.nodeScaling.maxReplicasPerNode=3",
];
/// What the API server says when RBAC refuses a request, and the status code: the operator's
/// log must contain neither.
const REFUSALS: [&str; 2] = ["forbidden", "code: 403"];

#[test]
fn operator_does_its_whole_job_with_only_the_charts_rbac() -> TestResult {
    let Some(cluster) = Cluster::connect_or_start()? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = cluster.client().await?;
        // Nodes, ClusterRoles and ClusterRoleBindings are cluster-scoped: names unique to this
        // run, deleted afterwards even when the test fails.
        let suffix = random_suffix();
        let prefix = format!("runnel-e2e-{suffix}");
        let mut cluster_scoped = Vec::new();
        let result = run(&cluster, &client, &suffix, &prefix, &mut cluster_scoped).await;
        delete_hosts(&client, &prefix, &LAYOUT).await;
        delete_cluster_scoped(&client, &cluster_scoped).await;
        result
    })
}

async fn run(
    cluster: &Cluster,
    client: &Client,
    suffix: &str,
    prefix: &str,
    cluster_scoped: &mut Vec<(String, String)>,
) -> TestResult {
    create_hosts(client, prefix, &LAYOUT).await?;
    let ports: Vec<NodePorts> = (0..3).map(|_| NodePorts::free()).collect::<Result<_, _>>()?;
    let (env, _others) = Env::with_members(cluster, client.clone(), start_members(&ports)?)?;
    let nodes = grpc_addrs(&ports);

    // The chart's default: an operator for Streams in every namespace.
    let ns = create_namespace(client, "e2e-rbac").await?;
    let release = Release::render(&format!("runnel-{suffix}"), &ns, VALUES)?;
    let install = Install::prepare(&env, release, &nodes, cluster_scoped).await?;
    install.check_privileges(Mode::ClusterWide).await?;
    install.operate(&env, &nodes, prefix).await?;

    // operator.watchNamespaceOnly: Streams of the release namespace only (Roles).
    let ns = create_namespace(client, "e2e-rbac-ns").await?;
    let mut values = VALUES.to_vec();
    values.extend(["--set", "operator.watchNamespaceOnly=true"]);
    let release = Release::render(&format!("runnel-{suffix}-ns"), &ns, &values)?;
    let install = Install::prepare(&env, release, &nodes, cluster_scoped).await?;
    install.check_privileges(Mode::NamespaceOnly).await?;
    install.operate(&env, &nodes, prefix).await?;
    Ok(())
}

/// Which Streams the release's operator manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    ClusterWide,
    NamespaceOnly,
}

/// A rendered release whose CRDs and RBAC objects are applied, and the impersonating
/// kubeconfig of its operator's ServiceAccount.
struct Install {
    release: Release,
    account: ServiceAccount,
    /// The admin's client.
    admin: Client,
    /// A client acting as the ServiceAccount.
    as_account: Client,
    kubeconfig: PathBuf,
    /// The arguments of the chart's operator container, but `--metrics-addr` (the test picks a
    /// free port).
    args: Vec<String>,
    statefulset: String,
    lease: String,
    _dir: tempfile::TempDir,
}

impl Install {
    /// Applies the release's CRDs and ServiceAccount, proves that the impersonating kubeconfig
    /// is refused (test client and operator binary alike) while no RBAC object exists, then
    /// applies the RBAC objects and waits until the API server authorizes with them.
    async fn prepare(
        env: &Env,
        release: Release,
        nodes: &str,
        cluster_scoped: &mut Vec<(String, String)>,
    ) -> Result<Install, Box<dyn std::error::Error>> {
        let admin = env.client.clone();
        let ns = release.namespace.clone();
        let discovery = Discovery::new(admin.clone()).run().await?;
        for crd in release.of_kinds(&["CustomResourceDefinition"]) {
            chart::apply(&admin, &discovery, crd, &ns, false).await?;
            wait_established(&admin, crd.metadata.name.as_deref().unwrap_or_default()).await?;
        }
        let sa = release.one("ServiceAccount")?;
        chart::apply(&admin, &discovery, sa, &ns, false).await?;
        let account = ServiceAccount {
            namespace: ns.clone(),
            name: sa.metadata.name.clone().ok_or("ServiceAccount without a name")?,
        };
        let dir = tempfile::Builder::new().prefix("runnel-e2e-rbac-").tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        account.write_kubeconfig(&env.kubeconfig, &kubeconfig)?;
        let as_account = client_from(&kubeconfig).await?;

        let chart_args = release.operator_args()?;
        let args: Vec<String> = chart_args
            .iter()
            .filter(|a| !a.starts_with("--metrics-addr"))
            .cloned()
            .collect();
        let statefulset =
            arg_value(&args, "--node-statefulset").ok_or("no --node-statefulset in the chart")?;
        let lease = arg_value(&args, "--lease-name").ok_or("no --lease-name in the chart")?;
        // The StatefulSet the operator is told about is the one the chart creates.
        let sts_doc = release.one("StatefulSet")?;
        assert_eq!(sts_doc.metadata.name.as_deref(), Some(statefulset.as_str()));
        let install = Install {
            release,
            account,
            admin,
            as_account,
            kubeconfig,
            args,
            statefulset,
            lease,
            _dir: dir,
        };

        // Impersonation is real: the account may do nothing yet. The admin may list Secrets;
        // through the impersonating kubeconfig the same request is refused, naming the account.
        Api::<Secret>::namespaced(install.admin.clone(), &ns)
            .list(&ListParams::default())
            .await?;
        match Api::<Secret>::namespaced(install.as_account.clone(), &ns)
            .list(&ListParams::default())
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(&install.account.user()) => {}
            other => return Err(format!("listing Secrets as {}: {other:?}", install.account.user()).into()),
        }
        // And so is the operator binary with that kubeconfig (its first request reads the
        // leader-election Lease).
        let operator = install.start_operator(nodes, "op-unbound")?;
        let user = install.account.user();
        let op = &operator;
        wait::until("the operator refused as the ServiceAccount", CONVERGE, || {
            let user = user.clone();
            async move {
                let log = op.log();
                let refused = log.lines().any(|l| l.contains("forbidden") && l.contains(&user));
                Ok(refused.then_some(()))
            }
        })
        .await
        .inspect_err(|_| eprintln!("---- operator log:\n{}", operator.log()))?;
        drop(operator);

        for obj in install
            .release
            .of_kinds(&["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"])
        {
            chart::apply(&install.admin, &discovery, obj, &ns, false).await?;
            let kind = chart::kind_of(obj);
            if kind.starts_with("Cluster") {
                let name = obj.metadata.name.clone().unwrap_or_default();
                cluster_scoped.push((kind.to_string(), name));
            }
        }
        // The API server authorizes from its RBAC caches: wait until they have each of the
        // three bindings (one thing each grants); `check_privileges` then looks at the rest.
        let probes = [
            Access::new("list", "runnel.dev", "streams").in_ns(&ns),
            Access::new("get", "", "pods").in_ns(&ns).named("any-pod"),
            Access::new("get", "", "nodes").named("any-node"),
        ];
        let client = &install.as_account;
        let probes = &probes;
        wait::until("the chart's bindings in effect", CONVERGE, || async move {
            for access in probes {
                if !access.allowed(client).await.map_err(|e| e.to_string())? {
                    return Err(format!("not yet allowed: {access}"));
                }
            }
            Ok(Some(()))
        })
        .await?;
        Ok(install)
    }

    /// `runnel-operator` as the chart's Deployment runs it, acting as the ServiceAccount, with
    /// the test's `--nodes`, a free `--metrics-addr`, and `POD_NAMESPACE`/`POD_NAME` set as
    /// the Deployment sets them.
    fn start_operator(&self, nodes: &str, identity: &str) -> runnel_e2e::Result<OperatorProcess> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        OperatorProcess::start_with_env(
            &self.kubeconfig,
            nodes,
            identity,
            &args,
            &[
                ("POD_NAMESPACE", self.release.namespace.as_str()),
                ("POD_NAME", identity),
            ],
        )
    }

    /// What the operator does, in the release namespace (and, cluster-wide, Streams and their
    /// Events everywhere).
    fn needed(&self, mode: Mode) -> Vec<Access> {
        let ns = self.release.namespace.as_str();
        let scoped = |a: Access| match mode {
            Mode::ClusterWide => a,
            Mode::NamespaceOnly => a.in_ns(ns),
        };
        let mut needed = Vec::new();
        for kind in ["streams", "deliverystreams"] {
            for verb in ["list", "watch", "patch"] {
                needed.push(scoped(Access::new(verb, "runnel.dev", kind)));
            }
            needed.push(scoped(Access::new(
                "patch",
                "runnel.dev",
                &format!("{kind}/status"),
            )));
        }
        needed.extend([
            scoped(Access::new("create", "events.k8s.io", "events")),
            scoped(Access::new("patch", "events.k8s.io", "events")),
            Access::new("create", "coordination.k8s.io", "leases").in_ns(ns),
            Access::new("get", "coordination.k8s.io", "leases")
                .in_ns(ns)
                .named(&self.lease),
            Access::new("update", "coordination.k8s.io", "leases")
                .in_ns(ns)
                .named(&self.lease),
            Access::new("get", "apps", "statefulsets")
                .in_ns(ns)
                .named(&self.statefulset),
            Access::new("patch", "apps", "statefulsets")
                .in_ns(ns)
                .named(&self.statefulset),
            Access::new("get", "", "pods")
                .in_ns(ns)
                .named(&format!("{}-0", self.statefulset)),
            Access::new("get", "", "nodes").named("any-node"),
        ]);
        needed
    }

    /// What the operator must not be able to do.
    fn refused(&self, mode: Mode) -> Vec<Access> {
        let ns = self.release.namespace.as_str();
        let other = "kube-system";
        let mut refused = vec![
            Access::new("get", "", "secrets").in_ns(ns),
            Access::new("list", "", "secrets").in_ns(ns),
            Access::new("list", "", "secrets"),
            Access::new("get", "", "configmaps").in_ns(ns),
            Access::new("create", "", "serviceaccounts/token")
                .in_ns(ns)
                .named(&self.account.name),
            Access::new("impersonate", "", "users"),
            Access::new("create", "rbac.authorization.k8s.io", "rolebindings").in_ns(ns),
            Access::new("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
            Access::new("escalate", "rbac.authorization.k8s.io", "roles").in_ns(ns),
            // The operator only patches its resources (finalizer, status).
            Access::new("delete", "runnel.dev", "streams").in_ns(ns),
            Access::new("update", "runnel.dev", "streams").in_ns(ns),
            Access::new("create", "runnel.dev", "streams").in_ns(ns),
            Access::new("update", "runnel.dev", "streams/finalizers").in_ns(ns),
            // Events through events.k8s.io only.
            Access::new("create", "", "events").in_ns(ns),
            // Pods: read by name for zones, nothing else, and only in the release namespace.
            Access::new("list", "", "pods").in_ns(ns),
            Access::new("watch", "", "pods").in_ns(ns),
            Access::new("create", "", "pods").in_ns(ns),
            Access::new("delete", "", "pods").in_ns(ns),
            Access::new("get", "", "pods")
                .in_ns(other)
                .named("kube-apiserver"),
            Access::new("list", "", "services").in_ns(ns),
            // Nodes: read by name, never listed or changed.
            Access::new("list", "", "nodes"),
            Access::new("patch", "", "nodes").named("any-node"),
            Access::new("delete", "", "nodes").named("any-node"),
            // The node StatefulSet only, and never deleted.
            Access::new("list", "apps", "statefulsets").in_ns(ns),
            Access::new("patch", "apps", "statefulsets")
                .in_ns(ns)
                .named("another-statefulset"),
            Access::new("delete", "apps", "statefulsets")
                .in_ns(ns)
                .named(&self.statefulset),
            Access::new("patch", "apps", "statefulsets")
                .in_ns(other)
                .named(&self.statefulset),
            Access::new("patch", "apps", "deployments").in_ns(ns),
            // Its own Lease only.
            Access::new("update", "coordination.k8s.io", "leases")
                .in_ns(ns)
                .named("another-controller"),
            Access::new("get", "coordination.k8s.io", "leases")
                .in_ns(other)
                .named(&self.lease),
        ];
        if mode == Mode::NamespaceOnly {
            refused.extend([
                Access::new("list", "runnel.dev", "streams"),
                Access::new("list", "runnel.dev", "streams").in_ns(other),
                Access::new("patch", "runnel.dev", "streams").in_ns(other),
                Access::new("patch", "runnel.dev", "deliverystreams").in_ns(other),
                Access::new("create", "events.k8s.io", "events").in_ns(other),
            ]);
        }
        refused
    }

    /// Asks the API server, as the account, about everything [`Install::needed`] and
    /// [`Install::refused`] list.
    async fn check_privileges(&self, mode: Mode) -> TestResult {
        let mut wrong = Vec::new();
        for access in self.needed(mode) {
            if !access.allowed(&self.as_account).await? {
                wrong.push(format!("refused, but the operator needs it: {access}"));
            }
        }
        for access in self.refused(mode) {
            if access.allowed(&self.as_account).await? {
                wrong.push(format!("allowed, but the operator must not: {access}"));
            }
        }
        // Cluster-wide, Streams in other namespaces are the operator's by design.
        if mode == Mode::ClusterWide {
            let stream = Access::new("patch", "runnel.dev", "streams").in_ns("kube-system");
            if !stream.allowed(&self.as_account).await? {
                wrong.push(format!("refused, but a cluster-wide operator needs it: {stream}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "the chart's RBAC for {} ({mode:?}):\n{}",
            self.account.user(),
            wrong.join("\n")
        );
        Ok(())
    }

    /// The operator's whole job in the release namespace, as the ServiceAccount.
    async fn operate(&self, env: &Env, nodes: &str, prefix: &str) -> TestResult {
        let ns = self.release.namespace.as_str();
        let admin = &self.admin;
        create_pods(admin, ns, &self.statefulset, prefix, &LAYOUT).await?;
        create_statefulset(admin, ns, &self.statefulset, 3).await?;
        let identity = format!("op-{}", self.release.name);
        let mut operator = self.start_operator(nodes, &identity)?;
        let result = self.operate_with(env, &mut operator, &identity).await;
        let log = operator.log();
        if result.is_err() {
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(100)..].join("\n");
            eprintln!("---- operator {identity} log (last 100 lines):\n{tail}");
            return result;
        }
        let refusals: Vec<&str> = log
            .lines()
            .filter(|l| {
                let l = l.to_lowercase();
                REFUSALS.iter().any(|r| l.contains(r))
            })
            .collect();
        assert!(
            refusals.is_empty(),
            "the operator was refused:\n{}",
            refusals.join("\n")
        );
        Ok(())
    }

    async fn operate_with(&self, env: &Env, operator: &mut OperatorProcess, identity: &str) -> TestResult {
        let ns = self.release.namespace.as_str();
        let admin = &self.admin;

        // Leader election: the Lease in the release namespace, created and then renewed
        // (updated) by this operator.
        let leases: Api<Lease> = Api::namespaced(admin.clone(), ns);
        let lease_name = self.lease.as_str();
        wait::until("the operator holds and renews the Lease", CONVERGE, || {
            let leases = leases.clone();
            async move {
                let lease = leases.get_opt(lease_name).await.map_err(|e| e.to_string())?;
                let spec = lease.and_then(|l| l.spec).unwrap_or_default();
                let holder = spec.holder_identity.as_deref();
                let renewed = spec.renew_time.is_some() && spec.renew_time != spec.acquire_time;
                if holder == Some(identity) && renewed {
                    Ok(Some(()))
                } else {
                    Err(format!(
                        "holder {holder:?}, acquired {:?}, renewed {:?}",
                        spec.acquire_time, spec.renew_time
                    ))
                }
            }
        })
        .await?;

        // A Stream to Ready: finalizer, status by server-side apply, a Created Event.
        let name = format!("rbac-{ns}");
        env.apply_stream(
            ns,
            &name,
            json!({"name": name, "shardCount": SHARDS, "deletionPolicy": "Delete"}),
        )
        .await?;
        env.wait_condition(ns, &name, "Ready", "True", "Active").await?;
        let stream = env.streams(ns).get(&name).await?;
        assert_eq!(
            stream.metadata.finalizers.as_deref(),
            Some(&["runnel.dev/stream".to_string()][..])
        );
        let managers = env.field_managers(ns, &name).await?;
        assert!(
            managers.iter().any(|m| m == "runnel-operator"),
            "field managers {managers:?}"
        );
        let events = env.events(ns, &name).await?;
        assert!(events.iter().any(|r| r == "Created"), "Events {events:?}");

        // Zones: the node pods and their Kubernetes Nodes were read, the status shows them.
        let zones = zone_of(&LAYOUT);
        let zones = &zones;
        env.wait_stream(
            ns,
            &name,
            "replica zones in the Stream status",
            CONVERGE,
            |obj, _| check_replica_zones(obj, zones),
        )
        .await?;

        // Node scaling: 4 replicas per node, at most 3 wanted → the StatefulSet grows to 4.
        let sts_api: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
        let sts_name = self.statefulset.as_str();
        wait::until("the node StatefulSet grown to 4", CONVERGE, || {
            let api = sts_api.clone();
            async move {
                let sts = api.get(sts_name).await.map_err(|e| e.to_string())?;
                let replicas = sts.spec.and_then(|s| s.replicas);
                if replicas == Some(4) {
                    Ok(Some(()))
                } else {
                    Err(format!("replicas {replicas:?}"))
                }
            }
        })
        .await?;
        let sts_events = env.events(ns, sts_name).await?;
        assert!(
            sts_events.iter().any(|e| e == "NodesScaled"),
            "Events on the StatefulSet: {sts_events:?}"
        );

        // A DeliveryStream: stored in the catalog, then deleted with the resource.
        let ds_name = format!("rbac-ds-{ns}");
        let spec = json!({
            "deliveryStreamName": ds_name,
            "source": {"streamName": name},
            "destination": {"s3": {"bucket": "archive"}},
        });
        env.apply_delivery_stream(ns, "to-s3", spec).await?;
        env.wait_delivery_stored(ns, "to-s3", 1).await?;
        env.delivery_streams(ns)
            .delete("to-s3", &DeleteParams::default())
            .await?;
        env.wait_delivery_gone(ns, "to-s3", &ds_name).await?;

        // Deleting the Stream deletes it from the catalog, then the finalizer goes.
        env.streams(ns).delete(&name, &DeleteParams::default()).await?;
        env.wait_gone(ns, &name).await?;
        env.wait_node(&format!("{name} deleted"), |d| d.is_none()).await?;

        let reconciled = operator.metric_sum("runnel_operator_reconciliations_total", "result=\"ok\"")?;
        assert!(reconciled >= 2.0, "reconciliations: {reconciled}");

        // Stopped as Kubernetes stops a pod, the operator gives the Lease up.
        let exit = operator.terminate()?;
        assert!(exit.is_some_and(|e| e.success()), "exit after SIGTERM: {exit:?}");
        let spec = leases.get(lease_name).await?.spec.unwrap_or_default();
        assert_eq!(
            spec.holder_identity.as_deref().unwrap_or_default(),
            "",
            "{spec:?}"
        );
        Ok(())
    }
}

/// The value of `--flag=value` in `args`.
fn arg_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .find_map(|a| a.strip_prefix(flag)?.strip_prefix('=').map(str::to_string))
}

/// Deletes the ClusterRoles and ClusterRoleBindings the releases created (cleanup: errors
/// ignored).
async fn delete_cluster_scoped(client: &Client, objects: &[(String, String)]) {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let params = DeleteParams::default();
    for (kind, name) in objects {
        if kind == "ClusterRole" {
            let _ = roles.delete(name, &params).await;
        } else if kind == "ClusterRoleBinding" {
            let _ = bindings.delete(name, &params).await;
        }
    }
}
