fn main() {
    let text = include_str!("../../examples/seed/keepalived.conf");
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut s = vrlb_sim::Scenario::demo("seed", text, true, 1, secs * 1_000_000, 100).unwrap();
    s.connections = 16_384;
    let t = std::time::Instant::now();
    let o = vrlb_sim::run(s, false).unwrap();
    let mut c = std::collections::BTreeMap::new();
    for r in &o.all {
        *c.entry(r.what).or_insert(0u64) += 1;
    }
    println!(
        "{:?} processed {} traced {} flows {:?} table {:?} qhw {}",
        t.elapsed(),
        o.processed,
        o.events,
        o.flows,
        o.table_high_water,
        o.queue_high_water
    );
    for (k, v) in c {
        println!("{v:>9} {k}");
    }
}
