//! Starting the Raft groups of a node: one per shard replica, plus the catalog.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use openraft::BasicNode;
use openraft::Config;
use openraft::Raft;
use openraft::SnapshotPolicy;
use openraft::async_runtime::WatchReceiver;
use runnel_log::Log;
use runnel_log::LogConfig;
use runnel_log::LogReader;
use tokio::sync::watch;

use super::catalog_sm::CatalogStateMachine;
use super::catalog_sm::CatalogView;
use super::catch_up::CatchUp;
use super::flusher::GroupCommit;
use super::log_store::LogStore;
use super::log_store::PurgePolicy;
use super::network::NoPeers;
use super::shard_sm::AppliedWrites;
use super::shard_sm::ShardStateMachine;
use super::transport::ClusterNetwork;
use super::transport::PeerPool;
use super::types::CatalogRaft;
use super::types::NodeId;
use super::types::ShardRaft;

pub type ShardRaftHandle = Raft<ShardRaft, ShardStateMachine>;
pub type CatalogRaftHandle = Raft<CatalogRaft, CatalogStateMachine>;

/// What every group on this node shares.
#[derive(Clone)]
pub struct GroupEnv {
    pub node_id: NodeId,
    pub node_addr: String,
    pub commit: GroupCommit,
    pub log_config: LogConfig,
    /// Connections to the other nodes; `None` in standalone mode (single-voter groups).
    pub peers: Option<Arc<PeerPool>>,
}

/// A running shard replica group.
pub struct ShardGroup {
    pub raft: ShardRaftHandle,
    pub reader: LogReader,
    pub log: Arc<Mutex<Log>>,
    /// Highest applied (readable) log index.
    pub watermark: watch::Receiver<u64>,
    /// Record batches applied by this replica.
    pub writes: Arc<AppliedWrites>,
    /// Receives snapshots (the sender's log) from the group's leader.
    pub catch_up: Arc<CatchUp>,
}

/// The running catalog group.
pub struct CatalogGroup {
    pub raft: CatalogRaftHandle,
    pub view: CatalogView,
}

/// Raft timing of cluster groups. A follower campaigns once its leader lease (openraft holds it
/// for `ELECTION_MAX_MS` after the last heartbeat) and then a random election timeout
/// (`ELECTION_MIN_MS..ELECTION_MAX_MS`) have passed: 1.5–2 s without a heartbeat, six or more
/// missed heartbeats. A crashed leader is replaced 1.25–2 s after the crash plus one election
/// round, so writes resume within 3 s (`runnel-bench failover`, docs/BENCHMARKS.md).
pub const HEARTBEAT_MS: u64 = 250;
pub const ELECTION_MIN_MS: u64 = 500;
pub const ELECTION_MAX_MS: u64 = 1000;

/// How much of its log a group keeps for Raft after a snapshot.
#[derive(Clone, Copy)]
enum AfterSnapshot {
    /// Purge everything the snapshot covers (the catalog: its snapshot is its state).
    PurgeCovered,
    /// Purge only what is asked for (a shard: retention purges through the expired entries,
    /// so a follower that is merely behind gets the entries it lacks, not the whole log).
    PurgeOnRequest,
}

