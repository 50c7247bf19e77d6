//! The storage conformance suite on the in-memory backend.

use atllas_webhooks::store::Store;
use atllas_webhooks::store::conformance;
use atllas_webhooks::store::memory::MemoryStore;

atllas_webhooks::store_conformance_tests!(|| async { MemoryStore::new() });

/// `run_all` runs every check in turn.
#[tokio::test]
async fn run_all_on_memory() {
    conformance::run_all(|| async { MemoryStore::new() }).await;
}

/// The checks also take a trait object.
#[tokio::test]
async fn checks_take_a_dyn_store() {
    let store = MemoryStore::new();
    let store: &dyn Store = &store;
    conformance::queue_leases(store).await;
    conformance::request_log(store).await;
}

/// Several checks on one store, side by side, as against a shared database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_share_one_store() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let mut tasks = Vec::new();
    for i in 0..3 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            conformance::run_shareable(&*s).await;
            if i == 0 {
                conformance::queue_leases(&*s).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("a check panicked");
    }
    // Again, over what the first runs left behind.
    conformance::queue_leases(&*store).await;
    conformance::request_log(&*store).await;
    conformance::delivery_listing(&*store).await;
}
