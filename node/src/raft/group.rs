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
use super::flusher::GroupCommit;
use super::log_store::LogStore;
use super::network::NoPeers;
use super::shard_sm::ShardStateMachine;
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
}

/// A running shard replica group.
pub struct ShardGroup {
    pub raft: ShardRaftHandle,
    pub reader: LogReader,
    pub log: Arc<Mutex<Log>>,
    /// Highest applied (readable) log index.
    pub watermark: watch::Receiver<u64>,
}

/// The running catalog group.
pub struct CatalogGroup {
    pub raft: CatalogRaftHandle,
    pub view: CatalogView,
}

fn raft_config(name: &str, snapshot_policy: SnapshotPolicy) -> io::Result<Arc<Config>> {
    let config = Config {
        cluster_name: name.to_owned(),
        // A standalone group has one voter: no timers at all, so idle groups cost nothing; it
        // restores itself as leader on restart.
        enable_tick: false,
        enable_heartbeat: false,
        enable_elect: false,
        enable_leader_restore: Some(true),
        snapshot_policy,
        max_in_snapshot_log_to_keep: 0,
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

pub async fn start_shard_group(group: u64, dir: &Path, env: &GroupEnv) -> io::Result<ShardGroup> {
    let log = Log::open(dir, env.log_config.clone()).map_err(io::Error::from)?;
    let last = log.last_entry_id().map(|(index, _)| index);
    let store = LogStore::<ShardRaft>::open(group, dir, log, env.commit.clone())?;
    let sm = ShardStateMachine::open(dir, last)?;
    let watermark = sm.watermark();
    let (reader, log) = (store.log_reader(), store.log());
    let config = raft_config(&format!("shard-{group}"), SnapshotPolicy::Never)?;
    let raft = Raft::new(env.node_id, config, NoPeers::default(), store, sm)
        .await
        .map_err(other("start raft"))?;
    lead_alone(&raft, env).await?;
    Ok(ShardGroup {
        raft,
        reader,
        log,
        watermark,
    })
}

pub async fn start_catalog_group(dir: &Path, env: &GroupEnv) -> io::Result<CatalogGroup> {
    let log = Log::open(dir, env.log_config.clone()).map_err(io::Error::from)?;
    let store = LogStore::<CatalogRaft>::open(0, dir, log, env.commit.clone())?;
    let sm = CatalogStateMachine::open(dir)?;
    let view = sm.view();
    let config = raft_config("catalog", SnapshotPolicy::LogsSinceLast(1000))?;
    let raft = Raft::new(env.node_id, config, NoPeers::default(), store, sm)
        .await
        .map_err(other("start raft"))?;
    lead_alone(&raft, env).await?;
    catch_up(&raft).await?;
    Ok(CatalogGroup { raft, view })
}
