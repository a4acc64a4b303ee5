//! Crash safety of the store (issue 3): SIGKILL the host at varying moments of a deploy, many
//! times; after every restart each name resolves to a complete old or new version, every stored
//! module matches its hash, no temp file survives, and deploys still work.

use std::collections::HashMap;
use std::path::Path;

use fnhost::digest::Digest;
use fnhost_tests::{Host, TOKEN, guest};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

/// Checks the store on disk and the served state after a restart; returns the current digest of `name`.
fn check_consistent(host: &Host, dir: &Path, known: &HashMap<String, &str>) -> String {
    for entry in std::fs::read_dir(dir.join("modules")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            Digest::of(&bytes).to_hex(),
            stem,
            "{} does not match its hash",
            path.display()
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.join("tmp")).unwrap().count(),
        0,
        "a temp file survived the restart"
    );
    let (status, detail) = host.get("/v1/functions/app");
    assert_eq!(status, 200, "the name was lost: {detail}");
    assert_eq!(detail["status"], "ready", "{detail}");
    let sha = detail["sha256"].as_str().unwrap().to_owned();
    let history = detail["versions"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["sha256"], sha.as_str());
    for (i, v) in history.iter().enumerate() {
        assert_eq!(v["version"], i + 1, "{detail}");
    }
    // The served version is complete: it answers as its bytes say.
    match known.get(&sha).copied() {
        Some("math") => assert_eq!(host.result("app.add", json!([2, 3])), json!(5)),
        Some("echo") => assert_eq!(host.result("app.echo", json!([2, 3])), json!([2, 3])),
        other => panic!("unknown digest {sha} ({other:?})"),
    }
    // The untouched name is intact.
    assert_eq!(host.result("other.add", json!([1, 1])), json!(2));
    sha
}

#[test]
fn sigkill_at_any_moment_of_a_deploy_leaves_the_old_or_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let (math, echo) = (guest("math"), guest("echo"));
    let known: HashMap<String, &str> = HashMap::from([
        (Digest::of(&math).to_hex(), "math"),
        (Digest::of(&echo).to_hex(), "echo"),
    ]);
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("app", &math);
    host.deploy("other", &math);
    // How long a deploy of new bytes takes here, so the kills can be spread across all of it.
    let timed = std::time::Instant::now();
    host.deploy("calibrate", &echo);
    let deploy_time = timed.elapsed();
    assert_eq!(host.delete("calibrate", Some(TOKEN)).0, 200);
    host.kill();

    let rounds: u32 = 16;
    let mut outcomes = (0, 0);
    for round in 0..rounds {
        let host = Host::start(BIN, dir.path(), &[]);
        let before = check_consistent(&host, dir.path(), &known);
        let next = if known[&before] == "math" {
            echo.clone()
        } else {
            math.clone()
        };
        // Spread the kill over the whole deploy: upload, compile, store writes, commit.
        let delay = deploy_time.mul_f64(1.5 * f64::from(round) / f64::from(rounds - 1));
        let url = host.url.clone();
        let uploader = std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            agent
                .put(format!("{url}/v1/functions/app"))
                .header("Authorization", &format!("Bearer {TOKEN}"))
                .send(&next[..])
                .map(|r| r.status().as_u16())
        });
        let answered = if round + 1 == rounds {
            // The last round kills only after the deploy was confirmed: it must survive.
            let answered = uploader.join().unwrap();
            host.kill();
            answered
        } else {
            std::thread::sleep(delay);
            host.kill();
            uploader.join().unwrap()
        };

        let host = Host::start(BIN, dir.path(), &[]);
        let after = check_consistent(&host, dir.path(), &known);
        if after == before {
            outcomes.0 += 1;
            // A deploy the server confirmed must never be lost.
            assert_ne!(
                answered.ok(),
                Some(201),
                "round {round}: a confirmed deploy was lost"
            );
        } else {
            outcomes.1 += 1;
        }
        host.kill();
    }
    eprintln!(
        "{rounds} kills over 0..{:?}: {} kept the old version, {} had the new one",
        deploy_time.mul_f64(1.5),
        outcomes.0,
        outcomes.1
    );
    // The first round kills at once (old version), the last after confirmation (new version).
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");

    // The store still takes deploys.
    let host = Host::start(BIN, dir.path(), &[]);
    check_consistent(&host, dir.path(), &known);
    let (status, v) = host.deploy_with("fresh", "", &guest("counter"), Some(TOKEN));
    assert_eq!(status, 201, "{v}");
    assert_eq!(host.result("fresh.next", Value::Array(vec![])), json!(1));
}