fn raft_config(
    name: &str,
    snapshot_policy: SnapshotPolicy,
    after_snapshot: AfterSnapshot,
    cluster: bool,
) -> io::Result<Arc<Config>> {
    let config = Config {
        cluster_name: name.to_owned(),
        // A standalone group has one voter: no timers at all, so idle groups cost nothing; it
        // restores itself as leader on restart. Cluster groups tick, heartbeat and elect.
        enable_tick: cluster,
        enable_heartbeat: cluster,
        enable_elect: cluster,
        enable_leader_restore: Some(!cluster),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_MIN_MS,
        election_timeout_max: ELECTION_MAX_MS,
        enable_pre_vote: Some(cluster),
        snapshot_policy,
        max_in_snapshot_log_to_keep: match after_snapshot {
            AfterSnapshot::PurgeCovered => 0,
            AfterSnapshot::PurgeOnRequest => u64::MAX,
        },
        // Small channels: a node hosts thousands of groups.
        api_channel_size: Some(1024),
        notification_channel_size: Some(1024),
        state_machine_channel_size: Some(256),
        ..Config::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn other<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> io::Error {
    move |e| io::Error::other(format!("{what}: {e}"))
}

/// Makes sure a single-voter group is initialized and leads.
async fn lead_alone<C, SM>(raft: &Raft<C, SM>, env: &GroupEnv) -> io::Result<()>
where
    C: openraft::RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    SM: openraft::storage::RaftStateMachine<C>,
{
    if !raft.is_initialized().await.map_err(other("initialized?"))? {
        let members = BTreeMap::from([(
            env.node_id,
            BasicNode {
                addr: env.node_addr.clone(),
            },
        )]);
        raft.initialize(members).await.map_err(other("initialize"))?;
    }
    if raft.current_leader().await != Some(env.node_id) {
        raft.trigger().elect(false).await.map_err(other("elect"))?;
    }
    raft.wait(Some(Duration::from_secs(30)))
        .current_leader(env.node_id, "single voter leads")
        .await
        .map_err(other("wait for leadership"))?;
    Ok(())
}

/// Waits until the group has applied everything in its log, so what the node does next (start
/// the shard replicas of the catalog) sees the state from before the restart.
async fn catch_up<C, SM>(raft: &Raft<C, SM>) -> io::Result<()>
where
    C: openraft::RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    SM: openraft::storage::RaftStateMachine<C>,
{
    let last = raft.metrics().borrow_watched().last_log_index;
    raft.wait(Some(Duration::from_secs(60)))
        .applied_index_at_least(last, "replayed the log")
        .await
        .map_err(other("replay the log"))?;
    Ok(())
}

/// Starts a shard replica. `members` are the group's voters; `initialize` forms the group when
/// it has never been formed (one replica of a new shard does this).
pub async fn start_shard_group(
    group: u64,
    dir: &Path,
    env: &GroupEnv,
    members: BTreeMap<NodeId, BasicNode>,
    initialize: bool,
) -> io::Result<ShardGroup> {
    let log = Log::open(dir, env.log_config.clone()).map_err(io::Error::from)?;
    let last = log.last_entry_id().map(|(index, _)| index);
    let store = LogStore::<ShardRaft>::open(group, dir, log, env.commit.clone(), PurgePolicy::Keep)?;
    let catch_up = Arc::new(CatchUp::new(
        dir,
        env.log_config.clone(),
        store.log(),
        store.purged_marker(),
    )?);
    let sm = ShardStateMachine::open(dir, last, catch_up.clone())?;
    let watermark = sm.watermark();
    let writes = sm.writes();
    let (reader, log) = (store.log_reader(), store.log());
    let config = raft_config(
        &format!("shard-{group}"),
        SnapshotPolicy::Never,
        AfterSnapshot::PurgeOnRequest,
        env.peers.is_some(),
    )?;
    let raft = match &env.peers {
        None => {
            let raft = Raft::new(env.node_id, config, NoPeers::default(), store, sm)
                .await
                .map_err(other("start raft"))?;
            lead_alone(&raft, env).await?;
            raft
        }
        Some(pool) => {
            let network = ClusterNetwork::new(group, pool.clone()).with_log(reader.clone());
            let raft = Raft::new(env.node_id, config, network, store, sm)
                .await
                .map_err(other("start raft"))?;
            if initialize && !raft.is_initialized().await.map_err(other("initialized?"))? {
                raft.initialize(members).await.map_err(other("initialize"))?;
                raft.trigger().elect(false).await.map_err(other("elect"))?;
            }
            raft
        }
    };
    Ok(ShardGroup {
        raft,
        reader,
        log,
        watermark,
        writes,
        catch_up,
    })
}

/// Starts the catalog replica. In a cluster, the node with the lowest id among `members` forms
/// the group on first start; the others wait for its leader.
pub async fn start_catalog_group(
    dir: &Path,
    env: &GroupEnv,
    members: BTreeMap<NodeId, BasicNode>,
) -> io::Result<CatalogGroup> {
    let log = Log::open(dir, env.log_config.clone()).map_err(io::Error::from)?;
    let store = LogStore::<CatalogRaft>::open(0, dir, log, env.commit.clone(), PurgePolicy::Delete)?;
    let sm = CatalogStateMachine::open(dir)?;
    let view = sm.view();
    let config = raft_config(
        "catalog",
        SnapshotPolicy::LogsSinceLast(1000),
        AfterSnapshot::PurgeCovered,
        env.peers.is_some(),
    )?;
    let raft = match &env.peers {
        None => {
            let raft = Raft::new(env.node_id, config, NoPeers::default(), store, sm)
                .await
                .map_err(other("start raft"))?;
            lead_alone(&raft, env).await?;
            catch_up(&raft).await?;
            raft
        }
        Some(pool) => {
            let network = ClusterNetwork::new(0, pool.clone());
            let raft = Raft::new(env.node_id, config, network, store, sm)
                .await
                .map_err(other("start raft"))?;
            let first = members.keys().next().copied();
            if first == Some(env.node_id) && !raft.is_initialized().await.map_err(other("initialized?"))? {
                raft.initialize(members).await.map_err(other("initialize"))?;
                raft.trigger().elect(false).await.map_err(other("elect"))?;
            }
            raft
        }
    };
    Ok(CatalogGroup { raft, view })
}
