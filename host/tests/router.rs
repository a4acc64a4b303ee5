//! Router tests: the whole HTTP surface through `tower::ServiceExt::oneshot`, no socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fnhost::{App, AppState, Config};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "router-test-token";
const BY_HAND: &str = include_str!("../../tests/fixtures/abi_by_hand.wat");

async fn start(tweak: impl FnOnce(&mut Config)) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some(TOKEN.into());
    tweak(&mut config);
    let app = App::start(config).await.unwrap();
    (dir, app)
}

async fn send(app: &AppState, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = fnhost::app(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn put(name: &str, bytes: Vec<u8>, token: Option<&str>) -> Request<Body> {
    let mut b = Request::put(format!("/v1/functions/{name}"));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(bytes)).unwrap()
}

/// Deploys the hand-written WAT guest as `byhand`.
async fn deploy_by_hand(app: &AppState) {
    let (status, _, body) = send(
        app,
        put("byhand", wat::parse_str(BY_HAND).unwrap(), Some(TOKEN)),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
}

fn rpc(body: &str) -> Request<Body> {
    Request::post("/rpc")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test]
async fn healthz() {
    let (_dir, app) = start(|_| {}).await;
    let (status, _, body) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["status"], "ok");
}

#[tokio::test]
async fn deploy_then_call_with_usage_headers() {
    let (_dir, app) = start(|_| {}).await;
    deploy_by_hand(&app).await;
    let (status, headers, body) = send(
        &app,
        rpc(r#"{"jsonrpc":"2.0","id":"a","method":"byhand.answer"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        br#"{"jsonrpc":"2.0","id":"a","result":{"answer":42}}"#
    );
    let fuel: u64 = headers["x-fnhost-fuel-used"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fuel > 0);
    assert!(headers.contains_key("x-fnhost-elapsed-us"));
}

#[tokio::test]
async fn unauthorized_deploys_store_nothing() {
    let (dir, app) = start(|_| {}).await;
    let bytes = wat::parse_str(BY_HAND).unwrap();
    let (status, _, body) = send(&app, put("byhand", bytes.clone(), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&body)["error"]["code"], -32040);
    let (status, _, _) = send(&app, put("byhand", bytes, Some("bad"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        std::fs::read_dir(dir.path().join("names")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_naming_the_limit() {
    let (_dir, app) = start(|c| {
        c.max_module_bytes = 1000;
        c.max_request_bytes = 100;
    })
    .await;
    let (status, _, body) = send(&app, put("big", vec![0; 5000], Some(TOKEN))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let v = json_of(&body);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 bytes"),
        "{v}"
    );
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"a.b","params":["{}"]}}"#,
        "x".repeat(200)
    );
    let (status, _, body) = send(&app, rpc(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&body)["error"]["data"]["limit_bytes"], 100);
}

#[tokio::test]
async fn notifications_get_no_body_and_batches_an_array() {
    let (_dir, app) = start(|_| {}).await;
    deploy_by_hand(&app).await;
    let (status, _, body) = send(&app, rpc(r#"{"jsonrpc":"2.0","method":"byhand.answer"}"#)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());

    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"byhand.answer"},
                   {"jsonrpc":"2.0","method":"byhand.answer"},
                   {"jsonrpc":"2.0","id":2,"method":"byhand.nope"},
                   1]"#;
    let (status, _, body) = send(&app, rpc(batch)).await;
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 3, "{v}");
    assert_eq!(
        items[0],
        json!({"jsonrpc":"2.0","id":1,"result":{"answer":42}})
    );
    assert_eq!(items[1]["error"]["code"], -32601);
    assert_eq!(items[2]["error"]["code"], -32600);
    assert_eq!(items[2]["id"], Value::Null);

    let (status, _, body) =
        send(&app, rpc(r#"[{"jsonrpc":"2.0","method":"byhand.answer"}]"#)).await;
    assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
}

#[tokio::test]
async fn garbage_and_empty_uploads_are_422_and_unknown_names_404() {
    let (_dir, app) = start(|_| {}).await;
    for bytes in [vec![], b"\0asm garbage".to_vec(), b"hello".to_vec()] {
        let (status, _, body) = send(&app, put("junk", bytes, Some(TOKEN))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json_of(&body)["error"]["kind"], "bad_module");
    }
    let (status, _, _) = send(
        &app,
        Request::get("/v1/functions/junk")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let del = Request::delete("/v1/functions/junk")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, del).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_panicking_handler_is_answered_32603_and_counted() {
    let (_dir, app) = start(|_| {}).await;
    // The same layer `fnhost::app` installs, around a handler that panics.
    let router = axum::Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                let v: Vec<u8> = Vec::new();
                v[1].to_string()
            }),
        )
        .layer(fnhost::http::catch_panics(app.panics.clone()));
    let resp = router
        .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v = json_of(&body);
    assert_eq!(v["error"]["code"], -32603);
    assert_eq!(app.panics.load(std::sync::atomic::Ordering::Relaxed), 1);
    let (_, _, health) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(json_of(&health)["panics"], 1);
}

fn xml(body: String) -> Request<Body> {
    Request::post("/RPC2").body(Body::from(body)).unwrap()
}

/// One `system.multicall` of `byhand.echo_raw` with each string in `args`.
fn multicall_echo(args: &[String]) -> String {
    let calls: String = args
        .iter()
        .map(|a| {
            format!(
                "<value><struct><member><name>methodName</name><value>byhand.echo_raw</value></member>\
                 <member><name>params</name><value><array><data><value><string>{a}</string></value>\
                 </data></array></value></member></struct></value>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>system.multicall</methodName><params>\
         <param><value><array><data>{calls}</data></array></value></param></params></methodCall>"
    )
}

#[tokio::test]
async fn batches_and_multicalls_past_their_length_are_refused_naming_the_limit() {
    let (_dir, app) = start(|c| c.max_batch_len = 3).await;
    deploy_by_hand(&app).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"byhand.answer"}"#;
    let (_, _, body) = send(&app, rpc(&format!("[{call},{call},{call}]"))).await;
    assert_eq!(json_of(&body).as_array().map(Vec::len), Some(3));
    let (status, _, body) = send(&app, rpc(&format!("[{call},{call},{call},{call}]"))).await;
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert_eq!(v["error"]["data"]["limit"], 3, "{v}");
    assert_eq!(v["id"], Value::Null);

    let args: Vec<String> = (0..4).map(|i| i.to_string()).collect();
    let (status, _, body) = send(&app, xml(multicall_echo(&args))).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("<fault>"), "{text}");
    assert!(text.contains("<int>-32600</int>"), "{text}");
    assert!(text.contains("at most 3"), "{text}");
}

#[tokio::test]
async fn a_batch_holds_at_most_its_response_budget_and_answers_every_member() {
    let (_dir, app) = start(|c| c.max_batch_response_bytes = 1000).await;
    deploy_by_hand(&app).await;
    // Eight answers of ~300 bytes each: the first three fit in 1000 bytes, the rest cannot.
    let payload = "x".repeat(250);
    let batch: Vec<Value> = (0..8)
        .map(|id| json!({"jsonrpc":"2.0","id":id,"method":"byhand.echo_raw","params":[payload]}))
        .collect();
    let (status, _, body) = send(&app, rpc(&Value::from(batch).to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 8, "every member is answered: {v}");
    let mut ids: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..8).collect::<Vec<_>>());
    let results = items.iter().filter(|i| i.get("result").is_some()).count();
    let refused: Vec<&Value> = items
        .iter()
        .filter(|i| i["error"]["code"] == -32044)
        .collect();
    assert_eq!(results, 3, "{v}");
    assert_eq!(refused.len(), 5, "{v}");
    assert_eq!(refused[0]["error"]["data"]["limit_bytes"], 1000);
    assert_eq!(refused[0]["error"]["data"]["kind"], "payload_too_large");

    // XML-RPC's multicall shares the budget rule: later entries become faults. Each answer
    // here is `[["x…"]]` in XML, about 360 bytes: two fit in 1000.
    let args = vec![payload; 8];
    let (_, _, body) = send(&app, xml(multicall_echo(&args))).await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text.matches("<int>-32044</int>").count(), 6, "{text}");
    assert_eq!(text.matches(&"x".repeat(250)).count(), 2, "{text}");
}

#[tokio::test]
async fn the_default_request_limit_is_one_mib() {
    let (_dir, app) = start(|_| {}).await;
    assert_eq!(app.config.max_request_bytes, 1 << 20);
    // Exactly the limit is read (and is then not JSON); one byte more is refused unread.
    let at_limit = " ".repeat(1 << 20);
    let (status, _, body) = send(&app, rpc(&at_limit)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["error"]["code"], -32700);
    let over = Request::post("/rpc")
        .header("content-length", (1 << 20) + 1)
        .body(Body::from(" ".repeat((1 << 20) + 1)))
        .unwrap();
    let (status, _, body) = send(&app, over).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&body)["error"]["data"]["limit_bytes"], 1 << 20);
}

