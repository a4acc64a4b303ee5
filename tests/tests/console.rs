//! The web console: end to end in Debian's Chromium (tests/browser/console.mjs, driven by
//! playwright-core; screenshots of every page in `target/tmp/console-screenshots/`), and from
//! the attacker's side with plain HTTP: no session, a forged cross-site request, a stolen
//! page's cookie without its CSRF token, an invoke key, a session after sign-out.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fnhost_tests::{Host, TOKEN, guest, host_with_examples};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Signs in with `token`; returns the session cookie (`fnhost_session=…`) and its page's CSRF
/// token.
fn sign_in(host: &Host, token: &str) -> Option<(String, String)> {
    let r = agent()
        .post(format!("{}/console/login", host.url))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={token}"))
        .unwrap();
    let set = r.headers().get("set-cookie")?.to_str().unwrap().to_owned();
    assert_eq!(r.status().as_u16(), 303);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let mut page = agent()
        .get(format!("{}/console", host.url))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.body_mut().read_to_string().unwrap();
    let csrf = html
        .split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    Some((cookie, csrf))
}

fn rollback(host: &Host, cookie: &str, csrf: Option<&str>, origin: Option<&str>) -> u16 {
    let mut req = agent()
        .post(format!("{}/v1/functions/hello/rollback", host.url))
        .header("Cookie", cookie)
        .header("Content-Type", "application/json");
    if let Some(c) = csrf {
        req = req.header("x-fnhost-csrf", c);
    }
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    req.send("{}").unwrap().status().as_u16()
}

#[test]
fn the_console_refuses_what_did_not_come_from_a_signed_in_page() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());
    host.deploy("hello", &{
        let mut b = guest("hello");
        b.extend_from_slice(b"\0\x03\x02v2");
        b
    });

    // No session: pages send you to sign in, the API says 401.
    let r = agent().get(format!("{}/console", host.url)).call().unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/console/login");
    assert_eq!(rollback(&host, "fnhost_session=0", None, None), 401);
    // Wrong token, and an invoke key: no session.
    let r = agent()
        .post(format!("{}/console/login", host.url))
        .content_type("application/x-www-form-urlencoded")
        .send("token=wrong")
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());

    let (cookie, csrf) = sign_in(&host, TOKEN).unwrap();
    // The cookie alone (what a cross-site form or fetch could make a browser send): refused.
    assert_eq!(rollback(&host, &cookie, None, None), 403);
    assert_eq!(
        rollback(&host, &cookie, Some("0".repeat(64).as_str()), None),
        403
    );
    // The right token from another origin: refused.
    assert_eq!(
        rollback(&host, &cookie, Some(&csrf), Some("http://evil.example")),
        403
    );
    let (_, shown) = host.get("/v1/functions/hello");
    assert_eq!(shown["version"], 2, "nothing changed: {shown}");
    // From the console's own page: done.
    let origin = host.url.clone();
    assert_eq!(rollback(&host, &cookie, Some(&csrf), Some(&origin)), 200);

    // Sign-out needs the token too, then the session is gone.
    let out = agent()
        .post(format!("{}/console/logout", host.url))
        .header("Cookie", &cookie)
        .content_type("application/x-www-form-urlencoded")
        .send("csrf=forged")
        .unwrap();
    assert_eq!(out.status().as_u16(), 403);
    let out = agent()
        .post(format!("{}/console/logout", host.url))
        .header("Cookie", &cookie)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={csrf}"))
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(rollback(&host, &cookie, Some(&csrf), None), 401);
    let r = agent()
        .get(format!("{}/console/functions/math", host.url))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}

#[test]
fn the_console_works_end_to_end_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());
    let wasm = dir.path().join("hello-v2.wasm");
    let mut bytes = guest("hello");
    bytes.extend_from_slice(b"\0\x04\x02v2x");
    std::fs::write(&wasm, bytes).unwrap();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/console.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(&host.url)
        .arg(TOKEN)
        .arg(&wasm)
        .arg(&shots)
        .current_dir(script.parent().unwrap())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): scripts/browser.sh installs it and playwright-core")
        });
    assert!(
        out.status.success(),
        "{}{}\n--- host log\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        host.log()
    );
    for page in [
        "1-sign-in",
        "2-functions",
        "3-math",
        "5-hello-v2",
        "6-hello-rolled-back",
    ] {
        let png = shots.join(format!("{page}.png"));
        assert!(
            std::fs::metadata(&png).is_ok_and(|m| m.len() > 1000),
            "no screenshot {}",
            png.display()
        );
    }
}
