//! Crash safety of the store (issue 3): SIGKILL the host at varying moments of a deploy, many
//! times; after every restart each name resolves to a complete old or new version, every stored
//! module matches its hash, no name is served from partial bytes, the temp files an interrupted
//! write left behind are gone, and deploys still work.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fnhost::digest::Digest;
use fnhost_tests::{Host, TOKEN, guest};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

/// The modules the test deploys, by digest: which example and its exact bytes.
type Known = HashMap<String, (&'static str, Vec<u8>)>;

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Checks that `name` is served from exactly the bytes that were deployed; returns its digest.
fn check_served(host: &Host, dir: &Path, known: &Known, name: &str) -> String {
    let (status, detail) = host.get(&format!("/v1/functions/{name}"));
    assert_eq!(status, 200, "the name {name} was lost: {detail}");
    assert_eq!(detail["status"], "ready", "{detail}");
    let sha = detail["sha256"].as_str().unwrap().to_owned();
    let Some((_, deployed)) = known.get(&sha) else {
        panic!("{name} is served as {sha}, which was never deployed: {detail}");
    };
    assert_eq!(detail["size"], deployed.len(), "{detail}");
    let stored = std::fs::read(dir.join("modules").join(format!("{sha}.wasm"))).unwrap();
    assert!(
        stored == *deployed,
        "{name}: the stored module {sha} is not the deployed bytes ({} of {} bytes)",
        stored.len(),
        deployed.len()
    );
    sha
}

/// Checks the store on disk and the served state after a restart; returns the current digest of `app`.
fn check_consistent(host: &Host, dir: &Path, known: &Known) -> String {
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
        temp_files(dir),
        Vec::<PathBuf>::new(),
        "a temp file survived the restart"
    );
    let sha = check_served(host, dir, known, "app");
    let (_, detail) = host.get("/v1/functions/app");
    let history = detail["versions"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["sha256"], sha.as_str());
    for (i, v) in history.iter().enumerate() {
        assert_eq!(v["version"], i + 1, "{detail}");
        assert!(
            known.contains_key(v["sha256"].as_str().unwrap()),
            "{detail}"
        );
    }
    // The served version is complete: it answers as its bytes say.
    match known[&sha].0 {
        "math" => assert_eq!(host.result("app.add", json!([2, 3])), json!(5)),
        "echo" => assert_eq!(host.result("app.echo", json!([2, 3])), json!([2, 3])),
        other => panic!("unexpected module {other}"),
    }
    // The untouched name is intact.
    assert_eq!(
        check_served(host, dir, known, "other"),
        known_digest(known, "math")
    );
    assert_eq!(host.result("other.add", json!([1, 1])), json!(2));
    sha
}

fn known_digest(known: &Known, module: &str) -> String {
    known
        .iter()
        .find_map(|(d, (m, _))| (*m == module).then(|| d.clone()))
        .unwrap()
}

/// When a round kills the host.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after the upload started.
    After(Duration),
    /// As soon as a file shows up in `tmp/`: in the middle of one of the store's writes.
    AtFirstTempFile,
    /// Only once the deploy was confirmed.
    AfterConfirmation,
}

/// What a round saw.
struct Round {
    before: String,
    after: String,
    /// The upload's HTTP status, if it got one before the kill.
    answered: Option<u16>,
    /// Temp files the kill left behind (an interrupted write).
    left_behind: Vec<PathBuf>,
}

