//! The reconcilers (controller-rs shape): `Stream` → catalog through the admin API, and
//! `DeliveryStream` → catalog (its spec stored; no delivery engine runs it yet). Decisions are made by pure functions
//! ([`crate::plan`], [`crate::policy::autoscaling`], [`crate::status`]); this module gathers
//! inputs (the catalog's description, the load the sampler measured), makes the admin calls
//! they ask for, writes status with server-side apply and emits Events.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::Client;
use kube::Resource;
use kube::ResourceExt;
use kube::api::Patch;
use kube::api::PatchParams;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::events::Event;
use kube::runtime::events::EventType;
use kube::runtime::events::Recorder;
use kube::runtime::events::Reporter;
use kube::runtime::finalizer;
use kube::runtime::finalizer::Event as FinalizerEvent;
use kube::runtime::watcher;
use runnel_proto::v1 as pb;
use tokio::sync::watch;

use crate::catalog_client::CatalogClient;
use crate::catalog_client::CatalogError;
use crate::cluster::topology::NodeZones;
use crate::consumers;
use crate::consumers::ConsumerChange;
use crate::crd::AutoscalingStatus;
use crate::crd::ConditionType;
use crate::crd::ConsumerStatus;
use crate::crd::DeletionPolicy;
use crate::crd::DeliveryStream;
use crate::crd::DeliveryStreamStatus;
use crate::crd::Stream;
use crate::crd::StreamLifecycle;
use crate::crd::StreamStatus;
use crate::delivery::CatalogDeliveryStream;
use crate::delivery::DeliveryObservation;
use crate::delivery::delivery_status;
use crate::delivery::owner_of;
use crate::delivery::renamed_from;
use crate::load::LoadTracker;
use crate::metrics::Metrics;
use crate::node_metrics::SeriesKey;
use crate::observed::ObservedStream;
use crate::plan::Change;
use crate::plan::Desired;
use crate::plan::Drift;
use crate::plan::OWNER_TAG;
use crate::plan::Plan;
use crate::plan::ScalingState;
use crate::plan::plan;
use crate::plan::scaling_state;
use crate::policy::Seconds;
use crate::policy::autoscaling::AutoscalingConfig;
use crate::policy::autoscaling::AutoscalingInput;
use crate::policy::autoscaling::ShardAction;
use crate::policy::autoscaling::ShardDecision;
use crate::policy::autoscaling::decide;
use crate::status::Activity;
use crate::status::Measured;
use crate::status::Observation;
use crate::status::changed;
use crate::status::find;
use crate::status::reason;
use crate::status::stream_status;
use crate::status::zones_shown;
use crate::validation::validate_delivery_stream;
use crate::validation::validate_stream;

/// Field manager of every write the operator makes.
pub const MANAGER: &str = "runnel-operator";
/// Finalizer on `Stream`s: the catalog stream is handled per `deletionPolicy` before the
/// resource goes away.
pub const FINALIZER: &str = "runnel.dev/stream";
/// Finalizer on `DeliveryStream`s: the catalog's delivery stream is deleted before the
/// resource goes away.
pub const DELIVERY_FINALIZER: &str = "runnel.dev/delivery-stream";

/// Look again this soon while a stream is in a transition.
const TRANSITION_REQUEUE: Duration = Duration::from_secs(1);
/// Periodic resync of settled streams (catches changes made behind the operator's back).
const RESYNC: Duration = Duration::from_secs(60);
/// Requeue delays after failures: 1 s doubling up to 5 min.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Default time between load samples.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// Default seconds of load history kept (the autoscaling windows are capped to it).
pub const DEFAULT_LOAD_HISTORY: Seconds = 3600;

/// Errors of one reconciliation. Each leads to a requeue with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    #[error("serializing status: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("resource has no name or namespace")]
    Unnamed,
    #[error("the load tracker's lock is poisoned")]
    Poisoned,
}

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub catalog: CatalogClient,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Load measured from the nodes' metrics by the sampler.
    pub load: Arc<Mutex<LoadTracker>>,
    /// How often the sampler scrapes: autoscaled streams are looked at as often.
    pub sample_interval: Duration,
    /// The nodes' zones as the cluster reconciler last read them (`None`: not read yet).
    zones: watch::Receiver<Option<NodeZones>>,
    failures: Mutex<HashMap<String, u32>>,
    /// When this process last changed each stream's layout (unix seconds), in case the status
    /// write recording it failed.
    last_scaling: Mutex<HashMap<String, Seconds>>,
}

