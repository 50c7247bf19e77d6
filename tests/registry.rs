//! The registry over the memory store: webhooks, campaigns, sealing, tenant isolation.

use std::sync::Arc;

use atllas_webhooks::campaign::{CampaignKind, CampaignSettings, CampaignStatus};
use atllas_webhooks::clock::ManualClock;
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::ids::{AccountId, CampaignId, WebhookId};
use atllas_webhooks::model::HttpMethod;
use atllas_webhooks::registry::{
    CampaignRegistry, CustomHeader, EndpointUpdate, NewEndpoint, Registry, RegistryConfig,
    RegistryError, WebhookRegistry, headers,
};
use atllas_webhooks::secrets::{EncryptionKey, KeyId, KeyRing, MASK};
use atllas_webhooks::signing::{SigningSecret, Verifier};
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::store::{EndpointKind, WebhookStore};
use chrono::{TimeZone, Utc};

const TOKEN: &str = "tok_SUPER_SECRET_123";

fn setup() -> (Registry<MemoryStore>, Arc<MemoryStore>, Arc<ManualClock>) {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let registry = Registry::new(
        store.clone(),
        KeyRing::generate().unwrap(),
        RegistryConfig::default(),
    )
    .with_clock(clock.clone());
    (registry, store, clock)
}

fn prompt(p: &str) -> CampaignSettings {
    CampaignSettings {
        prompt: Some(p.into()),
        ..Default::default()
    }
}

fn a() -> AccountId {
    AccountId::new("acct_a")
}
fn b() -> AccountId {
    AccountId::new("acct_b")
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, RegistryError>) -> bool {
    matches!(r, Err(RegistryError::NotFound { .. }))
}

#[tokio::test]
async fn inbound_lifecycle_slug_binding_rotation() {
    let (reg, _, _) = setup();
    let w = reg.create_inbound(&a(), None).await.unwrap();
    assert_eq!(w.url, format!("https://wh.atll.as/{}", w.slug));
    assert!(w.slug.len() >= 26 && !w.slug.contains('_'));
    assert!(w.campaign_id.is_none());

    // "Create Campaign" after creation binds it.
    let c = reg
        .create_campaign_for(&a(), &w.id, "Inbound leads", prompt("Qualify"))
        .await
        .unwrap();
    assert_eq!(c.kind, CampaignKind::Inbound);
    assert_eq!(
        reg.inbound(&a(), &w.id).await.unwrap().campaign_id,
        Some(c.id.clone())
    );
    // Binding at creation.
    let w2 = reg.create_inbound(&a(), Some(&c.id)).await.unwrap();
    assert_eq!(w2.campaign_id, Some(c.id.clone()));
    assert_ne!(w.slug, w2.slug);

    // An outbound campaign cannot be bound.
    let out = reg
        .create_campaign(&a(), "Dialer", CampaignKind::Outbound, prompt("x"))
        .await
        .unwrap();
    assert!(matches!(
        reg.bind_campaign(&a(), &w.id, &out.id).await,
        Err(RegistryError::NotInboundCampaign(_))
    ));

    // Lookup by slug, rotation, enable/disable.
    assert_eq!(reg.resolve_slug(&w.slug).await.unwrap().unwrap().id, w.id);
    let rotated = reg.rotate_slug(&a(), &w.id).await.unwrap();
    assert_ne!(rotated.slug, w.slug);
    assert!(
        reg.resolve_slug(&w.slug).await.unwrap().is_none(),
        "old slug stops working"
    );
    assert!(reg.resolve_slug(&rotated.slug).await.unwrap().is_some());
    reg.set_inbound_enabled(&a(), &w.id, false).await.unwrap();
    assert!(
        reg.resolve_slug(&rotated.slug).await.unwrap().is_none(),
        "disabled"
    );
    reg.set_inbound_enabled(&a(), &w.id, true).await.unwrap();
    assert!(reg.resolve_slug(&rotated.slug).await.unwrap().is_some());
    reg.delete_inbound(&a(), &w.id).await.unwrap();
    assert!(reg.resolve_slug(&rotated.slug).await.unwrap().is_none());
    assert!(is_not_found(reg.inbound(&a(), &w.id).await));
}