/// Starts the host, deploys the other module under `app`, kills it as `kill` says, restarts
/// and checks.
fn round(dir: &Path, known: &Known, kill: Kill) -> Round {
    let host = Host::start(BIN, dir, &[]);
    let before = check_consistent(&host, dir, known);
    let next = if known[&before].0 == "math" {
        known[&known_digest(known, "echo")].1.clone()
    } else {
        known[&known_digest(known, "math")].1.clone()
    };
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
            .ok()
    });
    match kill {
        Kill::After(delay) => std::thread::sleep(delay),
        Kill::AtFirstTempFile => {
            let give_up = Instant::now() + Duration::from_secs(30);
            while temp_files(dir).is_empty() && !uploader.is_finished() && Instant::now() < give_up
            {
                std::hint::spin_loop();
            }
        }
        Kill::AfterConfirmation => {
            while !uploader.is_finished() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    host.kill();
    let answered = uploader.join().unwrap();
    let left_behind = temp_files(dir);

    let host = Host::start(BIN, dir, &[]);
    let after = check_consistent(&host, dir, known);
    for path in &left_behind {
        assert!(
            !path.exists(),
            "{} was left by the kill and survived the restart",
            path.display()
        );
    }
    host.kill();
    Round {
        before,
        after,
        answered,
        left_behind,
    }
}

/// Outcomes over the rounds.
#[derive(Debug, Default)]
struct Tally {
    /// Rounds after which the name still had its old version.
    kept: u32,
    /// Rounds after which it had the new one.
    replaced: u32,
    /// Rounds whose kill left temp files behind.
    interrupted: u32,
}

impl Tally {
    fn run(&mut self, dir: &Path, known: &Known, kill: Kill) {
        let r = round(dir, known, kill);
        if r.after == r.before {
            self.kept += 1;
            // A deploy the server confirmed must never be lost.
            assert_ne!(
                r.answered,
                Some(201),
                "{kill:?}: a confirmed deploy was lost"
            );
        } else {
            self.replaced += 1;
        }
        if matches!(kill, Kill::AfterConfirmation) {
            assert_eq!(
                r.answered,
                Some(201),
                "the confirmed round was not confirmed"
            );
        }
        if !r.left_behind.is_empty() {
            self.interrupted += 1;
        }
    }
}

#[test]
fn sigkill_at_any_moment_of_a_deploy_leaves_the_old_or_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let (math, echo) = (guest("math"), guest("echo"));
    let known: Known = HashMap::from([
        (Digest::of(&math).to_hex(), ("math", math.clone())),
        (Digest::of(&echo).to_hex(), ("echo", echo.clone())),
    ]);
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("app", &math);
    host.deploy("other", &math);
    // How long a deploy of new bytes takes here, so the kills can be spread across all of it.
    let timed = Instant::now();
    host.deploy("calibrate", &echo);
    let deploy_time = timed.elapsed();
    assert_eq!(host.delete("calibrate", Some(TOKEN)).0, 200);
    host.kill();

    let rounds: u32 = 16;
    let mut kills: Vec<Kill> = (0..rounds - 1)
        // Spread the kill over the whole deploy: upload, compile, store writes, commit.
        .map(|r| Kill::After(deploy_time.mul_f64(1.5 * f64::from(r) / f64::from(rounds - 1))))
        .collect();
    // The last round kills only after the deploy was confirmed: it must survive.
    kills.push(Kill::AfterConfirmation);
    let mut tally = Tally::default();
    for kill in kills {
        tally.run(dir.path(), &known, kill);
    }
    let timed_interrupts = tally.interrupted;
    // Kills timed by the clock hit a write only by luck; these wait for one to begin. The
    // store fsyncs every file before its rename, so a temp file lives long enough to be seen.
    let mut targeted = 0;
    while targeted < 2 || (tally.interrupted == 0 && targeted < 8) {
        tally.run(dir.path(), &known, Kill::AtFirstTempFile);
        targeted += 1;
    }
    let Tally {
        kept,
        replaced,
        interrupted,
    } = tally;
    // Straight to stderr, past libtest's capture, so a passing run shows it too.
    writeln!(
        std::io::stderr(),
        "crash: {rounds} kills over 0..{:?} and {targeted} at a write in progress: {kept} kept \
         the old version, {replaced} had the new one; {interrupted} left temp files behind \
         ({timed_interrupts} of the timed ones)",
        deploy_time.mul_f64(1.5),
    )
    .unwrap();
    // The first round kills at once (old version), the confirmed round after the commit (new).
    assert!(kept > 0 && replaced > 0, "kept {kept}, replaced {replaced}");
    // Some kill really interrupted a write, so the checks above saw its leftovers cleaned up.
    assert!(
        interrupted > 0,
        "no kill interrupted a write ({targeted} tried at the first temp file)"
    );

    // The store still takes deploys.
    let host = Host::start(BIN, dir.path(), &[]);
    check_consistent(&host, dir.path(), &known);
    let (status, v) = host.deploy_with("fresh", "", &guest("counter"), Some(TOKEN));
    assert_eq!(status, 201, "{v}");
    assert_eq!(host.result("fresh.next", Value::Array(vec![])), json!(1));
}
