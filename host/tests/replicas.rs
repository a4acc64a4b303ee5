//! Replicas of one shared store, in one process: two hosts (each with its own data dir and
//! artifact cache) over one [`MemoryStore::shared`], which numbers and announces changes as
//! the PostgreSQL backend does. What one replica changes, the other serves within a second,
//! also when announcements are lost; concurrent deploys of one name lose nothing.
//! (`tests/tests/postgres_store.rs` and `tests/tests/replicas.rs` do the same with a real
//! PostgreSQL, the real binary and nginx.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fnhost::store::MemoryStore;
use fnhost::{App, AppState, Config};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "replica-test-token";
const BY_HAND: &str = include_str!("../../tests/fixtures/abi_by_hand.wat");

async fn replica(store: &Arc<MemoryStore>) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some(TOKEN.into());
    let app = App::start_with_store(config, store.clone()).await.unwrap();
    (dir, app)
}

async fn send(app: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = fnhost::app(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn admin(method: &str, path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body.into())
        .unwrap()
}

async fn call(app: &AppState, method: &str, key: Option<&str>) -> Value {
    let mut req = Request::post("/rpc");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).to_string();
    send(app, req.body(Body::from(body)).unwrap()).await.1
}

/// Waits (at most `within`) until `check` holds on what `app` answers to `method`.
async fn until(
    app: &AppState,
    method: &str,
    key: Option<&str>,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let answer = call(app, method, key).await;
        if check(&answer) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{method} still answers {answer} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hand-written guest answering `answer` (two digits: the data's length is fixed).
fn by_hand(answer: u32) -> Vec<u8> {
    assert!((10..100).contains(&answer));
    wat::parse_str(BY_HAND.replace("42", &answer.to_string())).unwrap()
}

fn answers(n: u64) -> impl Fn(&Value) -> bool {
    move |v| v["result"]["answer"] == n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rollback_and_remove_reach_the_other_replica_within_a_second() {
    let store = Arc::new(MemoryStore::shared());
    let (_a_dir, a) = replica(&store).await;
    let (_b_dir, b) = replica(&store).await;
    let second = Duration::from_secs(1);

    let (status, v) = send(&a, admin("PUT", "/v1/functions/byhand", by_hand(42))).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    until(&b, "byhand.answer", None, second, answers(42)).await;
    let (status, v) = send(&b, admin("PUT", "/v1/functions/byhand", by_hand(17))).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["version"], 2);
    until(&a, "byhand.answer", None, second, answers(17)).await;

    let (status, v) = send(&a, admin("POST", "/v1/functions/byhand/rollback", "")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 3);
    until(&b, "byhand.answer", None, second, answers(42)).await;

    let (status, _) = send(&b, admin("DELETE", "/v1/functions/byhand", Body::empty())).await;
    assert_eq!(status, StatusCode::OK);
    until(&a, "byhand.answer", None, second, |v| {
        v["error"]["code"] == -32601
    })
    .await;

    for app in [&a, &b] {
        let (status, v) = send(app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["store"], "shared");
        assert_eq!(v["applied_change"], 4, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_announcements_heal_by_polling() {
    let store = Arc::new(MemoryStore::shared());
    let (_a_dir, a) = replica(&store).await;
    let (_b_dir, b) = replica(&store).await;
    store.mute(true);
    let (status, _) = send(&a, admin("PUT", "/v1/functions/byhand", by_hand(55))).await;
    assert_eq!(status, StatusCode::CREATED);
    // Not announced: the other replica finds it on its next poll (every 500 ms).
    let took = until(
        &b,
        "byhand.answer",
        None,
        Duration::from_secs(2),
        answers(55),
    )
    .await;
    assert!(took <= Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_replica_is_refused_on_the_other() {
    let store = Arc::new(MemoryStore::shared());
    let (_a_dir, a) = replica(&store).await;
    let (_b_dir, b) = replica(&store).await;
    let (status, _) = send(
        &a,
        admin("PUT", "/v1/functions/byhand?access=key", by_hand(19)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let spec = json!({"name": "client", "role": "invoke", "scope": ["byhand"]}).to_string();
    let (status, key) = send(&a, admin("POST", "/v1/keys", spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (id, secret) = (key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    let second = Duration::from_secs(1);
    // Created on A, honoured on B.
    until(&b, "byhand.answer", Some(secret), second, answers(19)).await;
    let (status, _) = send(
        &a,
        admin("DELETE", &format!("/v1/keys/{id}"), Body::empty()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    until(&b, "byhand.answer", Some(secret), second, |v| {
        v["error"]["code"] == -32040
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deploys_of_one_name_on_two_replicas_lose_nothing() {
    let store = Arc::new(MemoryStore::shared());
    let (_a_dir, a) = replica(&store).await;
    let (_b_dir, b) = replica(&store).await;
    let deploys = (0..8u32).map(|i| {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            send(&app, admin("PUT", "/v1/functions/byhand", by_hand(60 + i))).await
        })
    });
    for d in deploys {
        let (status, v) = d.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    let record = fnhost::store::Store::name(store.as_ref(), "byhand")
        .await
        .unwrap()
        .unwrap();
    let numbers: Vec<u32> = record.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    // Both replicas settle on the one current version.
    let current = record.current().unwrap().sha256.to_hex();
    let deadline = Instant::now() + Duration::from_secs(2);
    for app in [&a, &b] {
        loop {
            let (_, v) = send(
                app,
                Request::get("/v1/functions/byhand")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            if v["sha256"] == current.as_str() && v["version"] == 8 {
                break;
            }
            assert!(Instant::now() < deadline, "did not converge: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_local_store_is_always_ready() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some(TOKEN.into());
    let app = App::start(config).await.unwrap();
    let (status, v) = send(&app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, json!({"ready": true, "store": "local"}));
}
