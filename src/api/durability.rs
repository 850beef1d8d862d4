//! Group commit: a push is acknowledged only after its points are on disk, and pushes that arrive
//! while a flush runs share the next one. One fsync then covers many requests, which is what lets
//! the ingest path acknowledge durable points at a high rate.

use tokio::sync::{mpsc, oneshot};

use crate::store::Store;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Hands out "your writes are durable" to whoever asks after writing.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::UnboundedSender<Waiter>,
}

impl GroupCommit {
    /// Starts the flushing task for `store`.
    pub fn start(store: Store) -> GroupCommit {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut waiters = vec![first];
                while let Ok(more) = incoming.try_recv() {
                    waiters.push(more);
                }
                // Every waiter here wrote before it asked, and it asked before this flush began,
                // so this flush covers its writes.
                let store = store.clone();
                let result = tokio::task::spawn_blocking(move || store.flush())
                    .await
                    .map_err(|e| format!("flush task: {e}"))
                    .and_then(|r| r.map_err(|e| e.to_string()));
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        GroupCommit { requests }
    }

    /// Returns once everything this caller wrote before calling is durable.
    pub async fn durable(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.requests
            .send(done)
            .map_err(|_| "the store is shutting down".to_string())?;
        wait.await
            .map_err(|_| "the store is shutting down".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_callers_are_all_answered_and_their_writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let commit = GroupCommit::start(store.clone());
        let mut tasks = Vec::new();
        for i in 0..50u64 {
            let (store, commit) = (store.clone(), commit.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .put_engine_state(&format!("e{i}"), &serde_json::json!(i))
                    .unwrap();
                commit.durable().await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        drop(commit);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        for i in 0..50u64 {
            assert_eq!(
                store.engine_state(&format!("e{i}")).unwrap(),
                Some(serde_json::json!(i))
            );
        }
    }
}
