//! Property tests (issue 3): whatever is uploaded or sent, the host answers with a well-formed
//! response and never dies.
//!
//! Modules come from `wasm-smith`, constrained to export what docs/ABI.md requires (so they get
//! past inspection and their random code really runs), and from random mutations of a valid
//! module. Bodies are random bytes and randomly structured JSON-RPC requests.

use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Unstructured;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fnhost::{App, AppState, Config};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "prop-token";
const BY_HAND: &str = include_str!("../../tests/fixtures/abi_by_hand.wat");

struct Harness {
    rt: tokio::runtime::Runtime,
    app: AppState,
    _dir: tempfile::TempDir,
    next: AtomicU64,
}

impl Harness {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        config.admin_token = Some(TOKEN.into());
        config.defaults.fuel = 2_000_000;
        config.defaults.timeout_ms = 300;
        config.defaults.memory_bytes = 16 << 20;
        let app = rt.block_on(App::start(config)).unwrap();
        let h = Self {
            rt,
            app,
            _dir: dir,
            next: AtomicU64::new(0),
        };
        let (status, body) = h.send(put("byhand", wat::parse_str(BY_HAND).unwrap()));
        assert_eq!(status, StatusCode::CREATED, "{body}");
        h
    }

    fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        self.rt.block_on(async {
            let resp = fnhost::app(self.app.clone()).oneshot(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                String::from_utf8(body.to_vec()).expect("responses are UTF-8"),
            )
        })
    }

    fn rpc(&self, body: Vec<u8>) -> (StatusCode, String) {
        self.send(Request::post("/rpc").body(Body::from(body)).unwrap())
    }

    fn fresh_name(&self) -> String {
        format!("p{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn assert_alive(&self) {
        let (status, body) = self.send(Request::get("/healthz").body(Body::empty()).unwrap());
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["panics"], 0, "a handler panicked");
        let (_, answer) =
            self.rpc(br#"{"jsonrpc":"2.0","id":1,"method":"byhand.answer"}"#.to_vec());
        assert_eq!(answer, r#"{"jsonrpc":"2.0","id":1,"result":{"answer":42}}"#);
    }
}

fn put(name: &str, bytes: Vec<u8>) -> Request<Body> {
    Request::put(format!("/v1/functions/{name}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(bytes))
        .unwrap()
}

/// Asserts `v` is one JSON-RPC 2.0 response object.
fn check_response(v: &Value) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(o.get("jsonrpc"), Some(&json!("2.0")), "{v}");
    assert!(o.contains_key("id"), "{v}");
    match (o.get("result"), o.get("error")) {
        (Some(_), None) => {}
        (None, Some(e)) => {
            assert!(e["code"].is_i64(), "{v}");
            assert!(e["message"].is_string(), "{v}");
        }
        _ => panic!("needs exactly one of result and error: {v}"),
    }
}

/// Asserts a `/rpc` answer is well formed: nothing (204), a response, or an array of them.
fn check_rpc_answer(status: StatusCode, body: &str) {
    if status == StatusCode::NO_CONTENT {
        assert!(body.is_empty());
        return;
    }
    assert!(
        status == StatusCode::OK || status == StatusCode::PAYLOAD_TOO_LARGE,
        "{status}: {body}"
    );
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    match &v {
        Value::Array(items) => {
            assert!(!items.is_empty());
            items.iter().for_each(check_response);
        }
        _ => check_response(&v),
    }
}

/// Appends a custom section to a module.
fn with_custom_section(mut module: Vec<u8>, name: &str, data: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(data);
    module.push(0);
    leb(payload.len(), &mut module);
    module.extend_from_slice(&payload);
    module
}

/// A random module that exports what docs/ABI.md requires, with its metadata.
fn abi_module(seed: &[u8]) -> Option<Vec<u8>> {
    let exports = wat::parse_str(
        r#"(module
            (memory (export "memory") 1)
            (func (export "fnhost_alloc") (param i32) (result i32) unreachable)
            (func (export "fnhost_call_f") (param i32 i32) (result i64) unreachable))"#,
    )
    .unwrap();
    let imports =
        wat::parse_str(r#"(module (import "fnhost" "log" (func (param i32 i32 i32))))"#).unwrap();
    let config = wasm_smith::Config {
        exports: Some(exports),
        available_imports: Some(imports),
        // The exported memory is generated regardless; allow no others.
        max_memories: 0,
        max_tables: 1,
        max_funcs: 16,
        max_instructions: 200,
        max_memory32_bytes: 16 << 20,
        memory64_enabled: false,
        threads_enabled: false,
        // The engine runs without GC; reference types make wasm-smith emit GC-typed code.
        gc_enabled: false,
        reference_types_enabled: false,
        exceptions_enabled: false,
        tail_call_enabled: false,
        custom_page_sizes_enabled: false,
        ..wasm_smith::Config::default()
    };
    let module = wasm_smith::Module::new(config, &mut Unstructured::new(seed)).ok()?;
    let meta = br#"{"abi":1,"name":"f","raw":true,"params":[{"name":"params","required":false}]}"#;
    Some(with_custom_section(
        module.to_bytes(),
        "fnhost.functions",
        meta,
    ))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn request() -> impl Strategy<Value = Value> {
    let method = prop_oneof![
        Just(json!("byhand.answer")),
        Just(json!("byhand.echo_raw")),
        Just(json!("byhand.refuse")),
        Just(json!("system.listMethods")),
        Just(json!("system.methodHelp")),
        Just(json!("rpc.discover")),
        Just(json!("nope.nope")),
        json_value(),
    ];
    let id = prop_oneof![Just(None), json_value().prop_map(Some)];
    let params = prop_oneof![Just(None), json_value().prop_map(Some)];
    let version = prop_oneof![4 => Just(Some(json!("2.0"))), 1 => json_value().prop_map(Some), 1 => Just(None)];
    (method, id, params, version).prop_map(|(method, id, params, version)| {
        let mut o = serde_json::Map::new();
        o.insert("method".into(), method);
        if let Some(v) = version {
            o.insert("jsonrpc".into(), v);
        }
        if let Some(id) = id {
            o.insert("id".into(), id);
        }
        if let Some(p) = params {
            o.insert("params".into(), p);
        }
        Value::Object(o)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_get_well_formed_answers(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let h = harness();
        let (status, text) = h.rpc(body);
        check_rpc_answer(status, &text);
    }

    #[test]
    fn random_requests_and_batches_get_well_formed_answers(
        requests in prop::collection::vec(request(), 1..5),
        batch in any::<bool>(),
    ) {
        let h = harness();
        let body = if batch { json!(requests) } else { requests[0].clone() };
        let (status, text) = h.rpc(serde_json::to_vec(&body).unwrap());
        check_rpc_answer(status, &text);
    }

    #[test]
    fn generated_modules_are_refused_or_run_without_harm(
        seed in prop::collection::vec(any::<u8>(), 16..2048),
        params in json_value(),
    ) {
        let h = harness();
        if let Some(module) = abi_module(&seed) {
            let name = h.fresh_name();
            let (status, text) = h.send(put(&name, module));
            prop_assert!(
                status == StatusCode::CREATED || status == StatusCode::UNPROCESSABLE_ENTITY,
                "{} {}", status, text
            );
            let v: Value = serde_json::from_str(&text).unwrap();
            if status == StatusCode::CREATED {
                for p in [None, Some(params)] {
                    let mut req = json!({"jsonrpc": "2.0", "id": 7, "method": format!("{name}.f")});
                    if let Some(p) = p.filter(|p| p.is_array() || p.is_object()) {
                        req["params"] = p;
                    }
                    let (status, text) = h.rpc(serde_json::to_vec(&req).unwrap());
                    check_rpc_answer(status, &text);
                }
            } else {
                prop_assert!(v["error"]["message"].is_string());
            }
        }
        h.assert_alive();
    }

    #[test]
    fn mutated_modules_are_refused_or_served(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let h = harness();
        let mut module = wat::parse_str(BY_HAND).unwrap();
        for (at, byte) in flips {
            let i = at.index(module.len());
            module[i] = byte;
        }
        let (status, text) = h.send(put(&h.fresh_name(), module));
        prop_assert!(
            [StatusCode::CREATED, StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "{} {}", status, text
        );
        h.assert_alive();
    }
}

/// Guards the property above: generated modules must mostly get past inspection and
/// compilation, or the property would only ever see refusals.
#[test]
fn generated_modules_mostly_deploy() {
    let h = harness();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut deployed = 0;
    for _ in 0..20 {
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let module = abi_module(&bytes).expect("wasm-smith makes a module from 512 bytes");
        let (status, _) = h.send(put(&h.fresh_name(), module));
        deployed += usize::from(status == StatusCode::CREATED);
    }
    assert!(
        deployed >= 15,
        "only {deployed} of 20 generated modules deployed"
    );
}

/// One harness per test binary run (each property shares it; cases are independent).
fn harness() -> &'static Harness {
    static H: std::sync::OnceLock<Harness> = std::sync::OnceLock::new();
    H.get_or_init(Harness::new)
}
