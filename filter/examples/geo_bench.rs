//! Cost of an address-based geo redirect configuration the size of mainland China's real one
//! (APNIC delegation data: about 8,700 IPv4 and 3,800 IPv6 blocks): parsing and validating the
//! plugin configuration, and looking addresses up.
//!
//! `cargo run --release -p ferry-filter --example geo_bench [IPV4_BLOCKS IPV6_BLOCKS]`
//!
//! The blocks are random (deterministic seed), aligned, /14 to /24 and /20 to /48 like the real
//! list; the real list can be produced with `tools/rir-networks` and measured the same way by
//! pasting it into a configuration.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ferry_filter::config::Config;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let v4: usize = args.next().map_or(Ok(8_700), |a| a.parse())?;
    let v6: usize = args.next().map_or(Ok(3_800), |a| a.parse())?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut blocks = Vec::with_capacity(v4 + v6);
    for _ in 0..v4 {
        let prefix = 14 + (next() % 11) as u32;
        let addr = (next() as u32) & (u32::MAX << (32 - prefix));
        blocks.push(format!("\"{}/{prefix}\"", Ipv4Addr::from(addr)));
    }
    for _ in 0..v6 {
        let prefix = 20 + (next() % 29) as u32;
        let addr = (u128::from(next()) << 64) & (u128::MAX << (128 - prefix));
        blocks.push(format!("\"{}/{prefix}\"", Ipv6Addr::from(addr)));
    }
    let json = format!(
        r#"{{"domains": [{{"origin": "example.com", "mirror": "example.cn"}}],
            "redirect": {{"countries": ["CN"], "networks": {{"CN": [{}]}}}}}}"#,
        blocks.join(",")
    );

    let rounds = 20;
    let started = Instant::now();
    let mut config = None;
    for _ in 0..rounds {
        config = Some(black_box(Config::from_json(json.as_bytes())?));
    }
    let load = started.elapsed() / rounds;
    let redirect = config
        .and_then(|c| c.redirect)
        .ok_or("the configuration has no redirect")?;
    let set = redirect
        .networks
        .ok_or("the configuration has no networks")?;
    let (r4, r6) = set.ranges();

    let lookups = 5_000_000u32;
    let addrs: Vec<IpAddr> = (0..1024)
        .map(|i| {
            if i % 4 == 3 {
                IpAddr::V6(Ipv6Addr::from(u128::from(next()) << 64))
            } else {
                IpAddr::V4(Ipv4Addr::from(next() as u32))
            }
        })
        .collect();
    let started = Instant::now();
    let mut hits = 0u32;
    for i in 0..lookups {
        hits += u32::from(set.contains(black_box(addrs[i as usize % addrs.len()])));
    }
    let per_lookup = started.elapsed().as_nanos() as f64 / f64::from(lookups);
    println!(
        "geo networks: {v4} IPv4 + {v6} IPv6 blocks ({} KiB of JSON) -> {r4} + {r6} ranges; \
         configuration parsed and validated in {:.2} ms; lookup {per_lookup:.0} ns \
         ({hits} of {lookups} inside)",
        json.len() / 1024,
        load.as_secs_f64() * 1e3,
    );
    Ok(())
}
