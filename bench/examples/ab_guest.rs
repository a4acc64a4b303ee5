//! Interleaved A/B of the bare-wasmtime `math.add` call for guests from several directories.
//! Usage: ab_guest DIR... (each holding math.wasm). Prints ns per call, median over rounds.
use std::time::Instant;
fn main() -> anyhow::Result<()> {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    let mut bares = Vec::new();
    for d in &dirs {
        unsafe { std::env::set_var("FNHOST_GUEST_DIR", d) };
        bares.push(fnhost_bench::bare::Bare::new()?);
    }
    if let Ok(calls) = std::env::var("AB_CALLS") {
        let method = std::env::var("AB_METHOD").unwrap_or("math.add".into());
        for _ in 0..calls.parse::<usize>()? {
            bares[0].answer(&method, b"[2,3]").unwrap()?;
        }
        return Ok(());
    }
    let n = 5000;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); dirs.len()];
    for b in &bares {
        for _ in 0..2000 {
            b.answer("math.add", b"[2,3]").unwrap()?;
        }
    }
    for _round in 0..15 {
        for (i, b) in bares.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..n {
                b.answer("math.add", b"[2,3]").unwrap()?;
            }
            times[i].push(t.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    for (d, mut t) in dirs.iter().zip(times) {
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{d}: median {:.0} ns, min {:.0}, max {:.0}",
            t[t.len() / 2],
            t[0],
            t[t.len() - 1]
        );
    }
    Ok(())
}
