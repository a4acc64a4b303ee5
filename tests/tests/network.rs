//! Safe on an open network (issue 11), against the real binary on loopback, tried as an
//! attacker would: slow clients and connection floods under a low open-file limit, TLS with
//! real clients (curl, Python's `xmlrpc.client` and `ssl`), client-address rules on every
//! transport, the config file and its reload, graceful shutdown over HTTPS. 127.0.0.2, .3, …
//! are "other clients" (the whole 127.0.0.0/8 is local).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnhost_tests::{Host, TOKEN, connect_from, guest, http_from};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");
const ADD: &str = r#"{"jsonrpc":"2.0","id":1,"method":"math.add","params":[7,3]}"#;

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// A directory with `math.wasm` (and `burn.wasm`), for `--deploy-dir`: hosts whose admin API
/// refuses the test's address still get their functions.
fn examples_dir(dir: &Path) -> PathBuf {
    let d = dir.join("deploy");
    std::fs::create_dir_all(&d).unwrap();
    for name in ["math", "burn"] {
        std::fs::write(d.join(format!("{name}.wasm")), guest(name)).unwrap();
    }
    d
}

fn call_from(from: &str, host: &Host) -> (u16, Value) {
    let (status, body) = http_from(from, &host.addr(), "POST", "/rpc", &[], ADD.as_bytes());
    (status, parse(&body))
}

// --- connection hygiene ----------------------------------------------------------------

#[test]
fn half_sent_headers_from_one_address_cannot_starve_another_under_a_low_file_limit() {
    // The test process itself holds the 2,000 sockets.
    let _ = rlimit::increase_nofile_limit(8192);
    let dir = tempfile::tempdir().unwrap();
    let deploy = examples_dir(dir.path());
    let host = Host::start_wrapped(
        &["prlimit", "--nofile=1024:1024", "--"],
        BIN,
        dir.path(),
        &[
            "--deploy-dir",
            deploy.to_str().unwrap(),
            "--header-timeout-ms",
            "2000",
        ],
    );
    let log = host.log_when(|l| l.contains("open-file limit"));
    assert!(log.contains("open_files=1024"), "{log}");
    let addr = host.addr();

    const SLOW: usize = 2000;
    let mut slow = Vec::with_capacity(SLOW);
    let mut calls = 0;
    let started = Instant::now();
    for i in 0..SLOW {
        let mut s = connect_from("127.0.0.1", &addr);
        let _ = s.write_all(b"POST /rpc HTTP/1.1\r\nHost: x\r\n");
        slow.push(s);
        if i % 200 == 0 {
            // Meanwhile another client calls, and is answered every time.
            let (status, v) = call_from("127.0.0.2", &host);
            assert_eq!((status, &v["result"]), (200, &json!(10)), "{v}");
            calls += 1;
        }
    }
    let opened = Instant::now();
    for _ in 0..5 {
        let (status, v) = call_from("127.0.0.2", &host);
        assert_eq!((status, &v["result"]), (200, &json!(10)), "{v}");
        calls += 1;
    }
    // Every slow connection is closed within the header timeout plus a second: the ones past
    // the per-address cap at once, the others by the timeout.
    std::thread::sleep((opened + Duration::from_secs(3)).saturating_duration_since(Instant::now()));
    let mut still_open = 0;
    for s in &mut slow {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => still_open += 1,
            Err(_) => {}
        }
    }
    assert_eq!(
        still_open,
        0,
        "of {SLOW} slow connections, opened in {:?}",
        opened - started
    );
    assert_eq!(calls, 15);
    let log = host.log();
    let refusal_lines = log.matches("connections refused at a cap").count();
    assert!(refusal_lines >= 1, "{log}");
    assert!(
        refusal_lines <= 2 + (opened - started).as_secs() as usize,
        "refusals are logged at most once a second: {refusal_lines} lines"
    );
    // And afterwards everyone is served again, the slow address included.
    let (status, _) = call_from("127.0.0.1", &host);
    assert_eq!(status, 200);
}

