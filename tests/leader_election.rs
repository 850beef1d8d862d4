//! Leader election through a Lease, against the fake apiserver: one leader at a time, takeover
//! after the holder stops renewing (measured on the candidate's clock), immediate takeover after a
//! release, exactly one winner of a race, and a leader that finds the Lease taken knows it lost.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use sextant::controller::leader::{Attempt, LeaderElector, LeaseSettings};

use crate::fake_apiserver::FakeApiServer;

const NS: &str = "sextant-system";
const LEASE: &str = "sextant-controller";

/// Short durations so the tests take seconds: a 1 s lease renewed every 100 ms.
fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(600),
        renew_every: Duration::from_millis(100),
        ..LeaseSettings::new(NS, LEASE, identity)
    }
}

fn holder(fake: &FakeApiServer) -> Option<String> {
    fake.get::<Lease>(NS, LEASE)
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewing_leader_keeps_the_lease_and_a_release_hands_it_over_at_once() {
    let fake = FakeApiServer::start().await;
    let leading = LeaderElector::new(fake.client(), settings("a"))
        .acquire()
        .await;
    assert_eq!(holder(&fake).as_deref(), Some("a"));

    // Three lease durations: the leader renews, so the other candidate never takes over.
    let mut b = LeaderElector::new(fake.client(), settings("b"));
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Following);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!leading.is_lost());
    let transitions = |fake: &FakeApiServer| {
        fake.get::<Lease>(NS, LEASE)
            .and_then(|l| l.spec)
            .and_then(|s| s.lease_transitions)
    };
    assert_eq!(transitions(&fake), Some(0));

    // Released: the holder is cleared and the next candidate takes it without waiting.
    leading.release().await.unwrap();
    assert_eq!(holder(&fake), None);
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Leading);
    assert_eq!(holder(&fake).as_deref(), Some("b"));
    assert_eq!(transitions(&fake), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_is_replaced_after_the_lease_duration() {
    let fake = FakeApiServer::start().await;
    let mut a = LeaderElector::new(fake.client(), settings("a"));
    assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leading);
    // `a` crashes here: no more renewals.
    let mut b = LeaderElector::new(fake.client(), settings("b"));
    let first_seen = Instant::now();
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Following);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if b.try_acquire_or_renew().await.unwrap() == Attempt::Leading {
            break;
        }
        assert!(
            first_seen.elapsed() < Duration::from_secs(5),
            "b never took over"
        );
    }
    // Not before the lease duration had passed since b first saw the record unchanged.
    assert!(first_seen.elapsed() >= Duration::from_secs(1));
    assert_eq!(holder(&fake).as_deref(), Some("b"));
    // `a` comes back: it must see that it lost.
    assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Following);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_candidates_racing_for_a_free_lease_exactly_one_leads() {
    let fake = FakeApiServer::start().await;
    for round in 0..5 {
        let name = format!("race-{round}");
        let racer = |id: &str| {
            let mut s = settings(id);
            s.name = name.clone();
            LeaderElector::new(fake.client(), s)
        };
        let (mut a, mut b) = (racer("a"), racer("b"));
        let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        let outcomes = [ra.unwrap(), rb.unwrap()];
        assert_eq!(
            outcomes.iter().filter(|&&o| o == Attempt::Leading).count(),
            1,
            "round {round}: {outcomes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_was_taken_is_told_it_lost() {
    let fake = FakeApiServer::start().await;
    let leading = LeaderElector::new(fake.client(), settings("a"))
        .acquire()
        .await;
    // Someone else writes the Lease (as after a partition that outlasted the lease).
    fake.update::<Lease>(NS, LEASE, |lease| {
        lease["spec"]["holderIdentity"] = "intruder".into();
    });
    tokio::time::timeout(Duration::from_secs(5), leading.lost())
        .await
        .expect("the leader notices within a few renewals");
    assert!(leading.is_lost());
    // A lost Lease is not released: it is someone else's now.
    leading.release().await.unwrap();
    assert_eq!(holder(&fake).as_deref(), Some("intruder"));
}
