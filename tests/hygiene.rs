//! Secrets hygiene: after a full run with custom headers and signing secrets, no header
//! value or secret is in clear in the SQLite file, in any log, or in any `Debug` output;
//! a key rotation re-seals everything, after which the old key can be dropped.
#![cfg(all(feature = "client", feature = "worker", feature = "sqlite"))]

mod support;

use std::sync::Arc;

use atllas_webhooks::calls::{CallService, MemoryCredits, SimulatedLauncher};
use atllas_webhooks::campaign::{CampaignSettings, CampaignStatus};
use atllas_webhooks::clock::{Clock, SystemClock};
use atllas_webhooks::delivery::{ClientConfig, DeliveryConfig, DeliveryEngine, HyperClient};
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::ids::{AccountId, MessageId};
use atllas_webhooks::inbound::{InboundConfig, InboundHandler};
use atllas_webhooks::registry::{
    CampaignRegistry, CustomHeader, NewEndpoint, Registry, RegistryConfig, WebhookRegistry, headers,
};
use atllas_webhooks::secrets::{EncryptionKey, KeyId, KeyRing};
use atllas_webhooks::signing::SigningSecret;
use atllas_webhooks::store::sqlite::SqliteStore;
use atllas_webhooks::store::{DeliveryFilter, LogStore, QueueStore, WebhookStore};
use base64::Engine as _;
use bytes::Bytes;
use support::TestServer;