impl Context {
    pub fn new(client: Client, catalog: CatalogClient, metrics: Metrics, instance: String) -> Context {
        let reporter = Reporter {
            controller: MANAGER.to_string(),
            instance: Some(instance),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            catalog,
            metrics,
            load: Arc::new(Mutex::new(LoadTracker::new(DEFAULT_LOAD_HISTORY))),
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            zones: watch::channel(None).1,
            failures: Mutex::new(HashMap::new()),
            last_scaling: Mutex::new(HashMap::new()),
        }
    }

    /// Uses this load tracker (fed by the sampler every `interval`).
    pub fn with_load(mut self, load: Arc<Mutex<LoadTracker>>, interval: Duration) -> Context {
        self.load = load;
        self.sample_interval = interval;
        self
    }

    /// Shows the zones the cluster reconciler publishes in the Streams' status; every Stream is
    /// reconciled again when they change.
    pub fn with_zones(mut self, zones: watch::Receiver<Option<NodeZones>>) -> Context {
        self.zones = zones;
        self
    }

    /// The nodes' zones; until they are read, those the previous status showed.
    fn zones(&self, previous: Option<&StreamStatus>) -> NodeZones {
        match &*self.zones.borrow() {
            Some(zones) => zones.clone(),
            None => previous.map(zones_shown).unwrap_or_default(),
        }
    }

    fn scaled(&self, stream: &str, at: Seconds) {
        if let Ok(mut m) = self.last_scaling.lock() {
            m.insert(stream.to_string(), at);
        }
    }

    fn last_scaled(&self, stream: &str) -> Option<Seconds> {
        self.last_scaling.lock().ok()?.get(stream).copied()
    }

    fn failed(&self, key: String) -> u32 {
        let Ok(mut failures) = self.failures.lock() else {
            return 1;
        };
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Records one reconciliation of `obj` (a `kind`) begun at `started`: its duration and
    /// outcome in the metrics, and a success resets its failure count.
    fn reconciled<K: ResourceExt>(&self, kind: &str, obj: &K, started: Instant, ok: bool) {
        self.metrics
            .reconcile_duration
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        let outcome = if ok { "ok" } else { "error" };
        self.metrics
            .reconciliations
            .with_label_values(&[kind, outcome])
            .inc();
        if ok {
            self.succeeded(&key_of(kind, obj));
        }
    }

    fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }

    async fn publish<K>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note, 1024)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }
}

pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Requeue delay after the `n`th consecutive failure: 1 s, 2 s, 4 s, ... at most 5 min.
pub fn backoff(n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

fn key_of<K: ResourceExt>(kind: &str, obj: &K) -> String {
    format!(
        "{kind}/{}/{}",
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// `now`, truncated to seconds as the API server stores condition times, so a status that did
/// not change compares equal to the stored one.
fn now() -> Time {
    time_at(unix_now())
}

fn time_at(secs: Seconds) -> Time {
    Time(Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX)).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Seconds since the Unix epoch (the clock the autoscaler's samples use).
fn unix_now() -> Seconds {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Runs both controllers until the watch streams end.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let (streams, deliveries): (Api<Stream>, Api<DeliveryStream>) = match &namespace {
        Some(ns) => (
            Api::namespaced(ctx.client.clone(), ns),
            Api::namespaced(ctx.client.clone(), ns),
        ),
        None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
    };
    let zones_changed = futures::stream::unfold(ctx.zones.clone(), |mut zones| async move {
        zones.changed().await.ok().map(|()| ((), zones))
    });
    let streams = Controller::new(streams, watcher::Config::default().any_semantic())
        .reconcile_all_on(zones_changed)
        .shutdown_on_signal()
        .run(reconcile_stream, stream_error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(stream = %obj, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "stream reconciliation failed"),
            }
        });
    let deliveries = Controller::new(deliveries, watcher::Config::default().any_semantic())
        .shutdown_on_signal()
        .run(reconcile_delivery_stream, delivery_error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "delivery stream reconciliation failed");
            }
        });
    futures::join!(streams, deliveries);
}