#[tokio::test]
async fn base_url_is_configurable() {
    let store = Arc::new(MemoryStore::new());
    let reg = Registry::new(
        store,
        KeyRing::generate().unwrap(),
        RegistryConfig {
            base_url: "http://127.0.0.1:8080".into(),
            ..Default::default()
        },
    );
    let w = reg.create_inbound(&a(), None).await.unwrap();
    assert_eq!(w.url, format!("http://127.0.0.1:8080/{}", w.slug));
}

#[tokio::test]
async fn response_webhook_set_replace_remove() {
    let (reg, store, _) = setup();
    let w = reg.create_inbound(&a(), None).await.unwrap();
    let (view, secret) = reg
        .set_response_webhook(
            &a(),
            &w.id,
            NewEndpoint::post("https://crm.example.com/cb").header(headers::bearer(TOKEN).unwrap()),
        )
        .await
        .unwrap();
    let secret = secret.expect("a new response webhook shows its secret once");
    assert!(secret.expose().starts_with("whsec_"));
    assert_eq!(
        view.kind,
        EndpointKind::Response {
            inbound: w.id.clone()
        }
    );
    assert_eq!(view.headers[0].value, MASK);
    let shown = reg.inbound(&a(), &w.id).await.unwrap();
    assert_eq!(shown.response_webhook.as_ref().unwrap().id, view.id);

    // Replace keeps the id and the secret, changes URL and headers.
    let (replaced, none) = reg
        .set_response_webhook(
            &a(),
            &w.id,
            NewEndpoint::post("https://crm.example.com/cb2"),
        )
        .await
        .unwrap();
    assert!(none.is_none());
    assert_eq!(replaced.id, view.id);
    assert_eq!(replaced.url, "https://crm.example.com/cb2");
    assert!(replaced.headers.is_empty());
    let unsealed = reg
        .unseal_endpoint(store.endpoint(&a(), &view.id).await.unwrap())
        .unwrap();
    assert_eq!(
        Verifier::new(unsealed.secrets[0].clone())
            .verify_parts(
                "msg_1",
                "1",
                &unsealed.secrets[0].sign("msg_1", 1, b"x").to_string(),
                b"x",
                Utc.timestamp_opt(1, 0).unwrap()
            )
            .unwrap()
            .id,
        "msg_1"
    );
    assert_eq!(
        SigningSecret::parse(secret.expose()).unwrap(),
        unsealed.secrets[0]
    );

    reg.remove_response_webhook(&a(), &w.id).await.unwrap();
    assert!(
        reg.inbound(&a(), &w.id)
            .await
            .unwrap()
            .response_webhook
            .is_none()
    );
    assert!(is_not_found(reg.endpoint(&a(), &view.id).await));
}