const HEADER_SECRET: &str = "hdr-SECRET-value-7f3a9c";
const BEARER: &str = "bearer-SECRET-token-5d21";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_clear_anywhere_and_keys_rotate() {
    let dir =
        std::env::temp_dir().join(format!("atllas-hygiene-{}", MessageId::generate().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("hygiene.db");
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let key1 = EncryptionKey::generate().unwrap();
    let key1_b64 = key1.to_base64();
    let registry = Arc::new(Registry::new(
        store.clone(),
        KeyRing::new(KeyId::new(1), key1),
        RegistryConfig {
            destinations: DestinationPolicy::insecure(),
            base_url: "http://127.0.0.1/".into(),
            ..Default::default()
        },
    ));
    let server = TestServer::start().await;
    let account = AccountId::new("acct_hygiene");

    // A full run: inbound webhook with a response webhook, outbound webhooks with headers.
    let inbound = registry.create_inbound(&account, None).await.unwrap();
    let campaign = registry
        .create_campaign_for(
            &account,
            &inbound.id,
            "c",
            CampaignSettings {
                prompt: Some("p".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    registry
        .set_campaign_status(&account, &campaign.id, CampaignStatus::Active)
        .await
        .unwrap();
    let (_, response_secret) = registry
        .set_response_webhook(
            &account,
            &inbound.id,
            NewEndpoint::post(server.url("resp")).header(headers::bearer(BEARER).unwrap()),
        )
        .await
        .unwrap();
    let outbound = registry
        .create_outbound(
            &account,
            NewEndpoint::post(server.url("out"))
                .header(CustomHeader::new("X-Api-Key", HEADER_SECRET).unwrap())
                .headers(headers::follow_up_boss("atllas", HEADER_SECRET, "fub-api-key").unwrap()),
        )
        .await
        .unwrap();
    let rotated = registry
        .rotate_signing_secret(&account, &outbound.webhook.id)
        .await
        .unwrap();

    let credits = Arc::new(MemoryCredits::new());
    credits.set(&account, 10);
    let launcher = Arc::new(SimulatedLauncher::new());
    let calls = Arc::new(CallService::new(store.clone(), launcher.clone(), credits));
    let handler = InboundHandler::new(store.clone(), calls.clone(), InboundConfig::default());
    let resp = handler
        .handle(
            http::Request::post(format!("/{}", inbound.slug))
                .body(Bytes::from_static(br#"{"type":"calls.execute","data":{"phoneNumber":"+15551234567","firstName":"Jane"}}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), 201);
    for (a, id, _) in launcher.take_pending() {
        let record = atllas_webhooks::store::CallStore::call(store.as_ref(), &a, &id)
            .await
            .unwrap();
        calls
            .complete(
                &a,
                &id,
                SimulatedLauncher::outcome(&record, SystemClock.now()),
            )
            .await
            .unwrap();
    }
    let engine = DeliveryEngine::new(
        registry.clone(),
        Arc::new(
            HyperClient::new(ClientConfig {
                destinations: DestinationPolicy::insecure(),
                ..Default::default()
            })
            .unwrap(),
        ),
        DeliveryConfig::default(),
    )
    .unwrap();
    let reports = engine.run_once(10).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.success));
    engine
        .test_endpoint(&account, &outbound.webhook.id)
        .await
        .unwrap();
    // The receiver did get the values in clear: the delivery path works.
    let out_hit = &server.hits_for("out")[0];
    assert_eq!(out_hit.headers["x-api-key"], HEADER_SECRET);
    assert_eq!(
        server.hits_for("resp")[0].headers["authorization"],
        format!("Bearer {BEARER}")
    );

    // Everything a secret could be found as.
    let whsecs = [
        outbound.signing_secret.expose().to_owned(),
        rotated.expose().to_owned(),
        response_secret.unwrap().expose().to_owned(),
    ];
    let mut needles: Vec<Vec<u8>> = vec![
        HEADER_SECRET.as_bytes().to_vec(),
        BEARER.as_bytes().to_vec(),
        b"fub-api-key".to_vec(),
        base64::engine::general_purpose::STANDARD
            .encode("fub-api-key:")
            .into_bytes(),
        key1_b64.expose().as_bytes().to_vec(),
    ];
    for w in &whsecs {
        let raw = SigningSecret::parse(w).unwrap().as_bytes().to_vec();
        needles.push(w.as_bytes().to_vec());
        needles.push(w.trim_start_matches("whsec_").as_bytes().to_vec());
        needles.push(raw);
    }
    let check = |what: &str, haystack: &[u8]| {
        for n in &needles {
            assert!(
                !haystack.windows(n.len()).any(|w| w == n.as_slice()),
                "a secret is in clear in {what}"
            );
        }
    };

    // Logs and Debug output.
    let mut texts = Vec::new();
    texts.push(format!("{:?}", registry.endpoints(&account).await.unwrap()));
    texts.push(serde_json::to_string(&registry.inbound_webhooks(&account).await.unwrap()).unwrap());
    for e in store.endpoints(&account).await.unwrap() {
        texts.push(format!("{e:?}"));
        texts.push(format!(
            "{:?}",
            registry.unseal_endpoint(e.clone()).unwrap()
        ));
        texts.push(
            serde_json::to_string(&store.attempts(&account, &e.id, None, 100).await.unwrap())
                .unwrap(),
        );
    }
    texts.push(serde_json::to_string(&store.requests(Some(&account), 100).await.unwrap()).unwrap());
    texts.push(format!(
        "{:?}",
        store
            .deliveries(&account, &DeliveryFilter::default())
            .await
            .unwrap()
    ));
    texts.push(format!(
        "{outbound:?} {rotated:?} {registry:?} {engine:?} {store:?}"
    ));
    for t in &texts {
        check("a log or Debug output", t.as_bytes());
    }

    // The database files.
    let read_db = || {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let p = format!("{}{suffix}", db.display());
            if let Ok(b) = std::fs::read(&p) {
                bytes.extend(b);
            }
        }
        bytes
    };
    let before = read_db();
    assert!(!before.is_empty());
    check("the SQLite file", &before);

    // Key rotation: a new primary, re-seal everything, drop the old key.
    let mut ring = KeyRing::new(
        KeyId::new(1),
        EncryptionKey::from_base64(key1_b64.expose()).unwrap(),
    );
    ring.add(KeyId::new(2), EncryptionKey::generate().unwrap())
        .unwrap();
    ring.set_primary(KeyId::new(2)).unwrap();
    registry.set_key_ring(ring.clone());
    assert_eq!(
        registry.reseal_all().await.unwrap(),
        2,
        "both endpoints re-sealed"
    );
    ring.remove(KeyId::new(1)).unwrap();
    registry.set_key_ring(ring);
    for e in store.all_endpoints().await.unwrap() {
        assert!(
            e.headers
                .iter()
                .all(|h| h.value.key_id().unwrap() == KeyId::new(2))
        );
        assert!(
            e.secrets
                .iter()
                .all(|s| s.value.key_id().unwrap() == KeyId::new(2))
        );
        registry.unseal_endpoint(e).unwrap();
    }
    // Deliveries still work with only the new key.
    let report = engine
        .test_endpoint(&account, &outbound.webhook.id)
        .await
        .unwrap();
    assert!(report.success);
    assert_eq!(
        server.hits_for("out").last().unwrap().headers["x-api-key"],
        HEADER_SECRET
    );
    check("the SQLite file after rotation", &read_db());
    drop(engine);
    drop(registry);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same on PostgreSQL: no table of the store's schema holds a header value or a secret
/// in clear after webhooks were created and deliveries made.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_clear_in_postgres_tables() {
    use atllas_webhooks::store::postgres::PostgresStore;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to run the PostgreSQL hygiene test")
    });
    let schema = format!(
        "hygiene_{}",
        MessageId::generate()
            .unwrap()
            .as_str()
            .to_lowercase()
            .replace("msg_", "")
    );
    let store = Arc::new(
        PostgresStore::connect_with_schema(&url, &schema)
            .await
            .unwrap(),
    );
    let registry = Arc::new(Registry::new(
        store.clone(),
        KeyRing::generate().unwrap(),
        RegistryConfig {
            destinations: DestinationPolicy::insecure(),
            ..Default::default()
        },
    ));
    let server = TestServer::start().await;
    let account = AccountId::new("acct_pg_hygiene");
    let created = registry
        .create_outbound(
            &account,
            NewEndpoint::post(server.url("out"))
                .header(CustomHeader::new("X-Api-Key", HEADER_SECRET).unwrap())
                .header(headers::bearer(BEARER).unwrap()),
        )
        .await
        .unwrap();
    let engine = DeliveryEngine::new(
        registry.clone(),
        Arc::new(
            HyperClient::new(ClientConfig {
                destinations: DestinationPolicy::insecure(),
                ..Default::default()
            })
            .unwrap(),
        ),
        DeliveryConfig::default(),
    )
    .unwrap();
    assert!(
        engine
            .test_endpoint(&account, &created.webhook.id)
            .await
            .unwrap()
            .success
    );
    assert_eq!(
        server.hits_for("out")[0].headers["x-api-key"],
        HEADER_SECRET
    );

    let client = store.pool().get().await.unwrap();
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .unwrap();
    assert!(tables.len() >= 5, "the store's tables are in the schema");
    let mut dump = String::new();
    for t in tables {
        let name: String = t.get(0);
        let rows = client
            .query(
                &format!("SELECT t::text FROM \"{schema}\".\"{name}\" t"),
                &[],
            )
            .await
            .unwrap();
        for r in rows {
            dump.push_str(&r.get::<_, String>(0));
            dump.push('\n');
        }
    }
    assert!(dump.contains("x-api-key"), "the dump has the endpoint rows");
    let whsec = created.signing_secret.expose();
    for needle in [
        HEADER_SECRET,
        BEARER,
        whsec,
        whsec.trim_start_matches("whsec_"),
    ] {
        assert!(
            !dump.contains(needle),
            "a secret is in clear in a PostgreSQL table"
        );
    }
    let _ = client
        .execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"), &[])
        .await;
}