#[tokio::test]
async fn names_deploying_the_same_bytes_share_one_compiled_program() {
    let (_dir, app) = start(|_| {}).await;
    let bytes = wat::parse_str(BY_HAND).unwrap();
    for name in ["one", "two"] {
        let (status, _, body) = send(&app, put(name, bytes.clone(), Some(TOKEN))).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let program = |name: &str| {
        let entry = app.registry.get(name).unwrap();
        let app = app.clone();
        async move { app.registry.program(&entry).await.unwrap() }
    };
    let (one, two) = (program("one").await, program("two").await);
    assert!(
        std::sync::Arc::ptr_eq(&one, &two),
        "one compile, one InstancePre"
    );
    // Each name still calls under its own name, and removing one leaves the other serving.
    let del = Request::delete("/v1/functions/one")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, del).await.0, StatusCode::OK);
    let (_, _, body) = send(
        &app,
        rpc(r#"{"jsonrpc":"2.0","id":1,"method":"two.answer"}"#),
    )
    .await;
    assert_eq!(json_of(&body)["result"]["answer"], 42);
}

#[tokio::test]
async fn a_full_store_answers_507_without_paths_and_the_old_version_keeps_serving() {
    use fnhost::store::{MemoryStore, StoreErrorKind};
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some(TOKEN.into());
    let store = std::sync::Arc::new(MemoryStore::new());
    let app = App::start_with_store(config, store.clone()).await.unwrap();
    deploy_by_hand(&app).await;

    store.fail_next(StoreErrorKind::OutOfSpace);
    let mut changed = wat::parse_str(BY_HAND).unwrap();
    changed.extend_from_slice(b"\0\x04\x03new"); // a custom section: other bytes, same code
    let (status, _, body) = send(&app, put("byhand", changed, Some(TOKEN))).await;
    assert_eq!(status.as_u16(), 507, "{}", String::from_utf8_lossy(&body));
    let error = &json_of(&body)["error"];
    assert_eq!(error["kind"], "store_full");
    assert_eq!(error["code"], -32046);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("out of space"), "{message}");
    assert!(!message.contains('/'), "no path in {message}");

    let (_, _, body) = send(
        &app,
        rpc(r#"{"jsonrpc":"2.0","id":1,"method":"byhand.answer"}"#),
    )
    .await;
    assert_eq!(json_of(&body)["result"]["answer"], 42);
    let (_, _, body) = send(
        &app,
        Request::get("/v1/functions/byhand")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(json_of(&body)["versions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_store_answers_503_and_calls_keep_serving() {
    use fnhost::store::{MemoryStore, StoreErrorKind};
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some(TOKEN.into());
    let store = std::sync::Arc::new(MemoryStore::new());
    let app = App::start_with_store(config, store.clone()).await.unwrap();
    deploy_by_hand(&app).await;

    store.fail_next(StoreErrorKind::Backend);
    let mut changed = wat::parse_str(BY_HAND).unwrap();
    changed.extend_from_slice(b"\0\x04\x03new");
    let (status, _, body) = send(&app, put("byhand", changed.clone(), Some(TOKEN))).await;
    assert_eq!(status.as_u16(), 503, "{}", String::from_utf8_lossy(&body));
    let error = &json_of(&body)["error"];
    assert_eq!(error["kind"], "store_unavailable");
    assert_eq!(error["code"], -32050);
    let (_, _, body) = send(
        &app,
        rpc(r#"{"jsonrpc":"2.0","id":1,"method":"byhand.answer"}"#),
    )
    .await;
    assert_eq!(json_of(&body)["result"]["answer"], 42);
    // Once the store is back, the same deploy works.
    let (status, _, body) = send(&app, put("byhand", changed, Some(TOKEN))).await;
    assert_eq!(status.as_u16(), 201, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn a_module_of_a_future_abi_is_refused_naming_both_versions() {
    let (_dir, app) = start(|_| {}).await;
    let future = include_str!("../../tests/fixtures/abi_future.wat");
    let (status, _, body) = send(
        &app,
        put("future", wat::parse_str(future).unwrap(), Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = &json_of(&body)["error"];
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("ABI v3") && message.contains("ABI v1 and v2"),
        "{message}"
    );
    assert_eq!(error["data"]["module_abi"], 3);
    assert_eq!(error["data"]["host_abi"], 2);
    assert!(app.registry.get("future").is_none());
}