#[tokio::test]
async fn outbound_create_update_enable_delete_and_managed() {
    let (reg, store, _) = setup();
    let created = reg
        .create_outbound(
            &a(),
            NewEndpoint::get("https://hooks.example.com/in?src=atllas").headers(
                headers::follow_up_boss("atllas-integration", "sys-key", "fub-key").unwrap(),
            ),
        )
        .await
        .unwrap();
    let v = &created.webhook;
    assert_eq!(v.method, HttpMethod::Get);
    assert_eq!(
        v.headers
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>(),
        ["x-system", "x-system-key", "authorization"]
    );
    assert!(v.headers.iter().all(|h| h.value == MASK));

    let unsealed = reg
        .unseal_endpoint(store.endpoint(&a(), &v.id).await.unwrap())
        .unwrap();
    assert_eq!(
        unsealed.headers[2].1.to_str().unwrap(),
        "Basic ZnViLWtleTo="
    );

    let updated = reg
        .update_endpoint(
            &a(),
            &v.id,
            EndpointUpdate {
                method: Some(HttpMethod::Post),
                url: Some("https://hooks.example.com/v2".into()),
                headers: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.method, updated.url.as_str()),
        (HttpMethod::Post, "https://hooks.example.com/v2")
    );
    assert_eq!(updated.headers.len(), 3, "headers unchanged when not given");

    let off = reg.set_endpoint_enabled(&a(), &v.id, false).await.unwrap();
    assert!(!off.enabled && off.disabled_reason.is_some());
    let on = reg.set_endpoint_enabled(&a(), &v.id, true).await.unwrap();
    assert!(on.enabled && on.disabled_reason.is_none());

    let zap = reg
        .create_outbound(
            &a(),
            NewEndpoint::post("https://hooks.zapier.com/x").managed_by("Zapier"),
        )
        .await
        .unwrap();
    assert_eq!(zap.webhook.managed_by.as_deref(), Some("Zapier"));
    for r in [
        reg.update_endpoint(&a(), &zap.webhook.id, EndpointUpdate::default())
            .await
            .map(|_| ()),
        reg.set_endpoint_enabled(&a(), &zap.webhook.id, false)
            .await
            .map(|_| ()),
        reg.delete_outbound(&a(), &zap.webhook.id).await,
        reg.rotate_signing_secret(&a(), &zap.webhook.id)
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(r, Err(RegistryError::ReadOnly { .. })), "{r:?}");
    }
    // The integration itself may update it.
    reg.update_managed_endpoint(
        &a(),
        &zap.webhook.id,
        "Zapier",
        EndpointUpdate {
            url: Some("https://hooks.zapier.com/y".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    reg.delete_outbound(&a(), &v.id).await.unwrap();
    assert_eq!(reg.endpoints(&a()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn signing_secret_rotation_keeps_the_old_one_for_the_overlap() {
    let (reg, store, clock) = setup();
    let created = reg
        .create_outbound(&a(), NewEndpoint::post("https://x.example.com/"))
        .await
        .unwrap();
    let id = created.webhook.id.clone();
    let old = SigningSecret::parse(created.signing_secret.expose()).unwrap();
    let new =
        SigningSecret::parse(reg.rotate_signing_secret(&a(), &id).await.unwrap().expose()).unwrap();
    let unsealed = reg
        .unseal_endpoint(store.endpoint(&a(), &id).await.unwrap())
        .unwrap();
    assert_eq!(
        unsealed.secrets,
        vec![new.clone(), old.clone()],
        "new first, old still valid"
    );
    assert_eq!(reg.endpoint(&a(), &id).await.unwrap().active_secrets, 2);
    clock.advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    let unsealed = reg
        .unseal_endpoint(store.endpoint(&a(), &id).await.unwrap())
        .unwrap();
    assert_eq!(unsealed.secrets, vec![new]);
}

#[tokio::test]
async fn given_signing_secret_is_used() {
    let (reg, store, _) = setup();
    let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let created = reg
        .create_outbound(
            &a(),
            NewEndpoint::post("https://x.example.com/").signing_secret(secret.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        created.signing_secret.expose(),
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    );
    let unsealed = reg
        .unseal_endpoint(store.endpoint(&a(), &created.webhook.id).await.unwrap())
        .unwrap();
    assert_eq!(unsealed.secrets[0], secret);
}

#[tokio::test]
async fn url_rules_table() {
    let (reg, _, _) = setup();
    let refused: [(&str, &str); 22] = [
        ("http://2130706433/", "insecure_scheme"),
        ("https://2130706433/", "blocked_address"),
        ("https://0x7f.1/", "blocked_address"),
        ("https://127.1/", "blocked_address"),
        ("https://[::ffff:127.0.0.1]/", "blocked_address"),
        ("https://[::1]/", "blocked_address"),
        (
            "https://169.254.169.254/latest/meta-data",
            "blocked_address",
        ),
        ("https://[fd00:ec2::254]/", "blocked_address"),
        ("https://10.0.0.1/", "blocked_address"),
        ("https://172.16.5.4/", "blocked_address"),
        ("https://192.168.1.1/", "blocked_address"),
        ("https://100.64.0.1/", "blocked_address"),
        ("https://[fe80::1]/", "blocked_address"),
        ("https://0.0.0.0/", "blocked_address"),
        ("https://224.0.0.1/", "blocked_address"),
        ("https://[64:ff9b::7f00:1]/", "blocked_address"),
        ("https://user:pw@example.com/", "userinfo"),
        ("https://localhost:8443/", "blocked_hostname"),
        ("https://metadata.google.internal/", "blocked_hostname"),
        ("ftp://example.com/", "scheme"),
        ("http://example.com/", "insecure_scheme"),
        ("not a url", "invalid_url"),
    ];
    for (url, rule) in refused {
        match reg.create_outbound(&a(), NewEndpoint::post(url)).await {
            Err(RegistryError::Destination(e)) => {
                assert_eq!(e.rule(), rule, "{url}: {e}");
                assert!(
                    e.to_string().contains(rule),
                    "the message names the rule: {e}"
                );
                assert!(!e.to_string().contains("pw@"), "{e}");
            }
            other => panic!("{url}: expected a destination error, got {other:?}"),
        }
    }
    for url in [
        "https://example.com/hook?x=1",
        "https://8.8.8.8/",
        "https://[2606:4700::1111]/",
    ] {
        reg.create_outbound(&a(), NewEndpoint::post(url))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    // Nothing refused was stored.
    assert_eq!(reg.endpoints(&a()).await.unwrap().len(), 3);

    let dev = Registry::new(
        Arc::new(MemoryStore::new()),
        KeyRing::generate().unwrap(),
        RegistryConfig {
            destinations: DestinationPolicy::insecure(),
            ..Default::default()
        },
    );
    dev.create_outbound(&a(), NewEndpoint::post("http://127.0.0.1:9000/hook"))
        .await
        .unwrap();
}

#[tokio::test]
async fn custom_header_rules() {
    for name in [
        "webhook-id",
        "webhook-signature",
        "Content-Type",
        "host",
        "content-length",
        "transfer-encoding",
    ] {
        assert!(
            matches!(
                CustomHeader::new(name, "v"),
                Err(RegistryError::ReservedHeader(_))
            ),
            "{name}"
        );
    }
    assert!(matches!(
        CustomHeader::new("x bad", "v"),
        Err(RegistryError::InvalidHeader { .. })
    ));
    assert!(matches!(
        CustomHeader::new("x-ok", "a\r\nb"),
        Err(RegistryError::InvalidHeader { .. })
    ));
}

#[tokio::test]
async fn campaign_lock_and_settings_versions() {
    let (reg, _, _) = setup();
    let inbound = reg
        .create_campaign(&a(), "In", CampaignKind::Inbound, prompt("v1"))
        .await
        .unwrap();
    reg.set_campaign_status(&a(), &inbound.id, CampaignStatus::Active)
        .await
        .unwrap();
    let v2 = reg
        .edit_campaign(&a(), &inbound.id, prompt("v2"))
        .await
        .unwrap();
    let v3 = reg
        .edit_campaign(&a(), &inbound.id, prompt("v3"))
        .await
        .unwrap();
    assert_eq!((v2.version, v3.version), (2, 3));
    // Old versions stay readable: calls keep the version they ran with.
    let v1 = reg.settings_version(&a(), &inbound.id, 1).await.unwrap();
    assert_eq!(v1.settings.prompt.as_deref(), Some("v1"));
    assert_eq!(
        reg.settings_version(&a(), &inbound.id, 2)
            .await
            .unwrap()
            .settings
            .prompt
            .as_deref(),
        Some("v2")
    );
    assert_eq!(
        reg.campaign(&a(), &inbound.id)
            .await
            .unwrap()
            .settings_version,
        3
    );

    let out = reg
        .create_campaign(&a(), "Out", CampaignKind::Outbound, prompt("o1"))
        .await
        .unwrap();
    reg.edit_campaign(&a(), &out.id, prompt("o2"))
        .await
        .unwrap();
    reg.set_campaign_status(&a(), &out.id, CampaignStatus::Active)
        .await
        .unwrap();
    reg.set_campaign_status(&a(), &out.id, CampaignStatus::Executing)
        .await
        .unwrap();
    let err = reg
        .edit_campaign(&a(), &out.id, prompt("o3"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    assert_eq!(
        reg.campaign(&a(), &out.id)
            .await
            .unwrap()
            .settings
            .prompt
            .as_deref(),
        Some("o2")
    );
}

#[tokio::test]
async fn every_operation_is_isolated_between_accounts() {
    let (reg, _, _) = setup();
    let camp = reg
        .create_campaign(&a(), "A's", CampaignKind::Inbound, prompt("x"))
        .await
        .unwrap();
    let inbound = reg.create_inbound(&a(), Some(&camp.id)).await.unwrap();
    reg.set_response_webhook(
        &a(),
        &inbound.id,
        NewEndpoint::post("https://a.example.com/cb"),
    )
    .await
    .unwrap();
    let out = reg
        .create_outbound(&a(), NewEndpoint::post("https://a.example.com/out"))
        .await
        .unwrap();
    let b_camp = reg
        .create_campaign(&b(), "B's", CampaignKind::Inbound, prompt("y"))
        .await
        .unwrap();
    let b_in = reg.create_inbound(&b(), None).await.unwrap();
    let oid: &WebhookId = &out.webhook.id;
    let cid: &CampaignId = &camp.id;

    // Every operation of account B on A's ids answers NotFound.
    assert!(is_not_found(reg.campaign(&b(), cid).await));
    assert!(is_not_found(
        reg.edit_campaign(&b(), cid, prompt("z")).await
    ));
    assert!(is_not_found(
        reg.set_campaign_status(&b(), cid, CampaignStatus::Active)
            .await
    ));
    assert!(is_not_found(reg.settings_version(&b(), cid, 1).await));
    assert!(is_not_found(reg.create_inbound(&b(), Some(cid)).await));
    assert!(is_not_found(reg.bind_campaign(&b(), &b_in.id, cid).await));
    assert!(is_not_found(
        reg.bind_campaign(&b(), &inbound.id, &b_camp.id).await
    ));
    assert!(is_not_found(
        reg.create_campaign_for(&b(), &inbound.id, "n", prompt("p"))
            .await
    ));
    assert!(is_not_found(reg.inbound(&b(), &inbound.id).await));
    assert!(is_not_found(reg.rotate_slug(&b(), &inbound.id).await));
    assert!(is_not_found(
        reg.set_inbound_enabled(&b(), &inbound.id, false).await
    ));
    assert!(is_not_found(reg.delete_inbound(&b(), &inbound.id).await));
    assert!(is_not_found(
        reg.set_response_webhook(
            &b(),
            &inbound.id,
            NewEndpoint::post("https://b.example.com/")
        )
        .await
    ));
    assert!(is_not_found(
        reg.remove_response_webhook(&b(), &inbound.id).await
    ));
    assert!(is_not_found(
        reg.update_endpoint(&b(), oid, EndpointUpdate::default())
            .await
    ));
    assert!(is_not_found(
        reg.set_endpoint_enabled(&b(), oid, false).await
    ));
    assert!(is_not_found(reg.delete_outbound(&b(), oid).await));
    assert!(is_not_found(reg.endpoint(&b(), oid).await));
    assert!(is_not_found(reg.rotate_signing_secret(&b(), oid).await));
    assert!(is_not_found(
        reg.update_managed_endpoint(&b(), oid, "x", EndpointUpdate::default())
            .await
    ));
    // Listings show only the account's own records.
    assert_eq!(reg.campaigns(&b()).await.unwrap().len(), 1);
    assert_eq!(reg.inbound_webhooks(&b()).await.unwrap().len(), 1);
    assert!(reg.endpoints(&b()).await.unwrap().is_empty());
    // And A's records are untouched.
    let still = reg.inbound(&a(), &inbound.id).await.unwrap();
    assert!(still.enabled && still.response_webhook.is_some());
    assert_eq!(still.slug, inbound.slug);
    assert_eq!(reg.endpoints(&a()).await.unwrap().len(), 2);
    assert_eq!(reg.campaign(&a(), cid).await.unwrap().settings_version, 1);
}

#[tokio::test]
async fn no_secret_in_store_records_or_debug_output() {
    let (reg, store, _) = setup();
    let created = reg
        .create_outbound(
            &a(),
            NewEndpoint::post("https://x.example.com/")
                .header(CustomHeader::new("X-Api-Key", TOKEN).unwrap()),
        )
        .await
        .unwrap();
    let w = reg.create_inbound(&a(), None).await.unwrap();
    let (_, resp_secret) = reg
        .set_response_webhook(
            &a(),
            &w.id,
            NewEndpoint::post("https://x.example.com/cb").header(headers::bearer(TOKEN).unwrap()),
        )
        .await
        .unwrap();
    let secrets = [
        TOKEN.to_string(),
        created.signing_secret.expose().to_string(),
        created
            .signing_secret
            .expose()
            .trim_start_matches("whsec_")
            .to_string(),
        resp_secret
            .unwrap()
            .expose()
            .trim_start_matches("whsec_")
            .to_string(),
    ];
    let endpoint = store.endpoint(&a(), &created.webhook.id).await.unwrap();
    let unsealed = reg.unseal_endpoint(endpoint.clone()).unwrap();
    let outputs = [
        store.dump(),
        format!("{store:?}"),
        format!("{created:?}"),
        format!("{endpoint:?}"),
        format!("{unsealed:?}"),
        format!("{reg:?}"),
        serde_json::to_string(&reg.endpoints(&a()).await.unwrap()).unwrap(),
        serde_json::to_string(&reg.inbound_webhooks(&a()).await.unwrap()).unwrap(),
    ];
    for out in &outputs {
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "a secret leaked into: {out}");
        }
    }
    // The store does hold the sealed values, and they open only for their own row.
    assert!(store.dump().contains("x-api-key"));
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_row_does_not_open() {
    let (reg, store, _) = setup();
    let one = reg
        .create_outbound(
            &a(),
            NewEndpoint::post("https://one.example.com/")
                .header(CustomHeader::new("x-key", TOKEN).unwrap()),
        )
        .await
        .unwrap();
    let two = reg
        .create_outbound(
            &a(),
            NewEndpoint::post("https://two.example.com/")
                .header(CustomHeader::new("x-key", "other").unwrap()),
        )
        .await
        .unwrap();
    let e1 = store.endpoint(&a(), &one.webhook.id).await.unwrap();
    let mut e2 = store.endpoint(&a(), &two.webhook.id).await.unwrap();
    e2.headers[0].value = e1.headers[0].value.clone();
    store.update_endpoint(&e2).await.unwrap();
    assert!(matches!(
        reg.unseal_endpoint(e2.clone()),
        Err(RegistryError::Secrets(_))
    ));
    // Moving it to another header name of the same row fails too.
    let mut e1b = e1.clone();
    e1b.headers[0].name = "x-other".into();
    assert!(matches!(
        reg.unseal_endpoint(e1b),
        Err(RegistryError::Secrets(_))
    ));
    // A signing secret moved between rows fails as well.
    e2.headers.clear();
    e2.secrets = e1.secrets.clone();
    assert!(matches!(
        reg.unseal_endpoint(e2),
        Err(RegistryError::Secrets(_))
    ));
}

#[tokio::test]
async fn key_rotation_reseals_everything_and_the_old_key_can_go() {
    let key1 = EncryptionKey::generate().unwrap();
    let key1_copy = EncryptionKey::from_base64(key1.to_base64().expose()).unwrap();
    let reg = Registry::new(
        Arc::new(MemoryStore::new()),
        KeyRing::new(KeyId::new(1), key1),
        RegistryConfig::default(),
    );
    let created = reg
        .create_outbound(
            &a(),
            NewEndpoint::post("https://x.example.com/")
                .header(CustomHeader::new("x-key", TOKEN).unwrap()),
        )
        .await
        .unwrap();

    let mut ring = KeyRing::new(KeyId::new(1), key1_copy);
    ring.add(KeyId::new(2), EncryptionKey::generate().unwrap())
        .unwrap();
    ring.set_primary(KeyId::new(2)).unwrap();
    reg.set_key_ring(ring.clone());
    assert_eq!(reg.reseal_all().await.unwrap(), 1);
    assert_eq!(
        reg.reseal_all().await.unwrap(),
        0,
        "nothing left under the old key"
    );
    ring.remove(KeyId::new(1)).unwrap();
    reg.set_key_ring(ring);
    let e = reg
        .store()
        .endpoint(&a(), &created.webhook.id)
        .await
        .unwrap();
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
    let unsealed = reg.unseal_endpoint(e).unwrap();
    assert_eq!(unsealed.headers[0].1.to_str().unwrap(), TOKEN);
    assert_eq!(
        unsealed.secrets[0].to_whsec().as_str(),
        created.signing_secret.expose()
    );
}

#[test]
fn published_signing_vector() {
    let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let sig = atllas_webhooks::signing::sign(
        &secret,
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1_649_367_553,
        br#"{"email":"test@example.com","username":"test_user"}"#,
    );
    assert_eq!(
        sig.to_string(),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}
