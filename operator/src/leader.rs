//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go does it: the holder
//! renews `renewTime` every retry period; another candidate takes the Lease over once it has
//! seen the same record unchanged for a whole lease duration (measured on its own monotonic
//! clock, so clock skew between machines does not matter). Writes use the Lease's
//! resourceVersion, so two candidates can never both win the same round.

use std::time::Duration;
use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ObjectMeta;
use kube::api::PostParams;

/// Errors of the elector.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("lost the lease {name}: not renewed within {deadline:?}")]
    Lost { name: String, deadline: Duration },
}

/// Timing of the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// The holder gives up leadership when it could not renew for this long (< lease_duration).
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseTiming {
    /// client-go's proportions (15 s / 10 s / 2 s) scaled to `lease_duration`.
    pub fn from_duration(lease_duration: Duration) -> LeaseTiming {
        let lease_duration = lease_duration.max(Duration::from_secs(2));
        LeaseTiming {
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: (lease_duration / 7).max(Duration::from_millis(200)),
        }
    }
}

/// The part of a Lease record that tells whether its holder is alive: any change means it is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RecordKey {
    holder: Option<String>,
    renew_time: Option<String>,
    resource_version: Option<String>,
}

/// Whether `me` may take the Lease: it is free, already mine, or its record has not changed
/// for a whole lease duration.
pub fn may_acquire(
    holder: Option<&str>,
    me: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> bool {
    match holder {
        None | Some("") => true,
        Some(h) if h == me => true,
        Some(_) => unchanged_for >= lease_duration,
    }
}

/// A candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    observed: Option<(RecordKey, Instant)>,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: LeaseTiming) -> Elector {
        Elector {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) -> Result<(), LeaderError> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the Lease until a renewal fails for longer than the renew deadline; returns why
    /// leadership was lost. The caller must stop acting as leader at once.
    pub async fn hold(&mut self) -> LeaderError {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    return LeaderError::Lost {
                        name: self.name.clone(),
                        deadline: self.timing.renew_deadline,
                    };
                }
                Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
            }
            if last_renewed.elapsed() > self.timing.renew_deadline {
                return LeaderError::Lost {
                    name: self.name.clone(),
                    deadline: self.timing.renew_deadline,
                };
            }
        }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over without waiting for expiry.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(|e| self.err(e))? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            name: self.name.clone(),
            source,
        }
    }

    /// One round: create, take over or renew the Lease. Ok(true) when this candidate holds it.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = MicroTime(Timestamp::now());
        let duration_secs = i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(|e| self.err(e))? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(self.err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let key = RecordKey {
            holder: spec.holder_identity.clone(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            resource_version: lease.metadata.resource_version.clone(),
        };
        let seen_at = match &self.observed {
            Some((k, at)) if *k == key => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((key, at));
                at
            }
        };
        // The holder's own duration counts, so candidates with other settings agree.
        let their_duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.timing.lease_duration);
        let holder = spec.holder_identity.as_deref();
        if !may_acquire(holder, &self.identity, seen_at.elapsed(), their_duration) {
            return Ok(false);
        }
        let taking_over = holder != Some(self.identity.as_str());
        let mut new_spec = spec.clone();
        if taking_over {
            new_spec.acquire_time = Some(now.clone());
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        new_spec.holder_identity = Some(self.identity.clone());
        new_spec.lease_duration_seconds = Some(duration_secs);
        new_spec.renew_time = Some(now);
        lease.spec = Some(new_spec);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => {
                if taking_over {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired the lease");
                }
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn free_or_own_lease_can_be_taken() {
        assert!(may_acquire(None, "a", Duration::ZERO, D));
        assert!(may_acquire(Some(""), "a", Duration::ZERO, D));
        assert!(may_acquire(Some("a"), "a", Duration::ZERO, D));
    }

    #[test]
    fn live_holder_keeps_the_lease() {
        assert!(!may_acquire(Some("b"), "a", Duration::from_secs(14), D));
    }

    #[test]
    fn expired_holder_loses_the_lease() {
        assert!(may_acquire(Some("b"), "a", D, D));
    }

    #[test]
    fn timing_keeps_client_go_proportions() {
        let t = LeaseTiming::from_duration(Duration::from_secs(15));
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert!(t.retry_period < t.renew_deadline);
        let short = LeaseTiming::from_duration(Duration::from_millis(10));
        assert_eq!(short.lease_duration, Duration::from_secs(2));
    }
}