#[test]
fn a_body_trickled_slower_than_the_body_timeout_is_cut_off_with_408_and_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &["--body-timeout-ms", "1500"]);
    host.deploy("math", &guest("math"));
    let mut s = connect_from("127.0.0.1", &host.addr());
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        ADD.len()
    )
    .unwrap();
    let started = Instant::now();
    // One byte a second; the answer comes before the body is complete.
    let mut answer = Vec::new();
    for b in ADD.bytes() {
        if s.write_all(&[b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1000));
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(n) = s.read(&mut buf)
            && n > 0
        {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
        s.set_nonblocking(false).unwrap();
    }
    s.set_nonblocking(false).unwrap();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":-32047"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (_, v) = host.get("/v1/functions/math");
    assert_eq!(v["usage"], json!({}), "nothing was dispatched: {v}");
}

#[test]
fn idle_keep_alive_and_blocked_writes_are_closed_and_caps_hold_on_tcp_too() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        BIN,
        dir.path(),
        &[
            "--idle-timeout-ms",
            "1000",
            "--write-timeout-ms",
            "1000",
            "--max-connections-per-ip",
            "2",
            "--tcp",
            "127.0.0.1:0",
        ],
    );
    host.deploy("echo", &guest("echo"));
    let addr = host.addr();

    // Idle: one request, then silence; closed after the idle timeout.
    let mut s = connect_from("127.0.0.1", &addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"echo.echo","params":[1]}"#;
    write!(
        s,
        "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = vec![0u8; 4096];
    let n = s.read(&mut got).unwrap();
    assert!(String::from_utf8_lossy(&got[..n]).starts_with("HTTP/1.1 200"));
    let idle = Instant::now();
    assert_eq!(s.read(&mut got).unwrap(), 0, "closed");
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // Blocked writes: pipelined requests for large answers, never read.
    let mut s = connect_from("127.0.0.1", &addr);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"echo.echo","params":["{}"]}}"#,
        "x".repeat(900_000)
    );
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer
            .set_write_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        for _ in 0..20 {
            let head = format!(
                "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                big.len()
            );
            if writer.write_all(head.as_bytes()).is_err()
                || writer.write_all(big.as_bytes()).is_err()
            {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(4));
    // The host has given up on this reader: what is buffered is less than the answers.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < 20 * 900_000, "received {received}");
    let _ = sender.join();

    // Per-address cap on the TCP transport: a third connection from one address is closed at
    // once; another address still gets in.
    let tcp = host.stdout_after("fnhost tcp listening on ").unwrap();
    let a = connect_from("127.0.0.1", &tcp);
    let b = connect_from("127.0.0.1", &tcp);
    std::thread::sleep(Duration::from_millis(100));
    let mut c = connect_from("127.0.0.1", &tcp);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "closed at once");
    let mut d = connect_from("127.0.0.2", &tcp);
    d.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    d.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo.echo\",\"params\":[2]}\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(d).read_line(&mut line).unwrap();
    assert_eq!(parse(&line)["result"], json!([2]));
    drop((a, b));
}

// --- TLS ---------------------------------------------------------------------------------

/// A CA and a certificate it signed, written as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn issue(dir: &Path, name: &str, sans: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("fnhost test CA {name}"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

/// `curl` with `args`: exit code and stdout.
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `curl` to `https://localhost:PORT{path}` trusting `ca`, with `extra` arguments.
fn https(host: &Host, path: &str, ca: &Path, extra: &[&str]) -> (i32, String) {
    let port = host.addr().split(':').nth(1).unwrap().to_owned();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}{path}");
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// `math.add(7, 3)` over HTTPS.
fn https_rpc(host: &Host, ca: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = extra.to_vec();
    args.extend_from_slice(&["-H", "content-type: application/json", "-d", ADD]);
    https(host, "/rpc", ca, &args)
}

const XMLRPC_MULTICALL: &str = r#"
import ssl, sys, xmlrpc.client
ctx = ssl.create_default_context(cafile=sys.argv[2])
proxy = xmlrpc.client.ServerProxy(sys.argv[1], context=ctx)
multi = xmlrpc.client.MultiCall(proxy)
multi.math.add(7, 3)
multi.math.multiply(6, 7)
print(list(multi()))
"#;

const TLS_JSON_LINE: &str = r#"
import json, socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
with socket.create_connection((sys.argv[1], int(sys.argv[2]))) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b'{"jsonrpc":"2.0","id":5,"method":"math.add","params":[40,2]}\n')
        print(json.loads(s.makefile().readline())["result"])