/// Reconciles one `Stream`: finalizer, then apply or clean up.
pub async fn reconcile_stream(stream: Arc<Stream>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = stream.namespace().ok_or(Error::Unnamed)?;
    let api: Api<Stream> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, stream.clone(), |event| async {
        match event {
            FinalizerEvent::Apply(s) => apply_stream(s, &api, &ctx).await,
            FinalizerEvent::Cleanup(s) => cleanup_stream(s, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.reconciled("Stream", stream.as_ref(), started, result.is_ok());
    result
}

/// Requeues a failed `Stream` with exponential backoff.
pub fn stream_error_policy(stream: Arc<Stream>, error: &Error, ctx: Arc<Context>) -> Action {
    let n = ctx.failed(key_of("Stream", stream.as_ref()));
    let delay = backoff(n);
    tracing::warn!(stream = %stream.name_any(), error = %error, attempt = n, ?delay, "requeue after failure");
    Action::requeue(delay)
}

async fn apply_stream(stream: Arc<Stream>, api: &Api<Stream>, ctx: &Context) -> Result<Action, Error> {
    let generation = stream.metadata.generation;
    let previous = stream.status.as_ref();
    if let Err(errors) = validate_stream(&stream) {
        let status = stream_status(generation, previous, Observation::InvalidSpec(&errors), &now());
        events_for_changes(ctx, stream.as_ref(), previous, &status).await;
        write_status(api, stream.as_ref(), previous, &status).await?;
        // Level-triggered: nothing to do until the spec changes.
        return Ok(Action::await_change());
    }
    let desired = Desired::from_stream(&stream).ok_or(Error::Unnamed)?;
    let observed = match ctx.catalog.describe(&desired.name).await {
        Ok(o) => o,
        Err(e) => {
            let message = e.to_string();
            let status = stream_status(
                generation,
                previous,
                Observation::CatalogUnavailable(&message),
                &now(),
            );
            if let Err(write) = write_status(api, stream.as_ref(), previous, &status).await {
                tracing::warn!(error = %write, "could not write status");
            }
            return Err(e.into());
        }
    };
    let mut activity = Activity {
        last_scaling_time: previous.and_then(|p| p.last_scaling_time.clone()),
        autoscaling: previous.and_then(|p| p.autoscaling.clone()),
    };
    let mut made = Vec::new();
    let mut blocked = None;
    let mut autoscale = false;
    let mut drift = Vec::new();
    let observed = match plan(&desired, observed.as_ref()) {
        Plan::Create(request) => {
            let created = ctx.catalog.create(&request).await?;
            ctx.publish(
                stream.as_ref(),
                EventType::Normal,
                "Created",
                "CreateStream",
                format!(
                    "created stream {:?} ({} shards, retention {} h)",
                    request.name,
                    request.shard_count.map_or("default".into(), |n| n.to_string()),
                    request.retention_period_hours
                ),
            )
            .await;
            Some(created)
        }
        Plan::Conflict { owner } => {
            let status = stream_status(
                generation,
                previous,
                Observation::Conflict {
                    name: &desired.name,
                    owner: owner.as_deref(),
                },
                &now(),
            );
            events_for_changes(ctx, stream.as_ref(), previous, &status).await;
            write_status(api, stream.as_ref(), previous, &status).await?;
            return Ok(Action::requeue(RESYNC));
        }
        Plan::Wait(_) => observed,
        Plan::Converge {
            changes,
            autoscale: settled,
        } => {
            autoscale = settled;
            for change in &changes {
                match make_change(ctx, &desired.name, change).await {
                    Ok(()) => {
                        publish_change(ctx, stream.as_ref(), &desired.name, change).await;
                        if change.is_scaling() {
                            let at = unix_now();
                            ctx.scaled(&desired.name, at);
                            activity.last_scaling_time = Some(time_at(at));
                        }
                        made.push(change.clone());
                    }
                    // The stream left ACTIVE meanwhile: look again shortly.
                    Err(e) if e.is_busy() => break,
                    Err(e) => match e.refusal() {
                        Some(message) if change.is_scaling() => {
                            blocked = Some(format!("{change} was refused: {message}"));
                            break;
                        }
                        // A key the nodes' keyring lacks, or the 24-hour limit: reported on
                        // Degraded; the rest of the spec still applies.
                        Some(message) if matches!(change, Change::UpdateEncryption(_)) => {
                            drift.push(Drift::EncryptionRefused {
                                change: change.to_string(),
                                message: message.to_string(),
                            });
                        }
                        _ => return Err(e.into()),
                    },
                }
            }
            if made.is_empty() {
                observed
            } else {
                ctx.catalog.describe(&desired.name).await?
            }
        }
    };
    let Some(mut observed) = observed else {
        // Deleted between calls: start over soon.
        return Ok(Action::requeue(TRANSITION_REQUEUE));
    };

    let mut scaling = match blocked {
        Some(message) => ScalingState::Blocked(message),
        None => scaling_state(&desired, &observed, &made),
    };
    let mut acted = false;
    if autoscale
        && made.is_empty()
        && scaling == ScalingState::Stable
        && observed.status == Some(StreamLifecycle::Active)
        && let Some(config) = &desired.autoscaling
        && let Some(state) = run_autoscaler(
            ctx,
            stream.as_ref(),
            &desired.name,
            config,
            &observed,
            &mut activity,
        )
        .await?
    {
        acted = matches!(state, ScalingState::InProgress(_));
        if acted && let Some(o) = ctx.catalog.describe(&desired.name).await? {
            observed = o;
        }
        scaling = state;
    }

    let previous_consumers = previous.map(|p| p.consumers.as_slice()).unwrap_or_default();
    let consumers = reconcile_consumers(
        ctx,
        stream.as_ref(),
        &desired.name,
        previous_consumers,
        observed.status == Some(StreamLifecycle::Active),
        &mut drift,
    )
    .await?;
    let consumers_settled = consumers::settled(&stream.spec.consumers, &consumers);

    let measured = measured(ctx, &desired.name, &observed);
    let zones = ctx.zones(previous);
    let mut status = stream_status(
        generation,
        previous,
        Observation::Observed {
            stream: &observed,
            drift: &drift,
            scaling: &scaling,
            measured: &measured,
            activity: &activity,
            zones: &zones,
        },
        &now(),
    );
    status.consumers = consumers;
    events_for_changes(ctx, stream.as_ref(), previous, &status).await;
    write_status(api, stream.as_ref(), previous, &status).await?;
    let in_transition = !made.is_empty()
        || acted
        || !consumers_settled
        || observed.status != Some(StreamLifecycle::Active)
        || matches!(scaling, ScalingState::InProgress(_));
    let requeue = if in_transition {
        TRANSITION_REQUEUE
    } else if desired.autoscaling.is_some() && !matches!(scaling, ScalingState::Blocked(_)) {
        ctx.sample_interval.clamp(TRANSITION_REQUEUE, RESYNC)
    } else {
        RESYNC
    };
    Ok(Action::requeue(requeue))
}

/// Registers the consumers `spec.consumers` lists and the stream lacks and deregisters those
/// this resource managed and no longer lists (only while the stream is ACTIVE); returns the
/// managed consumers for the status. A refusal (a limit) is reported as drift.
async fn reconcile_consumers(
    ctx: &Context,
    obj: &Stream,
    name: &str,
    previous: &[ConsumerStatus],
    active: bool,
    drift: &mut Vec<Drift>,
) -> Result<Vec<ConsumerStatus>, CatalogError> {
    let spec = &obj.spec.consumers;
    if spec.is_empty() && previous.is_empty() {
        return Ok(Vec::new());
    }
    let mut listed = ctx.catalog.list_consumers(name).await?;
    if active {
        let mut made = false;
        for change in consumers::changes(spec, previous, &listed) {
            let (result, reason, action) = match &change {
                ConsumerChange::Register(c) => (
                    ctx.catalog.register_consumer(name, c).await,
                    "ConsumerRegistered",
                    "RegisterStreamConsumer",
                ),
                ConsumerChange::Deregister(c) => (
                    ctx.catalog.deregister_consumer(name, c).await,
                    "ConsumerDeregistered",
                    "DeregisterStreamConsumer",
                ),
            };
            match result {
                Ok(()) => {
                    made = true;
                    ctx.publish(
                        obj,
                        EventType::Normal,
                        reason,
                        action,
                        format!("{change} on stream {name:?}"),
                    )
                    .await;
                }
                // The stream left ACTIVE meanwhile: the next pass goes on.
                Err(e) if e.is_busy() => break,
                Err(e) => match e.refusal() {
                    Some(message) => drift.push(Drift::ConsumerRefused {
                        change: change.to_string(),
                        message: message.to_string(),
                    }),
                    None => return Err(e),
                },
            }
        }
        if made {
            listed = ctx.catalog.list_consumers(name).await?;
        }
    }
    Ok(consumers::status(spec, previous, &listed))
}

/// Makes one admin call of the plan.
async fn make_change(ctx: &Context, name: &str, change: &Change) -> Result<(), CatalogError> {
    match change {
        Change::UpdateRetention(hours) => ctx.catalog.update_retention(name, *hours).await,
        Change::UpdateMaxRecordSize(kib) => ctx.catalog.update_max_record_size(name, *kib).await,
        Change::UpdateTags { add, remove } => ctx.catalog.update_tags(name, add, remove).await,
        Change::UpdateStreamMode(mode) => ctx.catalog.update_stream_mode(name, *mode).await,
        Change::UpdateShardCount { target, .. } => ctx.catalog.update_shard_count(name, *target).await,
        Change::UpdateEncryption(key) => ctx.catalog.update_encryption(name, key.as_deref()).await,
    }
}

async fn publish_change(ctx: &Context, obj: &Stream, name: &str, change: &Change) {
    let (reason, action) = match change {
        Change::UpdateRetention(_) => ("Updated", "UpdateRetention"),
        Change::UpdateMaxRecordSize(_) => ("Updated", "UpdateMaxRecordSize"),
        Change::UpdateTags { .. } => ("TagsUpdated", "UpdateTags"),
        Change::UpdateStreamMode(_) => ("ModeUpdated", "UpdateStreamMode"),
        Change::UpdateShardCount { .. } => ("ShardCountUpdated", "UpdateShardCount"),
        Change::UpdateEncryption(Some(_)) => ("EncryptionUpdated", "StartStreamEncryption"),
        Change::UpdateEncryption(None) => ("EncryptionUpdated", "StopStreamEncryption"),
    };
    ctx.publish(
        obj,
        EventType::Normal,
        reason,
        action,
        format!("stream {name:?}: {change}"),
    )
    .await;
}

/// Asks the autoscaling policy about an ACTIVE, settled stream and makes its split or merge.
/// Records the decision in `activity`; returns the Scaling state when it acted (InProgress) or
/// the node refused (Blocked), None when there was nothing to do.
async fn run_autoscaler(
    ctx: &Context,
    stream: &Stream,
    name: &str,
    config: &AutoscalingConfig,
    observed: &ObservedStream,
    activity: &mut Activity,
) -> Result<Option<ScalingState>, Error> {
    let now_secs = unix_now();
    let decision = {
        let mut load = ctx.load.lock().map_err(|_| Error::Poisoned)?;
        let mut config = config.clone();
        // Windows longer than the kept history could never fill.
        config.split_window = config.split_window.min(load.horizon());
        config.merge_window = config.merge_window.min(load.horizon());
        let shards = load.shard_loads(name, &observed.shards, now_secs);
        let last_action_at = activity
            .last_scaling_time
            .as_ref()
            .and_then(|t| Seconds::try_from(t.0.as_second()).ok())
            .max(ctx.last_scaled(name));
        decide(&AutoscalingInput {
            config: &config,
            shards: &shards,
            last_action_at,
            now: now_secs,
        })
    };
    let auto = activity
        .autoscaling
        .get_or_insert_with(AutoscalingStatus::default);
    auto.last_decision = Some(decision.reason.clone());
    match autoscale_action(ctx, name, &decision).await {
        Ok(None) => Ok(None),
        Ok(Some(action)) => {
            ctx.scaled(name, now_secs);
            activity.last_scaling_time = Some(time_at(now_secs));
            auto.last_action = Some(action.clone());
            auto.last_action_reason = Some(decision.reason.clone());
            let (reason, verb) = match decision.action {
                ShardAction::Merge { .. } => ("ShardsMerged", "MergeShards"),
                _ => ("ShardSplit", "SplitShard"),
            };
            ctx.publish(
                stream,
                EventType::Normal,
                reason,
                verb,
                format!("{action}: {}", decision.reason),
            )
            .await;
            Ok(Some(ScalingState::InProgress(format!(
                "{action} requested: {}",
                decision.reason
            ))))
        }
        Err(e) if e.is_busy() => Ok(None),
        Err(e) => match e.refusal() {
            Some(message) => Ok(Some(ScalingState::Blocked(format!(
                "the autoscaler's request was refused: {message}"
            )))),
            None => Err(e.into()),
        },
    }
}

/// Makes the autoscaler's split or merge; returns what was done, None for no action.
async fn autoscale_action(
    ctx: &Context,
    name: &str,
    decision: &ShardDecision,
) -> Result<Option<String>, CatalogError> {
    match &decision.action {
        ShardAction::None => Ok(None),
        ShardAction::Split {
            shard_id,
            new_starting_hash_key,
        } => {
            ctx.catalog
                .split_shard(name, shard_id, *new_starting_hash_key)
                .await?;
            Ok(Some(format!(
                "SplitShard {shard_id} at hash key {new_starting_hash_key}"
            )))
        }
        ShardAction::Merge {
            shard_id,
            adjacent_shard_id,
        } => {
            ctx.catalog
                .merge_shards(name, shard_id, adjacent_shard_id)
                .await?;
            Ok(Some(format!("MergeShards {shard_id} + {adjacent_shard_id}")))
        }
    }
}

/// The latest measured rates of the stream's open shards and of the whole stream.
fn measured(ctx: &Context, name: &str, observed: &ObservedStream) -> Measured {
    let Ok(load) = ctx.load.lock() else {
        return Measured::default();
    };
    let shard_rates = observed
        .shards
        .iter()
        .filter(|s| !s.closed)
        .filter_map(|s| {
            let key = SeriesKey {
                stream: name.to_string(),
                shard: Some(s.shard_id.clone()),
            };
            load.latest(&key).map(|r| (s.shard_id.clone(), r))
        })
        .collect();
    Measured {
        shard_rates,
        stream_rates: load.stream_rates(name),
    }
}

async fn cleanup_stream(stream: Arc<Stream>, ctx: &Context) -> Result<Action, Error> {
    let name = stream.stream_name().unwrap_or_default().to_string();
    if stream.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.publish(
            stream.as_ref(),
            EventType::Normal,
            "Retained",
            "DeleteStream",
            format!("deletionPolicy is Retain: stream {name:?} is kept in the catalog"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let Some(desired) = Desired::from_stream(&stream) else {
        return Ok(Action::await_change());
    };
    if !crate::validation::is_valid_name(&desired.name) {
        return Ok(Action::await_change());
    }
    match ctx.catalog.describe(&desired.name).await? {
        None => {}
        Some(observed) if observed.tags.get(OWNER_TAG) == Some(&desired.owner) => {
            if observed.status != Some(StreamLifecycle::Deleting) {
                ctx.catalog.delete(&desired.name).await?;
            }
            ctx.publish(
                stream.as_ref(),
                EventType::Normal,
                "Deleted",
                "DeleteStream",
                format!(
                    "deletionPolicy is Delete: stream {:?} deleted from the catalog",
                    desired.name
                ),
            )
            .await;
        }
        Some(_) => {
            ctx.publish(
                stream.as_ref(),
                EventType::Warning,
                "NotDeleted",
                "DeleteStream",
                format!(
                    "stream {:?} is not owned by this resource ({OWNER_TAG} differs); left in the catalog",
                    desired.name
                ),
            )
            .await;
        }
    }
    Ok(Action::await_change())
}

/// Emits an Event when a condition moves to a state worth telling (invalid spec, conflict,
/// unsupported change, refused scaling, ready).
async fn events_for_changes<K>(ctx: &Context, obj: &K, previous: Option<&StreamStatus>, status: &StreamStatus)
where
    K: Resource<DynamicType = ()>,
{
    let prev = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    for type_ in [
        ConditionType::Ready,
        ConditionType::Scaling,
        ConditionType::Degraded,
    ] {
        if !changed(prev, &status.conditions, type_) {
            continue;
        }
        let Some(c) = find(&status.conditions, type_) else {
            continue;
        };
        let was_ready = find(prev, ConditionType::Ready).is_some_and(|p| p.status == "True");
        let (event_type, action, reason) = match (type_, c.status.as_str(), c.reason.as_str()) {
            (ConditionType::Ready, "True", _) if !was_ready => (EventType::Normal, "Reconcile", "Ready"),
            (ConditionType::Ready, _, reason::INVALID_SPEC) => {
                (EventType::Warning, "Validate", reason::INVALID_SPEC)
            }
            (ConditionType::Ready, _, reason::NAME_CONFLICT) => {
                (EventType::Warning, "Reconcile", reason::NAME_CONFLICT)
            }
            (ConditionType::Scaling, _, reason::SCALING_BLOCKED) => {
                (EventType::Warning, "Reconcile", reason::SCALING_BLOCKED)
            }
            (ConditionType::Degraded, _, reason::ENCRYPTION_REFUSED) => {
                (EventType::Warning, "Reconcile", reason::ENCRYPTION_REFUSED)
            }
            _ => continue,
        };
        ctx.publish(obj, event_type, reason, action, c.message.clone())
            .await;
    }
}

/// Writes `status` by server-side apply (field manager [`MANAGER`]) unless it equals
/// `previous`.
async fn write_status<K, S>(api: &Api<K>, obj: &K, previous: Option<&S>, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if previous == Some(status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": serde_json::to_value(status)?,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Reconciles one `DeliveryStream`: finalizer, then put its spec in the catalog or, on
/// deletion, delete it from there. No delivery engine runs it yet; the status says so
/// (`Stored=True`, `Ready=False` reason `NoDeliveryEngine`).
pub async fn reconcile_delivery_stream(ds: Arc<DeliveryStream>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = ds.namespace().ok_or(Error::Unnamed)?;
    let api: Api<DeliveryStream> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, DELIVERY_FINALIZER, ds.clone(), |event| async {
        match event {
            FinalizerEvent::Apply(d) => apply_delivery_stream(d, &api, &ctx).await,
            FinalizerEvent::Cleanup(d) => cleanup_delivery_stream(d, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.reconciled("DeliveryStream", ds.as_ref(), started, result.is_ok());
    result
}

async fn apply_delivery_stream(
    ds: Arc<DeliveryStream>,
    api: &Api<DeliveryStream>,
    ctx: &Context,
) -> Result<Action, Error> {
    let generation = ds.metadata.generation;
    let previous = ds.status.as_ref();
    let resource: &DeliveryStream = ds.as_ref();
    let write = |status: DeliveryStreamStatus| async move {
        delivery_events(ctx, resource, previous, &status).await;
        write_status(api, resource, previous, &status).await
    };
    if let Err(errors) = validate_delivery_stream(&ds) {
        write(delivery_status(
            generation,
            previous,
            DeliveryObservation::InvalidSpec(&errors),
            &now(),
        ))
        .await?;
        // Level-triggered: nothing to do until the spec changes.
        return Ok(Action::await_change());
    }
    let desired = CatalogDeliveryStream::from_resource(&ds)?.ok_or(Error::Unnamed)?;
    let observed = match ctx.catalog.describe_delivery_stream(&desired.name).await {
        Ok(o) => o,
        Err(e) => {
            let message = e.to_string();
            let status = delivery_status(
                generation,
                previous,
                DeliveryObservation::CatalogUnavailable(&message),
                &now(),
            );
            if let Err(w) = write(status).await {
                tracing::warn!(error = %w, "could not write status");
            }
            return Err(e.into());
        }
    };
    let stored = match observed {
        Some(o) if o.spec_json == desired.spec_json => o,
        Some(o) if owner_of(&o.spec_json).as_deref() != Some(desired.owner.as_str()) => {
            let owner = owner_of(&o.spec_json);
            let observation = DeliveryObservation::Conflict {
                name: &desired.name,
                owner: owner.as_deref(),
            };
            write(delivery_status(generation, previous, observation, &now())).await?;
            return Ok(Action::requeue(RESYNC));
        }
        existing => {
            let put = ctx
                .catalog
                .put_delivery_stream(&desired.name, &desired.spec_json)
                .await?;
            let (reason, verb) = if existing.is_some() {
                ("Updated", "replaced the spec of")
            } else {
                ("Stored", "stored")
            };
            ctx.publish(
                ds.as_ref(),
                EventType::Normal,
                reason,
                "PutDeliveryStream",
                format!("{verb} delivery stream {:?} in the catalog", desired.name),
            )
            .await;
            put
        }
    };
    // Renamed: the entry stored under the old name goes once the new one is in, if it is still
    // this resource's (the status keeps the old ARN until then, so a restart finishes it).
    if let Some(old) = renamed_from(previous, &desired.name) {
        remove_owned_delivery_stream(ctx, ds.as_ref(), &old, &desired.owner, "renamed").await?;
    }
    let status_name = pb::DeliveryStreamStatus::try_from(stored.status)
        .map(|s| s.as_str_name().trim_start_matches("DELIVERY_STREAM_STATUS_"))
        .unwrap_or("UNKNOWN");
    let observation = DeliveryObservation::Stored {
        arn: &stored.delivery_stream_arn,
        status: status_name,
    };
    write(delivery_status(generation, previous, observation, &now())).await?;
    // Resync: a delivery stream deleted or changed behind the operator's back is put back.
    Ok(Action::requeue(RESYNC))
}

/// Deletes delivery stream `name` from the catalog if it is `owner`'s (the resource was
/// `why`: renamed, or deleted in the middle of a rename).
async fn remove_owned_delivery_stream(
    ctx: &Context,
    ds: &DeliveryStream,
    name: &str,
    owner: &str,
    why: &str,
) -> Result<(), Error> {
    match ctx.catalog.describe_delivery_stream(name).await? {
        Some(o) if owner_of(&o.spec_json).as_deref() == Some(owner) => {
            ctx.catalog.delete_delivery_stream(name).await?;
            ctx.publish(
                ds,
                EventType::Normal,
                "Deleted",
                "DeleteDeliveryStream",
                format!("delivery stream {name:?} deleted from the catalog: the resource was {why}"),
            )
            .await;
        }
        // Gone already, or someone else's now: nothing of ours to remove.
        _ => {}
    }
    Ok(())
}

/// Deletes the delivery stream from the catalog when this resource owns it (DeliveryStream has
/// no deletion policy: deleting the resource deletes the delivery stream).
async fn cleanup_delivery_stream(ds: Arc<DeliveryStream>, ctx: &Context) -> Result<Action, Error> {
    let Some(desired) = CatalogDeliveryStream::from_resource(&ds)? else {
        return Ok(Action::await_change());
    };
    // An invalid name cannot be in the catalog.
    if !crate::validation::is_valid_delivery_stream_name(&desired.name) {
        return Ok(Action::await_change());
    }
    // A rename this resource had not finished when it was deleted leaves the old entry too.
    if let Some(old) = renamed_from(ds.status.as_ref(), &desired.name) {
        remove_owned_delivery_stream(ctx, ds.as_ref(), &old, &desired.owner, "deleted").await?;
    }
    match ctx.catalog.describe_delivery_stream(&desired.name).await? {
        None => {}
        Some(o) if owner_of(&o.spec_json).as_deref() == Some(desired.owner.as_str()) => {
            ctx.catalog.delete_delivery_stream(&desired.name).await?;
            ctx.publish(
                ds.as_ref(),
                EventType::Normal,
                "Deleted",
                "DeleteDeliveryStream",
                format!("delivery stream {:?} deleted from the catalog", desired.name),
            )
            .await;
        }
        Some(_) => {
            ctx.publish(
                ds.as_ref(),
                EventType::Warning,
                "NotDeleted",
                "DeleteDeliveryStream",
                format!(
                    "delivery stream {:?} is not owned by this resource ({OWNER_TAG} differs); left in the catalog",
                    desired.name
                ),
            )
            .await;
        }
    }
    Ok(Action::await_change())
}

/// Emits an Event when the delivery stream becomes invalid or conflicts with another.
async fn delivery_events(
    ctx: &Context,
    ds: &DeliveryStream,
    previous: Option<&DeliveryStreamStatus>,
    status: &DeliveryStreamStatus,
) {
    let prev = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    if !changed(prev, &status.conditions, ConditionType::Ready) {
        return;
    }
    let Some(c) = find(&status.conditions, ConditionType::Ready) else {
        return;
    };
    let action = match c.reason.as_str() {
        reason::INVALID_SPEC => "Validate",
        reason::NAME_CONFLICT => "Reconcile",
        _ => return,
    };
    ctx.publish(ds, EventType::Warning, &c.reason, action, c.message.clone())
        .await;
}

/// Requeues a failed `DeliveryStream` with exponential backoff.
pub fn delivery_error_policy(ds: Arc<DeliveryStream>, error: &Error, ctx: Arc<Context>) -> Action {
    let n = ctx.failed(key_of("DeliveryStream", ds.as_ref()));
    tracing::warn!(delivery_stream = %ds.name_any(), error = %error, attempt = n, "requeue after failure");
    Action::requeue(backoff(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn notes_are_truncated_on_char_boundaries() {
        assert_eq!(truncate("héllo".into(), 2), "h");
        assert_eq!(truncate("abc".into(), 10), "abc");
    }
}
