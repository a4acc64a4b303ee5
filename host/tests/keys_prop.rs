//! Property test (issue "Who may do what"): no request without a valid invoke key covering it
//! ever reaches a `key` function's guest, whatever it presents, over JSON-RPC and XML-RPC,
//! alone or in a batch.

use axum::body::Body;
use axum::http::Request;
use fnhost::store::Role;
use fnhost::{App, AppState, Config};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "prop-admin-token";
const BY_HAND: &str = include_str!("../../tests/fixtures/abi_by_hand.wat");

struct Harness {
    rt: tokio::runtime::Runtime,
    app: AppState,
    /// A valid invoke key for `other` only, and a valid deploy key: neither may call `locked`.
    wrong_scope: String,
    deploy_key: String,
    _dir: tempfile::TempDir,
}

fn send(h: &Harness, req: Request<Body>) -> (u16, String) {
    h.rt.block_on(async {
        let resp = fnhost::app(h.app.clone()).oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

fn harness() -> Harness {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some(TOKEN.into());
    let app = rt.block_on(App::start(config)).unwrap();
    let (wrong_scope, deploy_key) = rt.block_on(async {
        for (name, access) in [("locked", "key"), ("other", "key")] {
            let req = Request::put(format!("/v1/functions/{name}?access={access}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::from(wat::parse_str(BY_HAND).unwrap()))
                .unwrap();
            let resp = fnhost::app(app.clone()).oneshot(req).await.unwrap();
            assert_eq!(resp.status(), 201);
        }
        let key = |role, scope: &str| {
            let new: fnhost::keys::NewKey = serde_json::from_value(json!({
                "name": "k", "role": role, "scope": [scope]
            }))
            .unwrap();
            let app = app.clone();
            async move { app.keys.create(new).await.unwrap().1 }
        };
        (
            key(Role::Invoke, "other").await,
            key(Role::Deploy, "*").await,
        )
    });
    Harness {
        rt,
        app,
        wrong_scope,
        deploy_key,
        _dir: dir,
    }
}

/// What a request may present instead of a valid key covering `locked`.
#[derive(Debug, Clone)]
enum Cred {
    Nothing,
    Bearer(String),
    Raw(String),
    AdminToken,
    KeyOfAnotherScope,
    DeployKey,
    /// The other key's secret with one digit changed, or grown by one.
    Mutated(usize, u8),
    Basic(String),
}

fn cred() -> impl Strategy<Value = Cred> {
    prop_oneof![
        Just(Cred::Nothing),
        "[ -~]{0,80}".prop_map(Cred::Bearer),
        "[ -~]{0,80}".prop_map(Cred::Raw),
        Just(Cred::AdminToken),
        Just(Cred::KeyOfAnotherScope),
        Just(Cred::DeployKey),
        (0..64usize, any::<u8>()).prop_map(|(i, b)| Cred::Mutated(i, b)),
        "[a-z0-9_]{0,40}".prop_map(Cred::Basic),
    ]
}

fn render(h: &Harness, c: &Cred) -> Option<String> {
    use base64::Engine as _;
    Some(match c {
        Cred::Nothing => return None,
        Cred::Bearer(s) => format!("Bearer {s}"),
        Cred::Raw(s) => s.clone(),
        Cred::AdminToken => format!("Bearer {TOKEN}"),
        Cred::KeyOfAnotherScope => format!("Bearer {}", h.wrong_scope),
        Cred::DeployKey => format!("Bearer {}", h.deploy_key),
        Cred::Mutated(i, b) => {
            let mut s = h.wrong_scope.clone().into_bytes();
            let at = 21 + i % (s.len() - 21);
            let digit = b'0' + (b % 10);
            if s[at] == digit {
                s.push(b'0');
            } else {
                s[at] = digit;
            }
            format!("Bearer {}", String::from_utf8(s).unwrap())
        }
        Cred::Basic(p) => {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("any:fnk_{p}"));
            format!("Basic {basic}")
        }
    })
}

fn call(auth: &Option<String>, body: String, path: &str) -> Request<Body> {
    let mut b = Request::post(path);
    if let Some(a) = auth {
        b = b.header("authorization", a.as_str());
    }
    b.body(Body::from(body)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn no_request_without_a_valid_covering_key_reaches_a_key_function(
        cred in cred(),
        batch in 1usize..4,
        xml in any::<bool>(),
    ) {
        thread_local! { static H: Harness = harness(); }
        H.with(|h| {
            let auth = render(h, &cred);
            let (status, body) = if xml {
                let doc = "<?xml version=\"1.0\"?><methodCall><methodName>locked.answer\
                           </methodName></methodCall>".to_owned();
                send(h, call(&auth, doc, "/RPC2"))
            } else {
                let one = json!({"jsonrpc": "2.0", "id": 1, "method": "locked.answer"});
                let body = if batch == 1 { one.to_string() } else {
                    Value::Array(vec![one; batch]).to_string()
                };
                send(h, call(&auth, body, "/rpc"))
            };
            prop_assert!(!body.contains("\"answer\":42") && !body.contains("<name>answer</name>"),
                "{auth:?} reached the guest: {status} {body}");
            if !xml {
                prop_assert!(body.contains("-32040") || body.contains("-32048"), "{body}");
            }
            let usage = h.app.registry.get("locked").unwrap().usage.snapshot();
            prop_assert!(usage.iter().all(|f| f.fuel_used == 0), "{usage:?}");
            Ok(())
        })?;
    }
}

/// The control: with a valid key covering it, the same request does reach the guest.
#[test]
fn a_valid_covering_key_reaches_it() {
    let h = harness();
    let new: fnhost::keys::NewKey =
        serde_json::from_value(json!({"name": "ok", "role": "invoke", "scope": ["locked"]}))
            .unwrap();
    let secret = h.rt.block_on(h.app.keys.create(new)).unwrap().1;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "locked.answer"}).to_string();
    let (status, body) = send(&h, call(&Some(format!("Bearer {secret}")), body, "/rpc"));
    assert_eq!(status, 200);
    assert!(body.contains("\"answer\":42"), "{body}");
}
