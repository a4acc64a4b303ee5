//! XML-RPC at `/RPC2`: Python's standard `xmlrpc.client` (ServerProxy, MultiCall) against the
//! real binary with the examples deployed (`tests/python/xmlrpc_client.py`), plus the HTTP
//! framing a client sees: `text/xml`, 200 for faults, the body limit answered with a fault.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fnhost_tests::{Host, host_with_examples};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

fn post_xml(host: &Host, body: &[u8]) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut r = agent
        .post(format!("{}/RPC2", host.url))
        .header("Content-Type", "text/xml")
        .send(body)
        .unwrap();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        r.status().as_u16(),
        content_type,
        r.body_mut().read_to_string().unwrap(),
    )
}

#[test]
fn python_xmlrpc_client_works_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/xmlrpc_client.py");
    let output = match Command::new("python3").arg(&script).arg(&host.url).output() {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run `python3` ({e}): this test needs Python 3 on the PATH to run its \
             standard xmlrpc.client against the host"
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}).\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- host log\n{}",
        script.display(),
        output.status,
        host.log()
    );
    assert!(
        stdout.contains("all xmlrpc.client checks passed"),
        "the script stopped early:\n{stdout}\n{stderr}"
    );
}

#[test]
fn rpc2_answers_text_xml_and_faults_with_200() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());

    let call = b"<?xml version=\"1.0\"?><methodCall><methodName>math.add</methodName><params>\
        <param><value><i4>7</i4></value></param><param><value><int>3</int></value></param>\
        </params></methodCall>";
    let (status, content_type, body) = post_xml(&host, call);
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/xml");
    assert!(body.starts_with("<?xml version=\"1.0\"?>"), "{body}");
    assert!(
        body.contains("<methodResponse><params><param><value><int>10</int></value>"),
        "{body}"
    );

    let (status, _, body) = post_xml(&host, b"<methodCall><methodName>math.divide</methodName><params><param><value><double>1</double></value></param><param><value><double>0</double></value></param></params></methodCall>");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<fault>"), "{body}");
    assert!(body.contains("<int>-32010</int>"), "{body}");
    assert!(body.contains("division by zero"), "{body}");

    let (status, _, body) = post_xml(&host, b"<!DOCTYPE x [<!ENTITY a \"b\">]><methodCall/>");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<int>-32700</int>"), "{body}");

    // Over the 1 MiB request limit: still a fault document.
    let mut big = b"<methodCall><methodName>echo.echo</methodName><params><param><value>".to_vec();
    big.resize(big.len() + (1 << 20), b'x');
    big.extend_from_slice(b"</value></param></params></methodCall>");
    let (status, content_type, body) = post_xml(&host, &big);
    assert_eq!((status, content_type.as_str()), (200, "text/xml"), "{body}");
    assert!(body.contains("<int>-32044</int>"), "{body}");

    let (status, _, body) = post_xml(&host, call);
    assert_eq!(status, 200);
    assert!(body.contains("<int>10</int>"), "{body}");
}
