//! Leader election through a `coordination.k8s.io/v1` Lease, so that two controller replicas never
//! both act (a manual scale-up, a node partition that lets a replacement pod start while the old
//! one still runs).
//!
//! The rules are client-go's (`leaderelection`): a candidate takes the Lease when it is free
//! (no holder), when it holds it already, or when the holder has not renewed it for
//! `leaseDurationSeconds` — measured on the candidate's own clock from the moment it last *saw the
//! record change*, never by comparing the holder's timestamps with its own clock, so clock skew
//! between nodes cannot make two leaders. Every write is a replace with the `resourceVersion` that
//! was read, so of two candidates racing for a free Lease exactly one wins (the other gets 409).
//! The leader renews every [`LeaseSettings::renew_every`]; if it cannot renew within
//! [`LeaseSettings::renew_deadline`] (shorter than the lease duration, so it gives up before
//! anyone else may take over) it reports the lease lost and must stop acting. On a clean shutdown
//! it releases the Lease (holder cleared), so a successor starts at once.
//!
//! `sextant controller` takes the Lease before it opens the store (sled allows one process per
//! database), and exits when it loses it; Kubernetes restarts it as a candidate.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// How the election runs.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The Lease's namespace (the controller's own).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This candidate's identity (the pod's name).
    pub identity: String,
    /// How long a holder that stops renewing keeps the Lease (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often the leader renews, and how often a candidate tries again.
    pub renew_every: Duration,
}

impl LeaseSettings {
    /// client-go's defaults (15 s / 10 s / 2 s) for the Lease `name` in `namespace`.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseSettings {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
        }
    }
}

/// What a candidate saw of the Lease last, and when (its own clock).
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    transitions: i32,
    at: Instant,
}

/// One candidate for the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// This candidate holds the Lease (taken or renewed).
    Leading,
    /// Someone else holds it, or won a race for it.
    Following,
}

impl LeaderElector {
    /// A candidate on `client` with `settings`.
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    /// The identity this candidate writes into the Lease.
    pub fn identity(&self) -> &str {
        &self.settings.identity
    }

    /// One attempt to take or renew the Lease.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = Instant::now();
        let Some(lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = self.lease(None, 0);
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created, now);
                    Ok(Attempt::Leading)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease, now);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.settings.identity.as_str());
        if holder.is_some() && !mine && !self.expired(&spec, now) {
            return Ok(Attempt::Following);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let mut taken = self.lease(if mine { spec.acquire_time } else { None }, transitions);
        taken.metadata.resource_version = lease.metadata.resource_version.clone();
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &taken)
            .await
        {
            Ok(written) => {
                self.observe(&written, now);
                if !mine {
                    tracing::info!(
                        lease = self.settings.name,
                        previous = holder.as_deref().unwrap_or(""),
                        "took the lease"
                    );
                }
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following),
            Err(e) => Err(e),
        }
    }

    /// Whether the holder of `spec` has let it lapse: the record has not changed for its whole
    /// duration since this candidate first saw it that way.
    fn expired(&self, spec: &LeaseSpec, now: Instant) -> bool {
        let Some(observed) = &self.observed else {
            return false;
        };
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.settings.lease_duration);
        now.duration_since(observed.at) >= duration
    }

    /// Remembers the Lease's record, and when it was first seen as it is now.
    fn observe(&mut self, lease: &Lease, now: Instant) {
        let spec = lease.spec.clone().unwrap_or_default();
        let seen = Observed {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            at: now,
        };
        let unchanged = self.observed.as_ref().is_some_and(|o| {
            o.holder == seen.holder
                && o.renew_time == seen.renew_time
                && o.transitions == seen.transitions
        });
        if !unchanged {
            self.observed = Some(seen);
        }
    }

    fn lease(&self, acquired: Option<MicroTime>, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX),
                ),
                acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Waits until this candidate holds the Lease. Apiserver errors are logged and retried.
    pub async fn acquire(mut self) -> Leadership {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => break,
                Ok(Attempt::Following) => {}
                Err(e) => tracing::warn!(lease = self.settings.name, "leader election: {e}"),
            }
            tokio::time::sleep(self.settings.renew_every).await;
        }
        tracing::info!(
            lease = self.settings.name,
            identity = self.settings.identity,
            "leading"
        );
        let (lost_tx, lost) = watch::channel(false);
        let (stop_tx, stop) = watch::channel(false);
        let renewer = tokio::spawn(renew(self, lost_tx, stop));
        Leadership {
            lost,
            stop: stop_tx,
            renewer,
        }
    }

    /// Gives the Lease up if this candidate holds it (holder cleared, so a successor need not wait
    /// for it to lapse).
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let released = Lease {
            metadata: lease.metadata.clone(),
            spec: Some(spec),
        };
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => Ok(()),
            // Someone else wrote it since: it is not ours to release any more.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The leader's side: renews until stopped; sets `lost` if a renewal does not succeed within the
/// deadline.
async fn renew(
    mut elector: LeaderElector,
    lost: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) -> LeaderElector {
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(elector.settings.renew_every) => {}
            _ = stop.changed() => return elector,
        }
        match elector.try_acquire_or_renew().await {
            Ok(Attempt::Leading) => last_renewed = Instant::now(),
            Ok(Attempt::Following) => {
                tracing::error!(
                    lease = elector.settings.name,
                    "lost the lease to another controller"
                );
                let _ = lost.send(true);
                return elector;
            }
            Err(e) => tracing::warn!(lease = elector.settings.name, "renewing the lease: {e}"),
        }
        if last_renewed.elapsed() >= elector.settings.renew_deadline {
            tracing::error!(
                lease = elector.settings.name,
                "could not renew the lease for {:?}; giving up leadership",
                elector.settings.renew_deadline
            );
            let _ = lost.send(true);
            return elector;
        }
    }
}

/// The Lease, held: renewed in the background until [`Leadership::release`].
pub struct Leadership {
    lost: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    renewer: tokio::task::JoinHandle<LeaderElector>,
}

impl Leadership {
    /// Resolves when the Lease is lost (another candidate took it, or renewing failed past the
    /// deadline): the holder must stop acting at once.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Whether the Lease has been lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Stops renewing and gives the Lease up (unless it was lost).
    pub async fn release(self) -> Result<(), kube::Error> {
        let _ = self.stop.send(true);
        let lost = *self.lost.borrow();
        match self.renewer.await {
            Ok(mut elector) if !lost => elector.release().await,
            _ => Ok(()),
        }
    }
}
