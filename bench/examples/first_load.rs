//! Where a module's first load goes (docs/PERFORMANCE.md, *Issue 16*, first call with 1,000
//! modules): times each step of loading `math` from its stored bytes and cached artifact,
//! `LOAD_ROUNDS` times (default 300), and prints p50/p99 per step.
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("LOAD_ROUNDS")
        .unwrap_or("300".into())
        .parse()?;
    let data = tempfile::tempdir()?;
    let config = fnhost::Config::new(data.path());
    let sandbox = fnhost::sandbox::Sandbox::new(&config)?;
    let artifacts = fnhost::artifacts::ArtifactCache::open(data.path(), sandbox.compat_key())?;
    let bytes = fnhost_bench::guest_bytes("math")?;
    let digest = fnhost::digest::Digest::of(&bytes);
    let module_path = data.path().join("module.wasm");
    std::fs::write(&module_path, &bytes)?;
    let compiled = sandbox
        .compile(digest, &bytes)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    artifacts.put(&digest, &compiled.artifact)?;
    println!(
        "module {} bytes, artifact {} bytes",
        bytes.len(),
        compiled.artifact.len()
    );
    let steps = [
        "read+sha module",
        "artifact check (read + checksum)",
        "inspect",
        "load_artifact (inspect+deserialize+pre)",
        "read artifact",
        "sha256 artifact (in memory)",
        "Module::deserialize (bytes)",
        "Module::deserialize_file",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    for _ in 0..rounds {
        let t = Instant::now();
        let b = std::fs::read(&module_path)?;
        assert_eq!(fnhost::digest::Digest::of(&b), digest);
        times[0].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let path = artifacts.verified(&digest).expect("artifact");
        times[1].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        sandbox.inspect(&b).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        times[2].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let p = sandbox
            .load_artifact(digest, &b, &path)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        times[3].push(t.elapsed().as_secs_f64() * 1e6);
        drop(p);
        let t = Instant::now();
        let a = std::fs::read(&path)?;
        times[4].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        std::hint::black_box(fnhost::digest::Digest::of(&a));
        times[5].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        // SAFETY: written by this engine just above.
        let m = unsafe { wasmtime::Module::deserialize(sandbox.engine(), &a) }?;
        times[6].push(t.elapsed().as_secs_f64() * 1e6);
        drop(m);
        let t = Instant::now();
        // SAFETY: as above.
        let m = unsafe { wasmtime::Module::deserialize_file(sandbox.engine(), &path) }?;
        times[7].push(t.elapsed().as_secs_f64() * 1e6);
        drop(m);
    }
    for (name, mut t) in steps.iter().zip(times) {
        t.sort_by(f64::total_cmp);
        let pct = |q: f64| t[((t.len() - 1) as f64 * q) as usize];
        println!(
            "{name:45} p50 {:8.1} µs  p99 {:8.1} µs",
            pct(0.5),
            pct(0.99)
        );
    }
    Ok(())
}