"#;

#[test]
fn tls_serves_real_clients_offers_h2_rotates_on_sighup_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let one = issue(dir.path(), "one", &["localhost", "127.0.0.1"]);
    // The files the host reads; rotated in place later.
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&one.cert, &cert).unwrap();
    std::fs::copy(&one.key, &key).unwrap();
    let deploy = examples_dir(dir.path());
    let mut host = Host::start(
        BIN,
        dir.path(),
        &[
            "--deploy-dir",
            deploy.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tcp",
            "127.0.0.1:0",
            "--tcp-tls",
            // Room for a long call at the end.
            "--fuel",
            "9000000000",
            "--timeout-ms",
            "20000",
        ],
    );
    assert!(host.url.starts_with("https://"), "{}", host.url);
    let port = host.addr().split(':').nth(1).unwrap().to_owned();

    // curl, over HTTP/2 by ALPN.
    let (code, out) = https_rpc(&host, &one.ca, &["-w", "\n%{http_version}"]);
    assert_eq!(code, 0, "{out}");
    let (body, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(parse(body)["result"], 10);
    assert_eq!(version, "2", "HTTP/2 offered by ALPN");
    // HTTP/1.1 too.
    let (code, out) = https_rpc(&host, &one.ca, &["--http1.1"]);
    assert_eq!((code, parse(&out)["result"].clone()), (0, json!(10)));

    // Python's xmlrpc.client with an ssl context, running the seed's MultiCall.
    let url = format!("https://localhost:{port}/RPC2");
    assert_eq!(
        python(XMLRPC_MULTICALL, &[&url, one.ca.to_str().unwrap()]),
        "[10, 42]"
    );

    // A JSON-RPC line over the TLS TCP transport, with Python's ssl.
    let tcp = host.stdout_after("fnhost tcp listening on ").unwrap();
    let tcp_port = tcp.split(':').nth(1).unwrap();
    assert_eq!(
        python(
            TLS_JSON_LINE,
            &["127.0.0.1", tcp_port, one.ca.to_str().unwrap()]
        ),
        "42"
    );

    // A client that does not trust the CA fails (curl: 60, peer certificate not trusted).
    let (code, _) = curl(&[&format!("https://127.0.0.1:{port}/healthz")]);
    assert_eq!(code, 60);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(host.addr()).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(
            format!(
                "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{ADD}",
                ADD.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // Rotation: new connections get the new certificate.
    let two = issue(dir.path(), "two", &["localhost", "127.0.0.1"]);
    std::fs::copy(&two.cert, &cert).unwrap();
    std::fs::copy(&two.key, &key).unwrap();
    host.signal("HUP");
    let log = host.log_when(|l| l.contains("TLS certificate reloaded"));
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    let (code, out) = https_rpc(&host, &two.ca, &[]);
    assert_eq!(
        (code, parse(&out)["result"].clone()),
        (0, json!(10)),
        "{out}"
    );
    let (code, _) = https_rpc(&host, &one.ca, &[]);
    assert_eq!(code, 60, "the old certificate is gone for new connections");

    // A broken new file is refused with a log line; the current certificate stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    host.signal("HUP");
    let log = host.log_when(|l| l.contains("NOT reloaded"));
    assert!(
        log.contains("TLS certificate NOT reloaded") && log.contains("live.pem"),
        "{log}"
    );
    let (code, out) = https_rpc(&host, &two.ca, &[]);
    assert_eq!(
        (code, parse(&out)["result"].clone()),
        (0, json!(10)),
        "{out}"
    );

    // Graceful shutdown with a call in flight over HTTPS: the call gets its answer.
    let resolve = format!("localhost:{port}:127.0.0.1");
    let long =
        json!({"jsonrpc":"2.0","id":9,"method":"burn.burn","params":[150_000_000]}).to_string();
    let ca = two.ca.clone();
    let url = format!("https://localhost:{port}/rpc");
    let in_flight = std::thread::spawn(move || {
        curl(&[
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-d",
            &long,
            &url,
        ])
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, health) = https(&host, "/healthz", &two.ca, &[]);
        if health.contains("\"calls_in_flight\":1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call never started: {health}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = host.terminate(Duration::from_secs(30)).expect("exits");
    assert!(status.success());
    let (code, out) = in_flight.join().unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(parse(&out)["result"], 150_000_000);
}

#[test]
fn mutual_tls_needs_a_client_certificate_from_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server = issue(dir.path(), "server", &["localhost", "127.0.0.1"]);
    let client = issue(dir.path(), "client", &["client.example"]);
    let stranger = issue(dir.path(), "stranger", &["client.example"]);
    let deploy = examples_dir(dir.path());
    let host = Host::start(
        BIN,
        dir.path(),
        &[
            "--deploy-dir",
            deploy.to_str().unwrap(),
            "--tls-cert",
            server.cert.to_str().unwrap(),
            "--tls-key",
            server.key.to_str().unwrap(),
            "--tls-client-ca",
            client.ca.to_str().unwrap(),
        ],
    );
    let (code, _) = https_rpc(&host, &server.ca, &[]);
    assert_ne!(code, 0, "no client certificate: refused");
    let (code, _) = https_rpc(
        &host,
        &server.ca,
        &[
            "--cert",
            stranger.cert.to_str().unwrap(),
            "--key",
            stranger.key.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0, "a certificate from another CA: refused");
    let (code, out) = https_rpc(
        &host,
        &server.ca,
        &[
            "--cert",
            client.cert.to_str().unwrap(),
            "--key",
            client.key.to_str().unwrap(),
        ],
    );
    assert_eq!(
        (code, parse(&out)["result"].clone()),
        (0, json!(10)),
        "{out}"
    );
}

// --- client-address rules ----------------------------------------------------------------

#[test]
fn address_rules_hold_on_every_transport_the_admin_api_and_per_function() {
    let dir = tempfile::tempdir().unwrap();
    let deploy = examples_dir(dir.path());
    let host = Host::start(
        BIN,
        dir.path(),
        &[
            "--deploy-dir",
            deploy.to_str().unwrap(),
            "--tcp",
            "127.0.0.1:0",
            "--allow-from",
            "127.0.0.2/31,127.0.0.4",
            "--admin-allow-from",
            "127.0.0.3",
            "--trusted-proxy",
            "127.0.0.9",
        ],
    );
    let addr = host.addr();
    // Calls: JSON-RPC.
    let (status, v) = call_from("127.0.0.1", &host);
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], -32048);
    assert_eq!(v["error"]["data"]["client"], "127.0.0.1");
    assert_eq!(call_from("127.0.0.2", &host).1["result"], 10);
    // XML-RPC: a fault with the code.
    let xml = "<?xml version=\"1.0\"?><methodCall><methodName>math.add</methodName><params>\
               <param><value><int>1</int></value></param><param><value><int>2</int></value></param>\
               </params></methodCall>";
    let (status, body) = http_from("127.0.0.1", &addr, "POST", "/RPC2", &[], xml.as_bytes());
    assert_eq!(status, 200);
    assert!(body.contains("<int>-32048</int>"), "{body}");
    let (_, body) = http_from("127.0.0.3", &addr, "POST", "/RPC2", &[], xml.as_bytes());
    assert!(body.contains("<int>3</int>"), "{body}");
    // TCP: an error line, then closed.
    let tcp = host.stdout_after("fnhost tcp listening on ").unwrap();
    let mut refused = connect_from("127.0.0.1", &tcp);
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    refused.read_to_string(&mut line).unwrap();
    assert_eq!(parse(&line)["error"]["code"], -32048, "{line}");
    let mut ok = connect_from("127.0.0.2", &tcp);
    ok.write_all(format!("{ADD}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(ok).read_line(&mut line).unwrap();
    assert_eq!(parse(&line)["result"], 10);

    // The admin API: only 127.0.0.3, whatever the token.
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = http_from("127.0.0.2", &addr, "GET", "/v1/functions", &[], b"");
    assert_eq!(status, 403, "{body}");
    assert_eq!(parse(&body)["error"]["kind"], "forbidden");
    let (status, _) = http_from("127.0.0.3", &addr, "GET", "/v1/functions", &[], b"");
    assert_eq!(status, 200);
    let math = guest("math");
    let (status, body) = http_from(
        "127.0.0.2",
        &addr,
        "PUT",
        "/v1/functions/m2",
        &[("Authorization", &auth)],
        &math,
    );
    assert_eq!(status, 403, "{body}");

    // Per function: within the host's rule, never wider.
    let (status, body) = http_from(
        "127.0.0.3",
        &addr,
        "PUT",
        "/v1/functions/only4?allow_from=127.0.0.4",
        &[("Authorization", &auth)],
        &math,
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http_from(
        "127.0.0.3",
        &addr,
        "PUT",
        "/v1/functions/wide?allow_from=10.0.0.0/8",
        &[("Authorization", &auth)],
        &math,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("wider than the host"), "{body}");
    let only4 = r#"{"jsonrpc":"2.0","id":1,"method":"only4.add","params":[1,1]}"#;
    let (_, body) = http_from("127.0.0.2", &addr, "POST", "/rpc", &[], only4.as_bytes());
    assert_eq!(parse(&body)["error"]["code"], -32048, "{body}");
    let (_, body) = http_from("127.0.0.4", &addr, "POST", "/rpc", &[], only4.as_bytes());
    assert_eq!(parse(&body)["result"], 2, "{body}");
    // In a batch, each member is judged on its own.
    let batch = format!("[{ADD},{}]", only4.replace("\"id\":1", "\"id\":2"));
    let (_, body) = http_from("127.0.0.2", &addr, "POST", "/rpc", &[], batch.as_bytes());
    let answers = parse(&body);
    assert_eq!(answers[0]["result"], 10);
    assert_eq!(answers[1]["error"]["code"], -32048);

    // X-Forwarded-For is believed from the trusted proxy only.
    let xff = [("X-Forwarded-For", "127.0.0.2")];
    let (status, _) = http_from("127.0.0.1", &addr, "POST", "/rpc", &xff, ADD.as_bytes());
    assert_eq!(status, 403, "an untrusted peer cannot claim an address");
    let (status, _) = http_from("127.0.0.9", &addr, "POST", "/rpc", &xff, ADD.as_bytes());
    assert_eq!(status, 200, "the trusted proxy's client is 127.0.0.2");
    let (status, _) = http_from("127.0.0.9", &addr, "POST", "/rpc", &[], ADD.as_bytes());
    assert_eq!(
        status, 403,
        "without the header, the proxy itself is the client"
    );
}

// --- the config file ---------------------------------------------------------------------

#[test]
fn the_config_file_sets_rules_a_reload_applies_to_the_next_request_and_a_broken_one_changes_nothing()
 {
    let dir = tempfile::tempdir().unwrap();
    let deploy = examples_dir(dir.path());
    let file = dir.path().join("fnhost.toml");
    let write = |rule: &str| {
        std::fs::write(
            &file,
            format!(
                "deploy_dir = {:?}\nallow_from = [\"{rule}\"]\nheader_timeout_ms = 5000\n",
                deploy.to_str().unwrap()
            ),
        )
        .unwrap()
    };
    write("127.0.0.2");
    let host = Host::start(BIN, dir.path(), &["--config", file.to_str().unwrap()]);
    assert_eq!(call_from("127.0.0.1", &host).0, 403);
    assert_eq!(call_from("127.0.0.2", &host).0, 200);

    write("127.0.0.1");
    host.signal("HUP");
    let log = host.log_when(|l| l.contains("setting=\"allow_from\""));
    assert!(log.contains("reloaded"), "{log}");
    assert_eq!(
        call_from("127.0.0.1", &host).0,
        200,
        "the next request sees the new rule"
    );
    assert_eq!(call_from("127.0.0.2", &host).0, 403);

    std::fs::write(&file, "allow_from = [\"not-an-address\"]\n").unwrap();
    host.signal("HUP");
    let log = host.log_when(|l| l.contains("config NOT reloaded"));
    assert!(log.contains("not-an-address"), "{log}");
    assert_eq!(call_from("127.0.0.1", &host).0, 200, "nothing changed");

    // `fnhost config check` names a bad key and its line, and passes a good file.
    std::fs::write(&file, "fuel = 10\nallow_fromm = [\"127.0.0.1\"]\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("allow_fromm") && err.contains("line 2"),
        "{err}"
    );
    write("127.0.0.1");
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
